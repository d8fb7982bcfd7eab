"""What a sweep prints: Tune's progress table and hmtl's own lines, not every library's log.

Without `--verbose`, the lines below are raised to warnings: Ray's `Checkpoint
successfully created at: ...` once per checkpoint and trial (forwarded from every trial
process), and MLflow's database set-up messages in the driver. Tune's TensorBoard logger
(and the hint to run TensorBoard) is left out of every sweep (`sweep._run_config`): the
curves are in MLflow.
"""

from __future__ import annotations

import logging

# Logged in trial processes (Tune functions) and Train workers, once per checkpoint.
TRIAL_LOGGERS = ("ray.train._internal.storage", "ray.train.v2._internal.execution.storage")
# Logged by the sweep's driver when it opens a SQLite tracking store.
DRIVER_LOGGERS = ("mlflow.store.db.utils", "alembic.runtime.migration")


def quiet(names: tuple[str, ...]) -> None:
    """Keep only warnings and errors of these loggers (in this process)."""
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
