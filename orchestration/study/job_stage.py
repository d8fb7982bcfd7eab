"""How the engine runs a job stage (mine, distill: work on the driver, not a sweep): in its
own MLflow run under the study run, the kind's `run` given a JobContext."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.study.checks import StudyError
from hmtl.orchestration.study.kinds import KINDS
from hmtl.orchestration.study.kinds.base import JobContext
from hmtl.orchestration.study.tracking import end_job_run, job_run_id


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
