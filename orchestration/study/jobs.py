"""Job stages (orchestration/study/kinds/mine.py, distill.py): how the engine runs one, and
what the kinds share: paths read against the study's origin, where a stage publishes, and a
job's cost."""

from __future__ import annotations

import os

from hmtl.orchestration.platform.store import Store
from hmtl.trainables.accounting import WALL_SECONDS, CostRate, costs
from hmtl.trainables.data.storage import is_remote


def at_origin(uri: str, origin: str) -> str:
    """`uri` with a relative local path read against the folder the study started in
    (remote URIs, absolute paths and `synthetic[:N]` stay as they are)."""
    if uri == "synthetic" or uri.startswith("synthetic:") or is_remote(uri):
        return uri
    return uri if os.path.isabs(uri) else os.path.join(origin, uri)


def datasets_uri(store: Store) -> str:
    """Where a study's stages publish datasets: `<storage>/studies/<study>/datasets`, one
    folder per stage under it (the writer adds `<stage>/<fingerprint>/`)."""
    return store.child("datasets").uri


def job_costs(rate: CostRate, wall_seconds: float) -> dict[str, float]:
    """`time/wall_seconds`, `cost/device_seconds` (what the job held × its wall time, as a
    trial's) and `cost/usd` when a price is known."""
    return {WALL_SECONDS: wall_seconds, **costs({WALL_SECONDS: wall_seconds}, rate)}
