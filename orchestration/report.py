"""`hmtl report`: figures and a table of a sweep's trials, logged to its MLflow parent run.

Reads only storage (Tune's experiment state and the Optuna study the searcher saved beside
it), so Ray need not run. Tune says what each trial reported last; the Optuna study says
what the sampler learned from: COMPLETE trials with their final value, PRUNED ones (stopped
by ASHA) with the value of the last epoch they reached, FAIL. Every file is written under a
temporary name and renamed into place, so an interrupted report leaves nothing half-written.
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

    files = [
        draw("optimization_history.png", lambda ax: _history(ax, study, metric, mode)),
        draw("param_importances.png", lambda ax: _importances(ax, study, space)),
    ]
    for key, dist in space.distributions().items():
        if _numeric(dist):
            log = getattr(dist, "log", False)
            plot = partial(_versus, rows=rows, kind=kind, key=key, log=log, metric=metric)
            files.append(draw(f"metric_vs_{key}.png", plot))
    if "augmentation.level" in space.space:
        plot = partial(_levels, rows=rows, kind=kind, space=space, metric=metric)
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


def _importances(ax, study: optuna.Study, space: SearchSpace) -> None:
    """Optuna's parameter importances over COMPLETE trials (the first metric if several)."""
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    varying = [k for k in space.space if len({repr(t.params.get(k)) for t in complete}) > 1]
    ax.set_title(f"Parameter importances\n{space.metrics[0]}, {len(complete)} complete trials")
    if len(complete) < 2 or not varying:
        return _finish(ax, [], "not enough trials: 2 complete ones with differing values needed")
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


def _versus(ax, rows: list[TrialRow], kind: dict, key: str, log: bool, metric: str) -> None:
    """The metric each trial reported last against its value of `key`."""
    rows = [r for r in rows if r.metric is not None and isinstance(r.params.get(key), int | float)]
    _scatter(
        ax,
        [r.params[key] for r in rows],
        [r.metric for r in rows],
        [kind[r.trial_id] for r in rows],
    )
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap
    ax.set(xlabel=key, ylabel=f"{metric} (last reported)", title=f"{metric} against {key}")
    _finish(ax, rows, f"no trial reported {metric}")


def _levels(ax, rows: list[TrialRow], kind: dict, space: SearchSpace, metric: str) -> None:
    """The metric per augmentation level, side by side (split by `model.pretrained` none or
    set, when searched): boxes over complete trials, every trial as a point."""
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
            if r.metric is not None
            and r.params.get("augmentation.level") == level
            and (pretrained is None or pretrained == _is_set(r.params.get("model.pretrained")))
        ]
        boxed = [r.metric for r in mine if kind[r.trial_id] == "COMPLETE"]
        if boxed:
            ax.boxplot([boxed], positions=[pos], widths=0.5, showfliers=False)
        xs += [pos + jitter.uniform(-0.12, 0.12) for _ in mine]
        points += mine
    _scatter(ax, xs, [r.metric for r in points], [kind[r.trial_id] for r in points])
    names = [f"{lv}\n{'pretrained' if p else 'from scratch'}" if split else lv for lv, p in groups]
    ax.set_xticks(range(1, len(groups) + 1), names)
    ax.set(xlabel="augmentation.level", ylabel=f"{metric} (last reported)")
    ax.set_title("Per augmentation level (boxes: complete trials)")
    _finish(ax, points, f"no trial reported {metric}")


def _tables(
    rows: list[TrialRow], ot: dict[str, FrozenTrial], space: SearchSpace, mode: str
) -> tuple[str, str]:
    """trials.csv (Tune's order, full precision) and trials.md (best first, 4 digits).
    The first metric is Tune's last result; further objectives are Optuna's final values."""
    metrics, keys = space.metrics, list(space.space)
    table = []
    for r in rows:
        t = ot.get(r.trial_id)
        extra = [t.values[i] if t and t.values else None for i in range(1, len(metrics))]
        state = t.state.name if t else "-"
        table.append(
            [r.trial_id, r.state, state, r.epoch, r.metric, *extra, *map(r.params.get, keys)]
        )
    header = ["trial", "tune_state", "optuna_state", "epochs", *metrics, *keys]
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
