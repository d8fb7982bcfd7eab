"""One Tune trial: a validated TrainConfig, trained on one worker or on a TorchTrainer.

Single-worker trials run `train` inside the Tune function itself (`TuneSession`): the
same report/checkpoint/resume contract at a fraction of the start-up cost of a Train
run (STACK-NOTES.md: ~2 s against ~20 s). Trials with several workers build a
TorchTrainer whose run name is fixed per trial, so a restarted trial resumes from its
latest Train checkpoint.

What a single-worker trial runs is looked up in `RUNNERS` by the space's `runs`: one
training run, or an active-learning loop (orchestration/sweep/active_trial.py) for a study's
`active` stage.

Tune reuses a finished trial's process for the next one (`reuse_actors`); every trial
runs inside `trial_scope`, which seeds the global RNGs and undoes what it changed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray.train  # (1) Train V2: TorchTrainer, RunConfig, Checkpoint
import ray.tune  # (2) Tune function API: report, get_checkpoint, get_context
from ray.train.torch import TorchConfig, TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from hmtl.orchestration.platform import console
from hmtl.orchestration.platform.cluster import Plan
from hmtl.orchestration.platform.cost import ray_rate
from hmtl.orchestration.sweep.active_trial import run_active_trial
from hmtl.orchestration.sweep.phases import TrialPhases
from hmtl.orchestration.sweep.reuse import trial_scope
from hmtl.orchestration.sweep.space import SearchSpace
from hmtl.orchestration.sweep.tune_session import TuneSession
from hmtl.orchestration.sweep.worker import refuse_broken_gpu_node, train_loop_per_worker
from hmtl.orchestration.tracking.pretrained import Source, is_run_reference, weights_of
from hmtl.trainables.config import TrainConfig
from hmtl.trainables.settings import settings
from hmtl.trainables.train import train

TRAIN_RUN_NAME = "train"
RESET_TIMEOUT_S = "30"


def make_trial(
    space: SearchSpace,
    plan: Plan,
    sweep_path: str,
    storage_filesystem=None,
    origin: str | None = None,
    quiet: bool = True,
    sources: dict[str, Source] | None = None,
):
    """The Tune function for this sweep: params (dotted keys) -> one training run.

    `sweep_path` is where Tune keeps this sweep (`<storage>/sweeps/<sweep>`, without the
    scheme when a `storage_filesystem` is given); relative paths in trial configs are
    read against `origin` (the folder the sweep was started from). `quiet` keeps Ray's
    per-checkpoint log lines off the console (orchestration/platform/console.py). `sources` are the
    `model.pretrained` references the sweep resolved before Ray started; a trial fetches
    its source's weights where it runs (orchestration/tracking/pretrained.py).
    """

    origin = origin or os.getcwd()
    # HMTL_GC_FREEZE=0 leaves every object to the collector (benchmarks, diagnosis); read
    # here, in the driver, because Ray's workers keep the environment Ray started with.
    freeze = settings().gc_freeze  # FREEZE_ENV

    def run_trial(params: dict[str, Any]) -> None:
        phases = TrialPhases(ray.tune.get_context().get_trial_id())
        raw = space.trial_config(params)
        cfg = resolve_paths(raw, origin)
        source = (sources or {}).get(raw.model.pretrained)
        if storage_filesystem is not None:
            # A trial Tune retries after a storage outage first waits, with backoff, for the
            # store to answer (trainables/data/retrying.py) rather than failing again at once.
            storage_filesystem.get_file_info(sweep_path)
        # Before this process takes the next trial, Tune waits this long (Ray's default: 2 s)
        # for a stopped trial's thread to wind up (its clean-up included); past it, the next
        # trial fails. Read in this process at that moment, so set here.
        os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", RESET_TIMEOUT_S)
        if quiet:
            console.quiet(console.TRIAL_LOGGERS)
        with trial_scope(cfg.runtime.seed, freeze):  # a reused process trains as a fresh one would
            if plan.use_train:
                fit_trainer(cfg, source)
                return
            refuse_broken_gpu_node(cfg.runtime.device, plan.gpus_per_worker)
            rate = ray_rate(plan.cpus_per_worker, plan.gpus_per_worker)
            session = TuneSession(rate, phases)
            try:
                with weights_of(source) as weights:
                    RUNNERS[space.runs](space, params, cfg, session, weights)
            finally:
                session.close()
                phases.save()  # only with HMTL_PHASES_DIR set (benchmarks/startup_profile.py)

    def fit_trainer(cfg: TrainConfig, source: Source | None) -> None:
        trial_id = ray.tune.get_context().get_trial_id()  # (5) names the Train run's folder
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={
                "cfg": cfg.model_dump(mode="json"),
                "quiet": quiet,
                "pretrained": dataclasses.asdict(source) if source else None,
                # What each worker holds, for its compute accounting
                # (orchestration/platform/cost.py).
                "resources": {"cpus": plan.cpus_per_worker, "gpus": plan.gpus_per_worker},
            },
            # GPUs held with runtime.device: cpu train over gloo (Ray picks nccl for GPUs).
            torch_config=TorchConfig(backend="gloo") if cfg.runtime.device == "cpu" else None,
            scaling_config=ray.train.ScalingConfig(
                num_workers=plan.workers,
                use_gpu=plan.gpus_per_worker > 0,
                resources_per_worker={"CPU": plan.cpus_per_worker, "GPU": plan.gpus_per_worker},
                placement_strategy=plan.placement,  # one node where one holds the trial
            ),
            run_config=ray.train.RunConfig(
                name=TRAIN_RUN_NAME,
                storage_path=f"{sweep_path}/{trial_dirname(trial_id)}",
                storage_filesystem=storage_filesystem,
                callbacks=[TuneReportCallback()],  # (6) rank 0's reports reach Tune
                failure_config=ray.train.FailureConfig(max_failures=2),
            ),
        )
        trainer.fit()

    return run_trial


def run_train(
    space: SearchSpace, params: dict, cfg: TrainConfig, session: TuneSession, weights: str | None
) -> None:
    """A trial that is one training run."""
    train(cfg, session, pretrained=weights)


RUNNERS: dict[str, Callable[..., None]] = {"train": run_train, "active": run_active_trial}
"""What a trial runs (`SearchSpace.runs`) -> the function that runs it in the Tune function,
given the space, the trial's params, its TrainConfig, the session and fetched weights."""


def resolve_paths(cfg: TrainConfig, origin: str) -> TrainConfig:
    """Relative dataset, cache and weights paths, read against the sweep's own folder.

    Tune runs each trial in a folder of its own; without this, every trial would draw
    and cache its own copy of the synthetic faces there. On a node that lacks `origin`
    (another machine of a cluster) the paths stay relative to the job's folder.
    """
    if not Path(origin).is_dir():
        return cfg

    def absolute(value: str | None) -> str | None:
        if value is None or value == "synthetic" or "://" in value or os.path.isabs(value):
            return value
        if is_run_reference(value):  # runs:/<id> is no path
            return value
        return str(Path(origin) / value)

    data = cfg.data.model_copy(
        update={"cache_dir": absolute(cfg.data.cache_dir), "source": absolute(cfg.data.source)}
    )
    model = cfg.model.model_copy(update={"pretrained": absolute(cfg.model.pretrained)})
    return cfg.model_copy(update={"data": data, "model": model})


def trial_dirname(trial_id: str) -> str:
    """Folder of a trial under the sweep; its Train run, if any, is `<this>/train/`."""
    return f"trial-{trial_id}"
