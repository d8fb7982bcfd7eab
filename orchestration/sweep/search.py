"""Optuna samplers and the ASHA scheduler, wired so Optuna learns the right thing.

ASHA (not Optuna's pruner) stops trials early. Stock `OptunaSearch` then tells the study
the trial *completed* with its early, truncated value, and TPE treats it as final.
`HmtlOptunaSearch` reports every epoch as an intermediate value (step = epoch) and
records a trial that ended before its planned last epoch as PRUNED. With a `StudyMirror`
(`sweep/optuna_store.py`) every trial is also copied, as it goes, into an Optuna database
that optuna-dashboard reads.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch

from hmtl.orchestration.sweep.optuna_store import StudyMirror
from hmtl.orchestration.sweep.space import SearchSpace


class HmtlOptunaSearch(OptunaSearch):
    def __init__(
        self, space: SearchSpace, mirror: StudyMirror | None = None, **kwargs: Any
    ) -> None:
        super().__init__(space=space.distributions(), **kwargs)
        self._hmtl_space = space
        self._planned_epochs: dict[str, int] = {}
        self._mirror = mirror

    def suggest(self, trial_id: str):
        params = super().suggest(trial_id)
        if isinstance(params, dict):
            self._planned_epochs[trial_id] = self._hmtl_space.trial_config(params).schedule.epochs
            self._copy(trial_id)
        return params

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if isinstance(self.metric, list) or self.metric not in result:
            return
        trial = self._ot_trials.get(trial_id)
        if trial is not None and trial_id not in self._completed_trials:
            trial.report(result[self.metric], int(result.get("epoch", 0)))
            self._copy(trial_id)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        planned = self._planned_epochs.get(trial_id)
        stopped_early = (
            not error
            and result is not None
            and planned is not None
            and int(result.get("epoch", planned)) < planned
        )
        if stopped_early:
            # Tune withholds the result that made ASHA stop the trial; it is the last
            # intermediate value, which TPE uses to rank pruned trials.
            self.on_trial_result(trial_id, result)
        # A result of None with no error is what OptunaSearch records as PRUNED.
        super().on_trial_complete(trial_id, None if stopped_early else result, error)
        self._copy(trial_id)

    def _copy(self, trial_id: str) -> None:
        """Hand the mirror this searcher's trials, by Tune trial id (a searcher saved before
        the mirror existed has none)."""
        mirror = getattr(self, "_mirror", None)
        if mirror is None:
            return
        frozen = self._ot_study.get_trials(deepcopy=False)
        mirror.update({tid: frozen[t.number] for tid, t in self._ot_trials.items()}, trial_id)


def make_searcher(space: SearchSpace, mirror: StudyMirror | None = None) -> HmtlOptunaSearch:
    multi = len(space.metrics) > 1
    return HmtlOptunaSearch(
        space,
        mirror,
        metric=space.metrics if multi else space.metrics[0],
        mode=space.modes if multi else space.modes[0],
        sampler=space.sampler(),
        points_to_evaluate=list(space.search.points_to_evaluate) or None,
    )


def make_scheduler(space: SearchSpace):
    asha = space.scheduler
    if asha is None or len(space.metrics) > 1:
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="epoch",
        max_t=asha.max_epochs,
        grace_period=asha.grace_period,
        reduction_factor=asha.reduction_factor,
    )
