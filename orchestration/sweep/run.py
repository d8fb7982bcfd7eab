"""A sweep: Ray Tune with Optuna (and ASHA) over a search space, tracked in MLflow.

    sweep (Tuner) -> trial (orchestration/sweep/trial.py) -> worker (orchestration/sweep/worker.py)

Everything that can be refused is checked before Ray is asked for anything: the search
space (validated when loaded), the storage location and the resource plan.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.tune  # (1) Tuner, TuneConfig, RunConfig, with_resources
from optuna.distributions import CategoricalDistribution
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from hmtl.orchestration.platform import console
from hmtl.orchestration.platform.cluster import (
    Plan,
    autoscaler_node_types,
    check_local,
    cluster_nodes,
    has_driver_resource,
    init_ray,
    plan_resources,
)
from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.sweep.best import best_trial, frame_rows, trial_peak
from hmtl.orchestration.sweep.manifest import read_manifest, write_manifest
from hmtl.orchestration.sweep.optuna_store import (
    StudyMirror,
    check_url,
    storage_url,
    study_name,
)
from hmtl.orchestration.sweep.search import make_scheduler, make_searcher
from hmtl.orchestration.sweep.space import TRIAL_KEY, SearchSpace, SpaceError, validate_space
from hmtl.orchestration.sweep.trial import make_trial, trial_dirname
from hmtl.orchestration.tracking.callback import MlflowCallback
from hmtl.orchestration.tracking.native import training_view_path
from hmtl.orchestration.tracking.pretrained import Source, sweep_sources
from hmtl.orchestration.tracking.probe import probe, start_tracking_store
from hmtl.orchestration.tracking.queue import Spool, spooled
from hmtl.trainables.config import ConfigError
from hmtl.trainables.data.dataset import refuse_unlabelled
from hmtl.trainables.data.prepared import DatasetError
from hmtl.trainables.data.storage import StorageError
from hmtl.trainables.settings import settings, variable


@dataclass
class SweepResult:
    name: str
    path: str
    best_trial: str | None
    best_params: dict[str, Any]
    best_metrics: dict[str, Any]
    best_checkpoint: str | None
    trials: int
    errors: int
    epochs_run: int
    """Trial-epochs spent, summed over trials (what early stopping saves)."""
    best_epoch: int | None = None
    """The best trial's best epoch; `best_metrics` and `best_checkpoint` are that epoch's."""
    undelivered: int = 0
    """MLflow operations still waiting in the tracking spool (replayed by `hmtl resume`)."""
    spool: str | None = None
    optuna_storage: str | None = None
    """The Optuna database holding the sweep's study (credential-free), for optuna-dashboard."""
    optuna_study: str | None = None


def sweep_path(storage: str, name: str) -> str:
    """Where a sweep lives, as a user would type it (a local path or `s3://...`)."""
    return Store.open(storage).display("sweeps", name)


def preflight(
    space: SearchSpace, storage: str, tracking_uri: str | None = None
) -> dict[str, Source]:
    """Refuse, before Ray starts, what would make every trial fail: a missing local dataset
    or weights that do not load (in the base or among searched choices), an unreachable
    tracking server or an unwritable storage folder. Returns the resolved `model.pretrained`
    sources (orchestration/tracking/pretrained.py), by reference."""
    base = space.trial_config({})
    values = {"data.source": [base.data.source]}
    for key, dist in space.distributions().items():
        if key in values and isinstance(dist, CategoricalDistribution):
            values[key] = list(dist.choices)
    for key, candidates in values.items():
        for value in candidates:
            if value in (None, "synthetic") or "://" in str(value):
                continue
            if not Path(value).exists():
                hint = " (prepare it with `hmtl data prepare`)" if key == "data.source" else ""
                raise SpaceError(
                    f"{space.source or space.name}: {key}: {value}: no such file or folder{hint}"
                )
            if key == "data.source" and not Path(value, "card.json").is_file():
                raise SpaceError(
                    f"{space.source or space.name}: {key}: {value}: no dataset card "
                    "(card.json); is it a prepared dataset? (hmtl data prepare)"
                )
    try:
        refuse_unlabelled(base.data, base.tasks.main.enabled())
    except DatasetError as err:
        raise SpaceError(f"{space.source or space.name}: {err}") from None
    if tracking_uri:
        probe(tracking_uri)  # before the storage check, which writes (and removes) a probe
    try:  # runs:/ sources are looked up in the sweep's MLflow
        sources = sweep_sources(space, tracking_uri, check_shapes=not _shape_searched(space))
    except (ConfigError, StorageError, FileNotFoundError) as err:
        raise SpaceError(f"{space.source or space.name}: {err}") from None
    store = Store.open(storage)
    if not store.remote and autoscaler_node_types():
        raise SpaceError(
            f"--storage {storage}: a local folder on an autoscaling cluster; its nodes share "
            "nothing but object storage, so use --storage s3://bucket/prefix"
        )
    store.check_writable()
    return sources


def _shape_searched(space: SearchSpace) -> bool:
    """Whether the backbone's shape varies by trial, so weights cannot be checked up front."""
    return any(k in space.space for k in ("model.backbone", "model.width", "data.channels"))


# Tune restarts an errored trial from its latest checkpoint this many times. Storage calls
# already wait out an outage for HMTL_STORAGE_RETRY_S, and each restart waits again before
# training, so a storage outage costs a trial a restart only once a whole budget is spent.
TRIAL_RETRIES = 3
# Tune snapshots the experiment state (what resume reads) at most every 10 s by default; a
# sweep killed inside that window comes back without its newest trials, which then start
# over as new trials. The state is small, so it is written every second.
STATE_PERIOD_S = "1"
REUSE_ENV = variable("reuse_actors")  # HMTL_REUSE_ACTORS


def run_sweep(
    space: SearchSpace,
    storage: str,
    tracking_uri: str,
    address: str | None = None,
    num_cpus: int | None = None,
    verbose: int = 1,
    callbacks: list | None = None,
    force_train: bool = False,
    announce: Callable[[], None] | None = None,
    tracking: dict[str, Any] | None = None,
    origin: str | None = None,
) -> SweepResult:
    """Run the sweep to the end and return its best trial.

    `force_train` runs even single-worker trials through a TorchTrainer (benchmarks);
    `announce()` is called once every check has passed, just before Ray starts.
    `verbose` 2 or more keeps every library's log lines (orchestration/platform/console.py).
    `tracking` places the sweep inside a study in MLflow (see `MlflowCallback`); `origin` is
    the folder relative paths are read against (default: the current one).
    """
    check_local(space, address, num_cpus, force_train)  # first: preflight makes the storage
    optuna = _optuna_study(space, storage, tracking_uri, tracking)  # a local check only
    sources = preflight(space, storage, tracking_uri)
    store = Store.open(storage)
    if optuna is not None:
        optuna.start()
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_PERIOD_S)
    if announce is not None:
        announce()
    _console(verbose)
    init_ray(address, num_cpus=num_cpus)
    start_tracking_store(tracking_uri)  # beside the first trials' start; tracking waits
    plan = _plan(space, force_train)
    origin = origin or os.getcwd()
    write_manifest(store, space, tracking_uri, origin, optuna)
    tuner = ray.tune.Tuner(  # (2) one Tune trial per sampled configuration
        _trainable(space, plan, store, origin, quiet=verbose < 2, sources=sources),
        param_space=_param_space(space),
        tune_config=_tune_config(space, plan, optuna),
        run_config=_run_config(
            space, store, tracking_uri, verbose, callbacks or [], sources, tracking
        ),
    )
    return summarize(space, tuner.fit(), store, optuna)


def resume_sweep(
    path: str, address: str | None = None, num_cpus: int | None = None, verbose: int = 1
) -> SweepResult:
    """Continue a sweep from its storage: unfinished and errored trials resume from their
    latest checkpoints, finished ones are kept, the Optuna study keeps its history."""
    sweep = Store.open(path)
    manifest = read_manifest(path)
    space = validate_space(manifest["space"])
    store = _parent_store(sweep)
    probe(manifest["tracking_uri"])  # the restored tracker replays its spool there
    sources = _resume_sources(space, manifest)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_PERIOD_S)
    check_local(space, address, num_cpus)
    _console(verbose)
    init_ray(address, num_cpus=num_cpus)
    plan = _plan(space, False)
    tuner = ray.tune.Tuner.restore(  # (4) experiment state, searcher and callbacks come back
        sweep.root,
        trainable=_trainable(
            space, plan, store, manifest["origin"], quiet=verbose < 2, sources=sources
        ),
        resume_unfinished=True,
        resume_errored=True,
        storage_filesystem=sweep.filesystem,
    )
    result = summarize(space, tuner.fit(), store)
    # The restored searcher copies into the database its mirror was saved with.
    known = manifest.get("optuna") or {}
    result.optuna_storage, result.optuna_study = known.get("storage"), known.get("study")
    return result


def _optuna_study(
    space: SearchSpace, storage: str | Store, tracking_uri: str, tracking: dict | None
) -> StudyMirror | None:
    """Where the sweep's Optuna study is also kept (sweep/optuna_store.py), its URL checked
    locally; None for explicit trials (no searcher) or where no database is set."""
    url = None if space.trials else storage_url(storage, tracking_uri)
    if url is None:
        return None
    check_url(url)
    name = study_name(space.name, (tracking or {}).get("experiment"))
    directions = ["minimize" if mode == "min" else "maximize" for mode in space.modes]
    return StudyMirror(url, name, directions, list(space.metrics))


def _resume_sources(space: SearchSpace, manifest: dict[str, Any]) -> dict[str, Source]:
    """The sweep's `model.pretrained` sources again (they were checked when it started)."""
    try:
        return sweep_sources(
            space, manifest["tracking_uri"], manifest["origin"], check_shapes=False
        )
    except (ConfigError, StorageError, FileNotFoundError) as err:
        raise SpaceError(f"{space.source or space.name}: {err}") from None


def _parent_store(sweep: Store) -> Store:
    """The storage root of a sweep at `<root>/sweeps/<name>` (keeping its filesystem)."""
    root = sweep.root.rsplit("/sweeps/", 1)[0]
    return Store(sweep.uri.rsplit("/sweeps/", 1)[0], sweep.filesystem, root)


def _plan(space: SearchSpace, force_train: bool) -> Plan:
    r = space.resources
    return plan_resources(
        r.workers_per_trial,
        r.cpus_per_worker,
        r.gpus_per_worker,
        cluster_nodes(),
        cap=space.max_concurrent_trials,
        force_train=force_train,
        driver_resource=has_driver_resource(),
    )


def _trainable(
    space: SearchSpace,
    plan: Plan,
    store: Store,
    origin: str,
    quiet: bool = True,
    sources: dict[str, Source] | None = None,
):
    sweep = store.path("sweeps", space.name)
    trial = make_trial(space, plan, sweep, store.filesystem, origin, quiet=quiet, sources=sources)
    return ray.tune.with_resources(trial, plan.trial_resources())


def _console(verbose: int) -> None:
    """Tune's own loggers only (no TensorBoard files or hint: `_run_config` names JSON and
    CSV); below verbose 2, the driver's library chatter is quieted too."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if verbose < 2:
        console.quiet(console.DRIVER_LOGGERS)


def _param_space(space: SearchSpace) -> dict[str, Any] | None:
    """Explicit trials are a grid over their indices (Tune's default generator runs each
    once, in order); a searched space leaves the configs to the searcher."""
    if not space.trials:
        return None
    return {TRIAL_KEY: ray.tune.grid_search(list(range(len(space.trials))))}


def _tune_config(
    space: SearchSpace, plan: Plan, mirror: StudyMirror | None = None
) -> ray.tune.TuneConfig:
    multi = len(space.metrics) > 1
    return ray.tune.TuneConfig(
        search_alg=None if space.trials else make_searcher(space, mirror),
        scheduler=make_scheduler(space),
        metric=None if multi else space.metrics[0],
        mode=None if multi else space.modes[0],
        num_samples=1 if space.trials else space.num_samples,
        max_concurrent_trials=plan.max_concurrent,
        trial_dirname_creator=lambda trial: trial_dirname(trial.trial_id),
        trial_name_creator=lambda trial: f"trial-{trial.trial_id}",
        # A finished trial's process trains the next one: no new process, imports or data
        # decoding per trial (orchestration/sweep/reuse.py resets what a trial leaves behind).
        # HMTL_REUSE_ACTORS=0 gives every trial a fresh process (benchmarks, diagnosis).
        reuse_actors=settings().reuse_actors,
    )


def _run_config(
    space: SearchSpace,
    store: Store,
    tracking_uri: str,
    verbose: int,
    callbacks: list,
    sources: dict[str, Source] | None = None,
    tracking: dict[str, Any] | None = None,
) -> ray.tune.RunConfig:
    short = [key.rsplit(".", 1)[-1] for key in space.space]
    columns = {
        key: name if short.count(name) == 1 else key
        for key, name in zip(space.space, short, strict=True)
    }
    if space.trials:
        columns = {TRIAL_KEY: TRIAL_KEY}
    reporter = ray.tune.CLIReporter(
        parameter_columns=columns,
        metric_columns=["epoch", *space.metrics],
        max_report_frequency=30,
        sort_by_metric=len(space.metrics) == 1,  # Tune passes the metric and mode on
    )
    artifact_root = None
    if tracking_uri.startswith("sqlite:///"):
        # MLflow's default would be ./mlruns wherever the command ran; keep artifacts
        # beside the database instead (a tracking server manages its own).
        database = Path(tracking_uri[len("sqlite:///") :])
        artifact_root = (database.parent / "mlflow-artifacts").resolve().as_uri()
    lineage = {ref: source.tags() for ref, source in (sources or {}).items()}
    tracker = MlflowCallback(
        tracking_uri, space, artifact_root, store, lineage=lineage, context=tracking
    )
    return ray.tune.RunConfig(  # (3) where Tune keeps the sweep (what resume reads)
        name=space.name,
        storage_path=store.path("sweeps"),
        storage_filesystem=store.filesystem,
        # result.json and progress.csv per trial, as Tune's defaults would; no TensorBoard.
        callbacks=[tracker, JsonLoggerCallback(), CSVLoggerCallback(), *callbacks],
        progress_reporter=reporter,
        verbose=verbose,
        failure_config=ray.tune.FailureConfig(max_failures=TRIAL_RETRIES),
    )


def summarize(
    space: SearchSpace, results, store: Store, optuna: StudyMirror | None = None
) -> SweepResult:
    """The sweep's answer: its best trial by the one definition of best (orchestration/
    best.py), with that trial's best epoch, the metrics reported then and its checkpoint."""
    path = store.display("sweeps", space.name)
    common = {
        "undelivered": spooled(store, space.name),
        "spool": Spool(store, space.name).where,
        "optuna_storage": optuna.where if optuna else None,
        "optuna_study": optuna.name if optuna else None,
    }
    errors = sum(1 for r in results if r.error is not None)
    epochs = sum(int((r.metrics or {}).get("epoch", 0)) for r in results)
    metric, mode = space.metrics[0], space.modes[0]
    peaks, reported = {}, {}
    for r in results:
        trial_id = (r.metrics or {}).get("trial_id")
        if trial_id is None:
            continue
        rows = frame_rows(r.metrics_dataframe)
        checkpoints = [(c.path, m) for c, m in r.best_checkpoints or []]
        peaks[trial_id] = trial_peak(rows, checkpoints, metric, mode)
        reported[trial_id] = (r, rows)
    found = best_trial(peaks, mode)
    if found is None:
        return SweepResult(
            space.name, path, None, {}, {}, None, len(results), errors, epochs, **common
        )
    trial_id, peak = found
    best, rows = reported[trial_id]
    at_peak = next((row for row in rows if row.get("epoch") == peak.epoch), {})
    metrics = {k: v for k, v in at_peak.items() if not (isinstance(v, float) and math.isnan(v))}
    return SweepResult(
        name=space.name,
        path=path,
        best_trial=trial_id,
        best_params=dict(best.config or {}),
        best_metrics={**metrics, "epoch": peak.epoch, metric: peak.value},
        best_checkpoint=store.as_uri(peak.checkpoint) if peak.checkpoint else None,
        trials=len(results),
        errors=errors,
        epochs_run=epochs,
        best_epoch=peak.epoch,
        **common,
    )


def mlflow_ui_command(tracking_uri: str, sweep: str | None = None) -> str:
    """How to look at the sweep: the command and the page of its training runs."""

    page = training_view_path(tracking_uri, sweep) if sweep else "/"
    if tracking_uri.startswith("sqlite:///"):
        return (
            f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000"
            f"   # then open http://127.0.0.1:5000{page}"
        )
    return (
        f"open {tracking_uri.rstrip('/')}{page} in a browser (through an SSH tunnel on a cluster)"
    )
