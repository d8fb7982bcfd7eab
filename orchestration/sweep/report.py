"""`hmtl report`: figures and a table of a sweep's trials, logged to its MLflow parent run.

Reads only storage (Tune's experiment state and the Optuna study the searcher saved beside
it), so Ray need not run. Tune's results give every trial's metric per epoch: the table
ranks trials by their best epoch (orchestration/sweep/best.py), and importances and metric-vs-
parameter plots compare trials at ASHA's rungs (orchestration/sweep/rungs.py), so trials stopped
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
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import pyarrow.fs as pafs
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.sweep.manifest import read_manifest
from hmtl.orchestration.sweep.report_plots import (
    Rung,
    first_line,
    is_numeric,
    plot_history,
    plot_importances,
    plot_levels,
    plot_rung_importances,
    plot_versus,
)
from hmtl.orchestration.sweep.rungs import common_rung, space_rungs
from hmtl.orchestration.sweep.search import HmtlOptunaSearch
from hmtl.orchestration.sweep.space import SearchSpace, SpaceError, validate_space
from hmtl.orchestration.sweep.status import TrialRow, trial_rows
from hmtl.orchestration.tracking.tags import ROLE_TAG, SWEEP_TAG
from hmtl.trainables.atomic import write_atomic
from hmtl.trainables.data.storage import StorageError


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
        raise StorageError(f"{sweep_uri}: unreadable sweep state ({first_line(err)})") from None
    study, ot = _restore_study(space, Store.open(sweep_uri))
    # A trial's state in the figures: Optuna's, or Tune's status if Optuna never saw it.
    kind = {r.trial_id: ot[r.trial_id].state.name if r.trial_id in ot else r.state for r in rows}
    folder = Path(out or Path("hmtl-runs", "reports", space.name)).resolve()
    folder.mkdir(parents=True, exist_ok=True)

    def draw(name: str, plot: Callable[[Any], None]) -> Path:
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        plot(fig.add_subplot())
        return write_atomic(folder / name, lambda path: fig.savefig(path, format="png", dpi=110))

    # Trials compared where they all reported: at ASHA's rungs (orchestration/sweep/rungs.py).
    histories = {r.trial_id: r.history for r in rows}
    rungs, asha = space_rungs(space, histories)
    at = Rung(common_rung(histories, rungs), rungs, asha)
    if len(space.metrics) == 1:
        importances = partial(plot_rung_importances, rows=rows, space=space, at=at)
    else:  # no early stopping with several objectives: Optuna's complete trials
        importances = partial(plot_importances, study=study, space=space)
    files = [
        draw("optimization_history.png", lambda ax: plot_history(ax, study, metric, mode)),
        draw("param_importances.png", importances),
    ]
    for key, dist in space.distributions().items():
        if is_numeric(dist):
            log = getattr(dist, "log", False)
            plot = partial(plot_versus, rows=rows, key=key, log=log, metric=metric, at=at)
            files.append(draw(f"metric_vs_{key}.png", plot))
    if "augmentation.level" in space.space:
        plot = partial(plot_levels, rows=rows, kind=kind, space=space, metric=metric, at=at)
        files.append(draw("augmentation_levels.png", plot))
    csv_text, md_text = _tables(rows, ot, space, mode)
    files.append(write_atomic(folder / "trials.csv", lambda path: path.write_text(csv_text)))
    files.append(write_atomic(folder / "trials.md", lambda path: path.write_text(md_text)))
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
        raise StorageError(f"{sweep.uri}: unreadable Optuna study ({first_line(err)})") from None
    study = searcher._ot_study
    frozen = {t.number: t for t in study.trials}
    ot = {tid: frozen[t.number] for tid, t in searcher._ot_trials.items() if t.number in frozen}
    return study, ot


def _tables(
    rows: list[TrialRow], ot: dict[str, FrozenTrial], space: SearchSpace, mode: str
) -> tuple[str, str]:
    """trials.csv (Tune's order, full precision) and trials.md (best first, 4 digits).
    The first metric is the trial's value at its best epoch (orchestration/sweep/best.py);
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
            f"{tracking_uri}: could not log the report ({first_line(err)}); "
            f"the files are in {folder}"
        ) from None
    return runs[0].info.run_id


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return (f"{value:.4g}" if isinstance(value, float) else str(value)).replace("|", "\\|")
