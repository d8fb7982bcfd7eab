"""The figures of `hmtl report`, drawn on matplotlib axes from plain rows and studies.

States look the same in every figure (pruned trials hollow triangles). Trials ASHA stopped
early are compared at its rungs (orchestration/sweep/rungs.py); every figure says which rung.
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from matplotlib.ticker import MaxNLocator, NullFormatter
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from hmtl.orchestration.sweep.space import SearchSpace
from hmtl.orchestration.sweep.status import TrialRow

# By state, the same everywhere: pruned trials hollow triangles; anything else (FAIL with a
# partial result, a trial still running) red crosses.
STYLES = {
    "COMPLETE": {"marker": "o", "facecolors": "C0", "edgecolors": "C0"},
    "PRUNED": {"marker": "v", "facecolors": "none", "edgecolors": "C1"},
}
OTHER = {"marker": "x", "c": "C3"}


def plot_history(ax, study: optuna.Study, metric: str, mode: str) -> None:
    """Each trial's value in completion order (a pruned one at its last epoch) and the best
    COMPLETE value so far."""
    done = sorted(
        (t for t in study.trials if t.datetime_complete and _value(t) is not None),
        key=lambda t: t.datetime_complete,
    )
    better = max if mode == "max" else min
    best, running = [], math.nan
    for t in done:
        if t.state == TrialState.COMPLETE:
            running = t.values[0] if math.isnan(running) else better(running, t.values[0])
        best.append(running)
    x = list(range(1, len(done) + 1))
    _scatter(ax, x, [_value(t) for t in done], [t.state.name for t in done])
    if not all(math.isnan(b) for b in best):
        ax.step(x, best, where="post", c="C2", label=f"best so far ({mode})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="trial, in completion order", ylabel=metric, title="Optimization history")
    _finish(ax, done, "no trial has finished")


@dataclass(frozen=True)
class Rung:
    """Where trials are compared: the common rung, every rung, and whether they are ASHA's."""

    common: int | None
    rungs: list[int]
    asha: bool

    def label(self, epoch: int) -> str:
        if not self.asha:
            return f"epoch {epoch}, reached by every trial"
        first = " (the grace period)" if self.rungs and epoch == self.rungs[0] else ""
        return f"ASHA rung at epoch {epoch}{first}"


def plot_rung_importances(ax, rows: list[TrialRow], space: SearchSpace, at: Rung) -> None:
    """Optuna's parameter importances over every trial's value at the common rung, so
    trials ASHA stopped count as much as complete ones."""
    dists = space.distributions()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a throwaway study is not news
    try:
        study = optuna.create_study(direction="maximize" if space.modes[0] == "max" else "minimize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for row in rows:
        if at.common is None or at.common not in row.history:
            continue
        try:
            params = {k: row.params[k] for k in dists}
            study.add_trial(
                optuna.trial.create_trial(
                    params=params, distributions=dists, value=row.history[at.common]
                )
            )
        except (KeyError, ValueError):
            continue  # a trial without every searched value (or outside the space now)
    where = "no common rung" if at.common is None else at.label(at.common)
    title = f"Parameter importances, {len(study.trials)} trials\n{space.metrics[0]} at {where}"
    plot_importances(ax, study, space, title, "not enough trials at a common rung")


def plot_importances(
    ax, study: optuna.Study, space: SearchSpace, title: str | None = None, few: str | None = None
) -> None:
    """Optuna's parameter importances over COMPLETE trials (the first metric if several)."""
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    varying = [k for k in space.space if len({repr(t.params.get(k)) for t in complete}) > 1]
    ax.set_title(
        title or f"Parameter importances\n{space.metrics[0]}, {len(complete)} complete trials"
    )
    if len(complete) < 2 or not varying:
        few = few or "not enough trials"
        return _finish(ax, [], f"{few}: 2 complete ones with differing values needed")
    sign = -1.0 if space.modes[0] == "max" else 1.0
    # With several objectives, PED-ANOVA is given a target and ranks what makes it low.
    target = (lambda t: sign * t.values[0]) if len(space.modes) > 1 else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study, params=varying, target=target)
    except (ValueError, RuntimeError) as err:
        return _finish(ax, [], f"importances unavailable: {first_line(err)}")
    keys = list(found)[::-1]
    ax.barh(keys, [found[k] for k in keys], color="C0")
    ax.set_xlabel("importance (normalised to 1)")


def plot_versus(ax, rows: list[TrialRow], key: str, log: bool, metric: str, at: Rung) -> None:
    """The metric against `key`: every trial at each ASHA rung it reached (one colour a
    rung), or without ASHA at the common rung."""
    rows = [r for r in rows if isinstance(r.params.get(key), int | float)]
    shown = at.rungs if at.asha else [at.common] if at.common is not None else []
    drawn = []
    for i, epoch in enumerate(shown):
        there = [r for r in rows if epoch in r.history]
        if not there:
            continue
        label = f"epoch {epoch}: {len(there)} trial{'s' if len(there) != 1 else ''}"
        ax.scatter(
            [r.params[key] for r in there],
            [r.history[epoch] for r in there],
            label=label,
            color=f"C{i % 10}",
            marker="os^Dv<>p*h"[i % 10],
        )
        drawn += there
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap
    where = "ASHA rungs" if at.asha else "no common rung" if at.common is None else None
    where = where or at.label(at.common)
    ax.set(xlabel=key, ylabel=metric, title=f"{metric} against {key}\nat {where}")
    _finish(ax, drawn, f"no trial reported {metric}")


def plot_levels(
    ax, rows: list[TrialRow], kind: dict, space: SearchSpace, metric: str, at: Rung
) -> None:
    """The metric at the common rung per augmentation level, side by side (split by
    `model.pretrained` none or set, when searched): boxes over every trial that reached
    the rung, each trial a point marked by its state."""
    split = "model.pretrained" in space.space
    groups = [
        (level, pretrained)
        for level in space.distributions()["augmentation.level"].choices
        for pretrained in ((False, True) if split else (None,))
    ]
    jitter, xs, points = random.Random(0), [], []
    for pos, (level, pretrained) in enumerate(groups, 1):
        mine = [
            r
            for r in rows
            if at.common in r.history
            and r.params.get("augmentation.level") == level
            and (pretrained is None or pretrained == _is_set(r.params.get("model.pretrained")))
        ]
        boxed = [r.history[at.common] for r in mine]
        if boxed:
            ax.boxplot([boxed], positions=[pos], widths=0.5, showfliers=False)
        xs += [pos + jitter.uniform(-0.12, 0.12) for _ in mine]
        points += mine
    _scatter(ax, xs, [r.history[at.common] for r in points], [kind[r.trial_id] for r in points])
    names = [f"{lv}\n{'pretrained' if p else 'from scratch'}" if split else lv for lv, p in groups]
    ax.set_xticks(range(1, len(groups) + 1), names)
    where = "no common rung" if at.common is None else at.label(at.common)
    ax.set(xlabel="augmentation.level", ylabel=metric)
    ax.set_title(f"Per augmentation level, at {where}")
    _finish(ax, points, f"no trial reported {metric}")


def _scatter(ax, xs: list, ys: list, kinds: list[str]) -> None:
    for kind in dict.fromkeys(kinds):
        pick = [i for i, k in enumerate(kinds) if k == kind]
        style = STYLES.get(kind, OTHER)
        ax.scatter([xs[i] for i in pick], [ys[i] for i in pick], label=kind.lower(), **style)


def _finish(ax, points: list, empty: str) -> None:
    """A legend, or where nothing could be drawn, a note saying why."""
    if points:
        ax.legend(fontsize="small")
        return
    ax.text(0.5, 0.5, empty, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set(xticks=[], yticks=[])


def _value(t: FrozenTrial) -> float | None:
    """A COMPLETE trial's (first) value; a PRUNED one's last intermediate value."""
    if t.state == TrialState.COMPLETE and t.values:
        return t.values[0]
    if t.state == TrialState.PRUNED and t.intermediate_values:
        return t.intermediate_values[max(t.intermediate_values)]
    return None


def is_numeric(dist) -> bool:
    """Float and int distributions, and choices among numbers (`choice(0, 50)`)."""
    if isinstance(dist, CategoricalDistribution):
        return all(isinstance(c, int | float) and not isinstance(c, bool) for c in dist.choices)
    return True


def _is_set(pretrained: Any) -> bool:
    return pretrained not in (None, "", "none")


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
