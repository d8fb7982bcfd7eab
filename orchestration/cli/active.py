"""`hmtl active`: one active-learning run without Ray, every input checked before anything is made.

The run folder holds one `checkpoint_<cycle>` per completed cycle (the labelled map, RNG
state and weights) and `metrics.jsonl`; `--resume RUN_DIR` continues a killed run from its last
completed cycle and ends as an uninterrupted run would.
"""

from __future__ import annotations

import socket
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import click

from hmtl.orchestration.cli.common import fail, tracking_problem, user_errors
from hmtl.orchestration.cli.completion import complete_config
from hmtl.orchestration.cli.options import (
    RESUME_IN_OUT,
    from_env,
    out_option,
    resume_option,
    set_option,
    tracking_uri_option,
)
from hmtl.orchestration.cli.train import resolve_config


@click.command("active")
@click.argument("config", shell_complete=complete_config)
@click.option("--strategy", default=None, help="Query strategy (overrides the config's).")
@set_option("train.optim.lr=3e-4 (or a loop key: cycles=3)")
@out_option("default: hmtl-runs/active/<config>-<strategy>-<time>")
@resume_option(
    "RUN_DIR",
    "Continue the run in RUN_DIR (alone: in --out) from its last completed cycle.",
    optional=True,
)
@tracking_uri_option("not logged to MLflow")
def active_command(
    config: str,
    strategy: str | None,
    overrides: tuple[str, ...],
    out: str | None,
    resume: str | None,
    tracking_uri: str | None,
) -> None:
    """Run one active-learning loop without Ray: one line per cycle, then a summary.

    CONFIG is a YAML file or a shipped config's name."""
    problem = tracking_problem(tracking_uri, from_env("tracking_uri"))
    if problem:
        fail(problem)
    if resume == RESUME_IN_OUT and out is None:
        fail("--resume needs --out RUN_DIR, or the folder itself: --resume RUN_DIR")
    if resume not in (None, RESUME_IN_OUT):
        if out is not None and Path(out) != Path(resume):
            fail(f"--resume {resume} and --out {out}: give the run folder once")
        out = resume
    try:
        with ExitStack() as scratch:  # fetched pre-trained weights live until the loop ends
            args = (config, strategy, list(overrides), out, resume is not None, tracking_uri)
            _active(*args, scratch)
    except user_errors() as err:
        fail(str(err))


def _active(
    config: str,
    strategy: str | None,
    overrides: list[str],
    out: str | None,
    resume: bool,
    tracking_uri: str | None,
    scratch: ExitStack,
) -> None:
    """`hmtl active` proper; raises USER_ERRORS before the run folder exists."""
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform.folders import blocking_file, removed_on_failure
    from hmtl.orchestration.tracking.pretrained import resolved
    from hmtl.orchestration.tracking.single_run import check_inputs
    from hmtl.trainables.active.config import load_active_config
    from hmtl.trainables.active.loop import run_active
    from hmtl.trainables.session import LocalSession

    path = resolve_config(config)
    if strategy is not None:
        overrides = [f"strategy={strategy}", *overrides]
    cfg = load_active_config(path, overrides)
    weights = None
    if cfg.train.model.pretrained and not resume:  # a resumed loop's checkpoint holds them
        weights = scratch.enter_context(resolved(cfg.train.model.pretrained, tracking_uri))[1]
    check_inputs(cfg.train, weights, resuming=resume)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out) if out else Path("hmtl-runs/active") / f"{path.stem}-{cfg.strategy}-{stamp}"
    blocked = blocking_file(run_dir)
    if blocked is not None:
        fail(f"--out {run_dir}: {blocked} is a file, not a folder")
    done = run_dir.exists() and any(run_dir.glob("checkpoint_*"))
    if done and not resume:
        fail(f"{run_dir} already holds cycles; pass --resume {run_dir}, or another --out")
    if resume and not done:
        fail(f"--resume: {run_dir} holds no completed cycle to continue from")
    click.echo(f"hmtl active: {config} ({cfg.strategy}, reset {cfg.reset}) -> {run_dir}")
    with removed_on_failure(run_dir, keep=lambda: any(run_dir.glob("checkpoint_*"))):
        if tracking_uri:
            session = tracked_session(run_dir, cfg, tracking_uri, resume)
        else:
            session = LocalSession(run_dir, log=None)
        try:
            result = run_active(cfg, session, log=click.echo, pretrained=weights)
        except user_errors():
            if tracking_uri:
                session.finish("FAILED")
            raise
        if tracking_uri:
            session.finish()
    last = result.history[-1] if result.history else {}
    click.echo("")
    click.echo("summary")
    for key in ("al/labelled_fraction", "al/test_accuracy", "al/test_macro_f1", "al/val_accuracy"):
        if key in last:
            click.echo(f"  {key:<24} {last[key]:.4f}")
    click.echo(f"  checkpoint               {result.checkpoint}")


RUN_DIR_TAG = "hmtl.active_run_dir"
EXPERIMENT = "hmtl-active"


def tracked_session(run_dir: Path, cfg, tracking_uri: str, resume: bool):
    """A TrackedSession for the run: the training config and the loop's settings (`active.*`)
    as params, each cycle's labelled map as an artifact (`active/cycle_<n>/`). `--resume`
    continues the MLflow run of the same run folder, so one run holds every cycle."""

    # Lazy: keeps mlflow out of `hmtl --help` and the input checks.
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.tracking.native import training_experiment
    from hmtl.orchestration.tracking.probe import create_local_store
    from hmtl.orchestration.tracking.single_run import TrackedSession
    from hmtl.orchestration.tracking.tags import MAX_PARAM_LENGTH, git_commit, redact_uri
    from hmtl.trainables.active.state import MAP_FILE
    from hmtl.trainables.config import flatten
    from hmtl.trainables.session import LocalSession

    class ActiveTrackedSession(TrackedSession):
        def __init__(self, client: MlflowClient, run_id: str) -> None:
            LocalSession.__init__(self, run_dir, log=None)  # the run exists already
            self.client, self.run_id = client, run_id

        def report(self, metrics, checkpoint_dir=None):
            super().report(metrics, checkpoint_dir)
            if checkpoint_dir is not None:
                where = f"active/cycle_{int(metrics['epoch']):03d}"
                self.client.log_artifact(self.run_id, str(Path(checkpoint_dir, MAP_FILE)), where)

    create_local_store(tracking_uri)  # a SQLite database whole or absent, made fast
    client = MlflowClient(redact_uri(tracking_uri))
    experiment_id = training_experiment(client, EXPERIMENT, tracking_uri)
    key = str(run_dir.resolve())
    if resume:
        earlier = client.search_runs(
            [experiment_id],
            f"tags.`{RUN_DIR_TAG}` = '{key}'",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        if earlier:
            run_id = earlier[0].info.run_id
            client.update_run(run_id, status="RUNNING")
            return ActiveTrackedSession(client, run_id)
    tags = {"hmtl.git_commit": git_commit(), "hmtl.host": socket.gethostname(), RUN_DIR_TAG: key}
    run_id = client.create_run(experiment_id, run_name=run_dir.name, tags=tags).info.run_id
    params = {
        **cfg.train.flat(),
        **{f"active.{k}": v for k, v in flatten(cfg.model_dump(exclude={"train"})).items()},
    }
    client.log_batch(
        run_id, params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
    )
    return ActiveTrackedSession(client, run_id)
