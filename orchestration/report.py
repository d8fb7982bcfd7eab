"""`hmtl report`: figures and a table of a sweep's trials, logged to its MLflow parent run.

Reads only storage (Tune's experiment state and the Optuna study the searcher saved beside
it), so Ray need not run. Tune's results give every trial's metric per epoch: the table
ranks trials by their best epoch (orchestration/best.py), and importances and metric-vs-
parameter plots compare trials at ASHA's rungs (orchestration/rungs.py), so trials stopped
early count. The Optuna study says what the sampler learned from (the history plot):
COMPLETE trials with their final value, PRUNED ones (stopped by ASHA) with the value of the
last epoch they reached, FAIL. Every file is written under a temporary name and renamed into
place, so an interrupted report leaves nothing half-written.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import math
import os
import pickle
import random
import tempfile
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import pyarrow.fs as pafs
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from orchestration.rungs import common_rung, space_rungs
from orchestration.search import HmtlOptunaSearch
from orchestration.space import SearchSpace, SpaceError, validate_space
from orchestration.status import TrialRow, trial_rows
from orchestration.store import Store
from orchestration.sweep import read_manifest
from trainables.data.storage import StorageError

# By state, the same everywhere: pruned trials hollow triangles; anything else (FAIL with a
# partial result, a trial still running) red crosses.
STYLES = {
    "COMPLETE": {"marker": "o", "facecolors": "C0", "edgecolors": "C0"},
    "PRUNED": {"marker": "v", "facecolors": "none", "edgecolors": "C1"},
}
OTHER = {"marker": "x", "c": "C3"}


@dataclass
class Report:
    folder: Path
    """Where the files were written."""
    files: list[Path]
    """Every file written."""
    parent_run_id: str | None
    """The MLflow parent run they were logged to (None without tracking)."""


def build_report(
    sweep_uri: str | Store, out: str | Path | None = None, tracking_uri: str | None = None
) -> Report:
    """Draw the sweep at `sweep_uri`, write its trial table, log both to its parent run.

    `out` defaults to `hmtl-runs/reports/<sweep>/`; `tracking_uri` to the manifest's.
    """
    manifest = read_manifest(sweep_uri)
    space = validate_space(manifest["space"])
    try:
        rows, metric, mode = trial_rows(sweep_uri)
    except (SpaceError, StorageError):
        raise
    except (OSError, ValueError) as err:
        raise StorageError(f"{sweep_uri}: unreadable sweep state ({_line(err)})") from None
    study, ot = _restore_study(space, Store.open(sweep_uri))
    # A trial's state in the figures: Optuna's, or Tune's status if Optuna never saw it.
    kind = {r.trial_id: ot[r.trial_id].state.name if r.trial_id in ot else r.state for r in rows}
    folder = Path(out or Path("hmtl-runs", "reports", space.name)).resolve()
    folder.mkdir(parents=True, exist_ok=True)

    def draw(name: str, plot: Callable[[Any], None]) -> Path:
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        plot(fig.add_subplot())
        return _atomic(folder / name, lambda path: fig.savefig(path, format="png", dpi=110))

    # Trials compared where they all reported: at ASHA's rungs (orchestration/rungs.py).
    histories = {r.trial_id: r.history for r in rows}
    rungs, asha = space_rungs(space, histories)
    at = Rung(common_rung(histories, rungs), rungs, asha)
    if len(space.metrics) == 1:
        importances = partial(_rung_importances, rows=rows, space=space, at=at)
    else:  # no early stopping with several objectives: Optuna's complete trials
        importances = partial(_importances, study=study, space=space)
    files = [
        draw("optimization_history.png", lambda ax: _history(ax, study, metric, mode)),
        draw("param_importances.png", importances),
    ]
    for key, dist in space.distributions().items():
        if _numeric(dist):
            log = getattr(dist, "log", False)
            plot = partial(_versus, rows=rows, key=key, log=log, metric=metric, at=at)
            files.append(draw(f"metric_vs_{key}.png", plot))
    if "augmentation.level" in space.space:
        plot = partial(_levels, rows=rows, kind=kind, space=space, metric=metric, at=at)
        files.append(draw("augmentation_levels.png", plot))
    csv_text, md_text = _tables(rows, ot, space, mode)
    files.append(_atomic(folder / "trials.csv", lambda path: path.write_text(csv_text)))
    files.append(_atomic(folder / "trials.md", lambda path: path.write_text(md_text)))
    run_id = _log(tracking_uri or manifest.get("tracking_uri"), space.name, files, folder)
    return Report(folder, files, run_id)


def _restore_study(space: SearchSpace, sweep: Store) -> tuple[optuna.Study, dict[str, FrozenTrial]]:
    """The Optuna study Tune saved with the sweep and each Tune trial's trial in it (the newest
    `searcher-state-*.pkl`, as `restore_from_dir` picks it; copied first, since the searcher
    unpickles from a local file and the sweep may be on S3)."""
    multi = len(space.metrics) > 1
    metric, mode = (space.metrics, space.modes) if multi else (space.metrics[0], space.modes[0])
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the throwaway study is not news
    try:
        searcher = HmtlOptunaSearch(space, metric=metric, mode=mode)
    finally:
        optuna.logging.set_verbosity(verbosity)
    pattern = HmtlOptunaSearch.CKPT_FILE_TMPL.format("*")
    try:
        infos = sweep.fs.get_file_info(pafs.FileSelector(sweep.root))
        names = [i.base_name for i in infos if fnmatch.fnmatch(i.base_name, pattern)]
        if not names:
            raise StorageError(f"{sweep.uri}: no saved Optuna study ({pattern})")
        with tempfile.TemporaryDirectory(prefix="hmtl-report-") as scratch:
            local = Path(scratch, "searcher.pkl")
            with sweep.fs.open_input_stream(sweep.path(max(names))) as f:
                local.write_bytes(f.readall())
            searcher.restore(str(local))
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError) as err:
        raise StorageError(f"{sweep.uri}: unreadable Optuna study ({_line(err)})") from None
    study = searcher._ot_study
    frozen = {t.number: t for t in study.trials}
    ot = {tid: frozen[t.number] for tid, t in searcher._ot_trials.items() if t.number in frozen}
    return study, ot


def _history(ax, study: optuna.Study, metric: str, mode: str) -> None:
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


def _rung_importances(ax, rows: list[TrialRow], space: SearchSpace, at: Rung) -> None:
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
    title = f"Parameter importances\n{space.metrics[0]} at {where}, {len(study.trials)} trials"
    _importances(ax, study, space, title, "not enough trials at a common rung")


def _importances(
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
        return _finish(ax, [], f"importances unavailable: {_line(err)}")
    keys = list(found)[::-1]
    ax.barh(keys, [found[k] for k in keys], color="C0")
    ax.set_xlabel("importance (normalised to 1)")


def _versus(ax, rows: list[TrialRow], key: str, log: bool, metric: str, at: Rung) -> None:
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


def _levels(
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


def _tables(
    rows: list[TrialRow], ot: dict[str, FrozenTrial], space: SearchSpace, mode: str
) -> tuple[str, str]:
    """trials.csv (Tune's order, full precision) and trials.md (best first, 4 digits).
    The first metric is the trial's value at its best epoch (orchestration/best.py);
    further objectives are Optuna's final values."""
    metrics, keys = space.metrics, list(space.space)
    table = []
    for r in rows:
        t = ot.get(r.trial_id)
        extra = [t.values[i] if t and t.values else None for i in range(1, len(metrics))]
        state = t.state.name if t else "-"
        best_epoch = r.peak.epoch if r.peak else None
        values = [r.params.get(k) for k in keys]
        table.append([r.trial_id, r.state, state, r.epoch, r.metric, best_epoch, *extra, *values])
    header = ["trial", "tune_state", "optuna_state", "epochs", metrics[0], "best_epoch"]
    header += [*metrics[1:], *keys]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(
        [header, *[["" if v is None else v for v in row] for row in table]]
    )
    sign = -1 if mode == "max" else 1
    table.sort(key=lambda row: (row[4] is None, sign * (row[4] or 0)))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in table]
    return buffer.getvalue(), f"# Trials of sweep {space.name}\n\n" + "\n".join(lines) + "\n"


def _log(tracking_uri: str | None, sweep: str, files: list[Path], folder: Path) -> str | None:
    """Log `files` under `report/` on the sweep's parent run; None when there is none."""
    if not tracking_uri:
        return None
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[10:]).exists():
        return None  # MlflowClient would create an empty database here
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from orchestration.tracking import ROLE_TAG, SWEEP_TAG

    try:
        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(sweep)
        query = f"tags.`{SWEEP_TAG}` = '{sweep}' and tags.`{ROLE_TAG}` = 'sweep'"
        runs = client.search_runs([experiment.experiment_id], query) if experiment else []
        if not runs:
            return None
        for path in files:
            client.log_artifact(runs[0].info.run_id, str(path), "report")
    except (MlflowException, OSError) as err:
        raise StorageError(
            f"{tracking_uri}: could not log the report ({_line(err)}); the files are in {folder}"
        ) from None
    return runs[0].info.run_id


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


def _numeric(dist) -> bool:
    """Float and int distributions, and choices among numbers (`choice(0, 50)`)."""
    if isinstance(dist, CategoricalDistribution):
        return all(isinstance(c, int | float) and not isinstance(c, bool) for c in dist.choices)
    return True


def _is_set(pretrained: Any) -> bool:
    return pretrained not in (None, "", "none")


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    temp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        write(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return (f"{value:.4g}" if isinstance(value, float) else str(value)).replace("|", "\\|")


def _line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
