"""What a study stage kind is (the registry is `KINDS` in this folder's `__init__`).

A kind is a small object with:
- `options`: the pydantic model of its keys in a stage (besides name, kind, overrides);
- `check(study, stage)`: what can be refused before Ray starts (raise ValueError, one line);
- `space(study, stage, options, overrides)`: the sweep that runs the stage, given its options
  and its overrides, references resolved;
- `outputs(study, space, result, sweep)`: what later stages may refer to, beyond the
  engine's own (`best_checkpoint`, `run_id`): at least `best_config`, the best dotted
  overrides;
- `design(study, stage)`: the report's view of a grid stage, or None for other kinds;
- optionally `report(study, stage, sweep, out, runs)`: a kind's own report section
  (Markdown, files), and `smoke(raw)`: its stage's keys trimmed for `--smoke`.

A **job** kind (mine, distill) is work the driver does rather than a sweep: instead of
`space` and `outputs` it has `run(study, stage, options, overrides, context) -> dict`, given
a `JobContext` (the study's Store, tracking URI, the stage's own MLflow run already created
under the study run, the origin folder, echo, the Ray address); it returns its outputs
(`path`, where its result lives; `dataset` and `rows` for a published dataset;
`cost/device_seconds` and `time/wall_seconds` for the report's stage table; the engine adds
`kind` and `run_id`) and raises ValueError (one line) for a
problem the user can fix. Optionally `preflight(study, stage, origin)` checks what the
options name (datasets exist, shapes) before Ray starts. The engine records the outputs like
a sweep stage's; a job stage that did not finish runs again on resume, so a job must be safe
to repeat (mining is cached and both jobs publish atomically, reusing an identical dataset).
The study engine (orchestration/study/engine.py) never branches on a kind's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from hmtl.orchestration.sweep.space import TRIAL_KEY, SearchSpace, TrialPoint, validate_space
from hmtl.orchestration.tracking.extra_sources import source_tags

if TYPE_CHECKING:
    from hmtl.orchestration.platform.store import Store
    from hmtl.orchestration.study.spec import Stage, Study


class StageKind(Protocol):
    options: type[BaseModel]

    def check(self, study: Study, stage: Stage) -> None: ...

    def space(self, study: Study, stage: Stage, options: Any, overrides: dict) -> SearchSpace: ...

    def outputs(
        self, study: Study, space: SearchSpace, result: Any, sweep: Store
    ) -> dict[str, Any]: ...

    def design(self, study: Study, stage: Stage) -> Any: ...


@dataclass(frozen=True)
class JobContext:
    """What a job stage's `run` gets from the engine."""

    store: Store
    """The study's storage folder (`<storage>/studies/<study>`)."""
    tracking_uri: str
    run_id: str
    """The stage's MLflow run (tags hmtl.study, hmtl.stage; a child of the study run): the
    job logs its params, metrics and artifacts there; the engine ends it."""
    origin: str
    """The folder the study started in: relative paths in options are read against it."""
    echo: Callable[[str], None]
    address: str | None = None
    num_cpus: int | None = None


def explicit_space(
    study: Study,
    stage: Stage,
    base: dict,
    points: list[TrialPoint],
    concurrent: int | None,
    judge: tuple[str, str] | None = None,
    name: str | None = None,
    **program: Any,
) -> SearchSpace:
    """A sweep of explicit trials (no searcher, no early stopping) for a stage, its trials
    judged by `judge` (metric, mode) or else by the study's metric; `program` sets what the
    trials run (SearchSpace's `runs` and `loop`), training by default; `name` is the sweep's
    (default the stage's; a round of seeds after the first has its own)."""
    metric, mode = judge or (study.tune_metric, study.mode)
    points = [_with_source_tags(base, p) for p in points]
    raw = {
        **program,
        "name": name or stage.name,
        "metric": metric,
        "mode": mode,
        "num_samples": len(points),
        "max_concurrent_trials": concurrent or study.max_concurrent_trials,
        "scheduler": None,
        "resources": study.resources.model_dump(),
        "base": base,
        "space": {},
        "trials": [p.model_dump() for p in points],
    }
    return validate_space(raw, study.source)


def _with_source_tags(base: dict, point: TrialPoint) -> TrialPoint:
    """The point with the fingerprints of the extra datasets it trains on (e.g. a mine
    stage's) among its tags, read from their cards: refused in one line when one is not
    a published dataset."""

    sources = point.overrides.get("data.extra_sources")
    if sources is None:
        sources = base.get("data", {}).get("extra_sources")
    if not sources:
        return point
    return point.model_copy(update={"tags": {**point.tags, **source_tags(list(sources))}})


def point_overrides(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """The dotted overrides a trial ran with: its explicit point's, or its sampled values."""

    if space.trials and TRIAL_KEY in params:
        return dict(space.trials[int(params[TRIAL_KEY])].overrides)
    return dict(params)
