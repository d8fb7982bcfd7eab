"""The `hmtl` command line.

Bad input (a config, a dataset, a checkpoint) ends in one line on stderr that names
the problem, and exit code 2, before any work starts; never a traceback.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import click

from hmtl.orchestration.cli.active import active_command
from hmtl.orchestration.cli.common import OneLineGroup, fail, tracking_problem
from hmtl.orchestration.cli.data import data_group
from hmtl.orchestration.cli.distill import distill_command
from hmtl.orchestration.cli.jobs import logs_command, stop_command, submit_command
from hmtl.orchestration.cli.mine import mine_command
from hmtl.orchestration.cli.options import (
    address_option,
    out_option,
    storage_option,
    tracking_uri_option,
    verbose_option,
)
from hmtl.orchestration.cli.study import report_study_command, resume_study_command, study_command
from hmtl.orchestration.cli.train import train_command
from hmtl.orchestration.platform.cluster import InfeasibleError, address_problem, check_local
from hmtl.orchestration.platform.cost import price_problem
from hmtl.orchestration.platform.folders import blocking_file
from hmtl.orchestration.sweep.manifest import read_manifest
from hmtl.orchestration.sweep.smoke import smoke as make_smoke
from hmtl.orchestration.sweep.space import SpaceError, load_space
from hmtl.orchestration.sweep.status import status_text
from hmtl.trainables.config import ConfigError
from hmtl.trainables.data.storage import StorageError, join


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """hmtl: hybrid multi-task learning experiments for facial representations."""


@main.command("sweep")
@click.argument("space")
@click.option("--name", default=None, help="Sweep name (default: the space's name).")
@storage_option()
@tracking_uri_option()
@address_option()
@click.option(
    "--num-samples",
    type=click.IntRange(min=1),
    default=None,
    help="Number of trials (default: the space's num_samples).",
)
@click.option(
    "--smoke",
    is_flag=True,
    help="Synthetic data, 2 tiny trials of 2 epochs on CPU: checks the whole path.",
)
@verbose_option()
def sweep_command(
    space: str,
    name: str | None,
    storage: str | None,
    tracking_uri: str | None,
    address: str | None,
    num_samples: int | None,
    smoke: bool,
    verbose: bool,
) -> None:
    """Search auxiliary-loss weights and augmentation with Ray Tune + Optuna (+ ASHA)."""

    storage = storage or "hmtl-runs"
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        fail(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
    for problem in (address_problem(address), tracking_problem(tracking_uri), price_problem()):
        if problem:
            fail(problem)
    if "://" in storage and tracking_uri is None:
        fail(
            f"--storage {storage}: object storage needs --tracking-uri (an MLflow server); "
            "the SQLite default lives in a local storage folder"
        )
    try:
        spec = load_space(space)
        if smoke:
            # Smoke data and stand-in weights are local scratch, even for object storage.
            local_root = Path("hmtl-runs") if "://" in storage else Path(storage)
            scratch = local_root.resolve() / "smoke"
            if blocking_file(scratch) is not None:
                fail(f"--storage {storage}: {blocking_file(scratch)} is a file, not a folder")
            scratch.mkdir(parents=True, exist_ok=True)
            spec = make_smoke(spec, scratch)
        updates = {k: v for k, v in {"name": name, "num_samples": num_samples}.items() if v}
        if updates:
            spec = spec.model_copy(update=updates)
        check_local(spec, address)  # before the slow import of Ray, Tune and MLflow below
    except (SpaceError, ConfigError, InfeasibleError) as err:
        fail(str(err))
    # Tune's classic progress table shows the metric and the searched values, a row a trial.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.sweep.run import mlflow_ui_command, run_sweep
    from hmtl.orchestration.tracking.callback import default_tracking_uri
    from hmtl.orchestration.tracking.probe import TrackingError

    tracking_uri = tracking_uri or default_tracking_uri(storage)
    header = (
        f"hmtl sweep {spec.name}: {spec.num_samples} trials, storage {storage}, "
        f"tracking {tracking_uri}"
    )
    try:
        # The header comes once the sweep's checks pass, so a refusal is the only line.
        result = run_sweep(
            spec,
            storage,
            tracking_uri,
            address=address,
            verbose=2 if verbose else 1,
            announce=lambda: click.echo(header),
        )
    except (InfeasibleError, SpaceError, StorageError, TrackingError) as err:
        fail(str(err))
    click.echo(sweep_summary(result, spec.metrics[0]))
    click.echo(f"\nMLflow UI: {mlflow_ui_command(tracking_uri, spec.name)}")
    finish(result, join(storage, "sweeps", spec.name), address)


@main.command("resume")
@click.argument("sweep_uri")
@address_option()
@verbose_option()
def resume_command(sweep_uri: str, address: str | None, verbose: bool) -> None:
    """Continue an interrupted sweep from its storage (e.g. hmtl-runs/sweeps/quickstart)."""

    problem = address_problem(address)
    if problem:
        fail(problem)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.study.engine import is_study

    if is_study(sweep_uri):
        resume_study_command(sweep_uri, address, verbose)
        return
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.sweep.run import resume_sweep
    from hmtl.orchestration.tracking.probe import TrackingError

    try:
        manifest = read_manifest(sweep_uri)
        click.echo(f"hmtl resume {sweep_uri}: tracking {manifest['tracking_uri']}")
        result = resume_sweep(sweep_uri, address=address, verbose=2 if verbose else 1)
    except (InfeasibleError, SpaceError, StorageError, TrackingError) as err:
        fail(str(err))
    click.echo(sweep_summary(result, result_metric(manifest)))
    finish(result, sweep_uri, address)


@main.command("status")
@click.argument("sweep_uri")
def status_command(sweep_uri: str) -> None:
    """Trials of a sweep, their states and metrics, and the best so far."""

    try:
        click.echo(status_text(sweep_uri))
    except (SpaceError, StorageError) as err:
        fail(str(err))


@main.command("report")
@click.argument("sweep_uri")
@out_option("Folder for the report (default: hmtl-runs/reports/<sweep>).")
@tracking_uri_option("MLflow to log to (default: the sweep's).")
def report_command(sweep_uri: str, out: str | None, tracking_uri: str | None) -> None:
    """Plots and a table of a sweep's trials, logged to its MLflow parent run."""
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.study.engine import is_study
    from hmtl.orchestration.sweep.report import build_report
    from hmtl.orchestration.tracking.probe import TrackingError, probe

    if is_study(sweep_uri):
        report_study_command(sweep_uri, out, tracking_uri)
        return
    try:
        if tracking_uri:
            probe(tracking_uri)
        report = build_report(sweep_uri, out=out, tracking_uri=tracking_uri)
    except (SpaceError, StorageError, TrackingError) as err:
        fail(str(err))
    click.echo(f"report of {sweep_uri}: {len(report.files)} files in {report.folder}")
    for file in report.files:
        click.echo(f"  {file.name}")
    if report.parent_run_id:
        click.echo(f"logged to MLflow run {report.parent_run_id} (artifacts under report/)")
    else:
        click.echo("not logged: no MLflow parent run found for this sweep")


def result_metric(manifest: dict) -> str:
    metric = manifest["space"].get("metric", "val/balanced_accuracy")
    return metric[0] if isinstance(metric, list) else metric


# Exit codes of `hmtl sweep` and `hmtl resume` (README "Exit codes"); 2 is `fail`'s.
NO_METRIC_EXIT = 1
ERRORED_EXIT = 3


def finish(result, sweep_uri: str, address: str | None) -> None:
    """Exit 3 with the exact resume command when trials errored, 1 when no trial reported
    the metric; return (exit 0) otherwise."""
    if result.errors:
        command = ["hmtl", "resume", sweep_uri, *(["--address", address] if address else [])]
        click.echo(
            f"\n{result.errors} trial(s) errored; continue them from their latest checkpoints "
            f"with:\n  {shlex.join(command)}"
        )
        sys.exit(ERRORED_EXIT)
    if result.best_trial is None:
        sys.exit(NO_METRIC_EXIT)


def sweep_summary(result, metric: str) -> str:
    lines = [
        "",
        f"sweep {result.name}: {result.trials} trials, {result.errors} errored",
        f"  stored at     {result.path}",
    ]
    if result.undelivered:
        lines.append(
            f"  tracking      {result.undelivered} MLflow calls not delivered yet, spooled in "
            f"{result.spool}; `hmtl resume {result.path}` delivers them"
        )
    if result.best_trial is None:
        lines.append("  no trial reported the metric")
        return "\n".join(lines)
    lines.append(
        f"  best trial    {result.best_trial}   {metric} = {result.best_metrics[metric]:.4f}"
        f" at epoch {result.best_epoch} (its best epoch)"
    )
    for key, value in sorted(result.best_params.items()):
        lines.append(f"    {key} = {value}")
    lines.append(f"  checkpoint    {result.best_checkpoint}   (epoch {result.best_epoch})")
    return "\n".join(lines)


main.add_command(data_group)
main.add_command(train_command)
main.add_command(study_command)
main.add_command(mine_command)
main.add_command(distill_command)
main.add_command(active_command)
for command in (submit_command, logs_command, stop_command):
    main.add_command(command)

if __name__ == "__main__":
    main()
