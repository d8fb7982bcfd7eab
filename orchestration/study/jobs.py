"""Job stages (orchestration/study/kinds/mine.py, distill.py): how the engine runs one, and
what the kinds share: paths read against the study's origin, where a stage publishes, and a
job's cost."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

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


def run_job(
    study,
    stage,
    options: Any,
    overrides: dict,
    store: Store,
    tracking_uri: str,
    study_run: str,
    origin: str,
    echo: Callable[[str], None],
    address: str | None = None,
    num_cpus: int | None = None,
) -> dict[str, Any]:
    """Run a job stage (its kind's `run`, options resolved) in its own MLflow run under the
    study run, which ends FINISHED or FAILED; its outputs as the study records them. A
    problem the user can fix is a one-line StudyError that says the study is kept."""
    from hmtl.orchestration.study.kinds.base import KINDS, JobContext
    from hmtl.orchestration.study.spec import StudyError
    from hmtl.orchestration.study.tracking import end_job_run, job_run_id

    run_id = job_run_id(tracking_uri, study.name, stage.name, study_run)
    context = JobContext(store, tracking_uri, run_id, origin, echo, address, num_cpus)
    echo(f"stage {stage.name} ({stage.kind}): a job on the driver, MLflow run {run_id}")
    try:
        found = KINDS[stage.kind].run(study, stage, options, overrides, context)
    except (ValueError, FileNotFoundError) as err:
        end_job_run(tracking_uri, run_id, finished=False)
        raise StudyError(
            f"{study.label()}: stages[{stage.index}] ({stage.name}): {err} (the study is kept: "
            f"`hmtl resume {store.uri}` runs this stage again)"
        ) from None
    except BaseException:
        end_job_run(tracking_uri, run_id, finished=False)
        raise
    end_job_run(tracking_uri, run_id, finished=True)
    return {"kind": stage.kind, "path": store.uri, **found, "run_id": run_id}
