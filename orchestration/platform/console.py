"""What a sweep prints: Tune's progress table and hmtl's own lines, not every library's log.

Without `--verbose`, the lines below are raised to warnings: Ray's `Checkpoint
successfully created at: ...` once per checkpoint and trial (forwarded from every trial
process), and MLflow's database set-up messages in the driver. Tune's TensorBoard logger
(and the hint to run TensorBoard) is left out of every sweep (`sweep._run_config`): the
curves are in MLflow.
"""

from __future__ import annotations

import importlib.util
import logging

# Logged in trial processes (Tune functions) and Train workers, once per checkpoint or
# report. (A TorchTrainer's controller, an actor of Ray's own, still logs its worker group.)
TRIAL_LOGGERS = (
    "ray.train._internal.storage",
    "ray.train.v2._internal.execution.storage",
    "ray.train.v2._internal.execution.context",
)
# Logged by the sweep's driver when it opens a SQLite tracking store (module names).
DRIVER_LOGGERS = ("mlflow.store.db.utils", "alembic.runtime.migration")


def quiet(modules: tuple[str, ...]) -> None:
    """Keep only warnings and errors of these modules' loggers (in this process).

    Ray names most loggers after the module and a few after its file path; both are set."""
    for module in modules:
        logging.getLogger(module).setLevel(logging.WARNING)
        try:
            spec = importlib.util.find_spec(module)
        except ImportError:
            continue
        if spec is not None and spec.origin:
            logging.getLogger(spec.origin).setLevel(logging.WARNING)
