"""`hmtl sweep`, and `hmtl resume` / `hmtl report` of a sweep or a study (a study folder,
`<storage>/studies/<name>`, is told from a sweep folder by its `hmtl-study.json`).

Every argument is checked locally (its form, the storage scheme, the space, the resources
this machine has) before anything is imported that is slow or asks the network.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import click

from hmtl.orchestration.cli.address import parse_address, ray_address
from hmtl.orchestration.cli.checks import folder_kind, local_checks, ray_line
from hmtl.orchestration.cli.common import fail, tracking_problem
from hmtl.orchestration.cli.completion import complete_space
from hmtl.orchestration.cli.options import (
    DEFAULT_STORAGE,
    TRACKING_ENV,
    address_option,
    from_env,
    json_option,
    out_option,
    set_option,
    source,
    storage_option,
    tracking_uri_option,
    verbose_option,
)
from hmtl.orchestration.cli.output import Output

# Exit codes of `hmtl sweep` and `hmtl resume` (README "Exit codes"); 2 is `fail`'s.
NO_METRIC_EXIT = 1
ERRORED_EXIT = 3


def with_overrides(spec, overrides: tuple[str, ...]):
    """The space with `--set` applied to its base config, checked as the file's base is; a
    searched key is refused (each trial would overwrite it)."""
    if not overrides:
        return spec
    # Lazy: keeps optuna and pydantic out of `hmtl --help`.
    from hmtl.orchestration.sweep.space import validate_space
    from hmtl.trainables.config import build_config, parse_override

    for text in overrides:
        key = parse_override(text)[0]
        if key in spec.space:
            fail(f"--set {key}: searched by {spec.source or spec.name}; fix it in the space")
    tree = build_config(spec.base_tree(), overrides, source="--set").model_dump(mode="json")
    raw = spec.model_dump(mode="json", exclude={"source"})
    return validate_space({**raw, "base": tree}, spec.source)


@click.command("sweep")
@click.argument("space", shell_complete=complete_space)
@click.option("--name", default=None, help="Sweep name (default: the space's name).")
@storage_option()
@tracking_uri_option("sqlite:///<storage>/mlflow.db")
@address_option()
@set_option()
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
@json_option()
@verbose_option()
def sweep_command(
    space: str,
    name: str | None,
    storage: str | None,
    tracking_uri: str | None,
    address: str | None,
    overrides: tuple[str, ...],
    num_samples: int | None,
    smoke: bool,
    as_json: bool,
    verbose: bool,
) -> None:
    """Search auxiliary-loss weights and augmentation with Ray Tune + Optuna (+ ASHA).

    SPACE is a search-space file or a shipped space's name."""
    # Lazy: keeps optuna, torch and pydantic out of `hmtl --help`.
    from hmtl.orchestration.platform.cluster import InfeasibleError, check_local
    from hmtl.orchestration.platform.folders import blocking_file
    from hmtl.orchestration.sweep.smoke import smoke as make_smoke
    from hmtl.orchestration.sweep.space import SpaceError, load_space
    from hmtl.trainables.config import ConfigError

    storage = storage or DEFAULT_STORAGE
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        fail(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
    joined = local_checks(storage, tracking_uri, address, "sweep")
    try:
        spec = with_overrides(load_space(space), overrides)
        if smoke:
            # Smoke data and stand-in weights are local scratch, even for object storage.
            local_root = Path(DEFAULT_STORAGE) if "://" in storage else Path(storage)
            scratch = local_root.resolve() / "smoke"
            if blocking_file(scratch) is not None:
                fail(f"--storage {storage}: {blocking_file(scratch)} is a file, not a folder")
            scratch.mkdir(parents=True, exist_ok=True)
            spec = make_smoke(spec, scratch)
        updates = {k: v for k, v in {"name": name, "num_samples": num_samples}.items() if v}
        if updates:
            spec = spec.model_copy(update=updates)
        check_local(spec, joined)  # before the slow import of Ray, Tune and MLflow below
    except (SpaceError, ConfigError, InfeasibleError) as err:
        fail(str(err))
    # Tune's classic progress table shows the metric and the searched values, a row a trial.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.sweep.run import mlflow_ui_command, run_sweep
    from hmtl.orchestration.tracking.callback import default_tracking_uri
    from hmtl.orchestration.tracking.probe import TrackingError
    from hmtl.trainables.data.storage import StorageError, join

    out = Output(as_json)
    tracking_note = source("tracking_uri", TRACKING_ENV)
    tracking_uri = tracking_uri or default_tracking_uri(storage)
    header = (
        f"hmtl sweep {spec.name}: {spec.num_samples} trials, storage {storage}, "
        f"tracking {tracking_uri}{tracking_note}, ray {ray_line(joined)}"
    )
    try:
        # The header comes once the sweep's checks pass, so a refusal is the only line.
        with out.human():
            result = run_sweep(
                spec,
                storage,
                tracking_uri,
                address=joined,
                verbose=2 if verbose else 1,
                announce=lambda: out.echo(header),
            )
    except (InfeasibleError, SpaceError, StorageError, TrackingError) as err:
        fail(str(err))
    ui = mlflow_ui_command(tracking_uri, spec.name)
    end(out, result, join(storage, "sweeps", spec.name), spec.metrics[0], joined, tracking_uri, ui)


def end(out: Output, result, path: str, metric: str, joined, tracking_uri: str, ui=None) -> None:
    """A sweep's summary (human, and JSON with --json), then its exit code (`exit_code`);
    `path` is the sweep's folder as the resume command should name it."""
    code, command = exit_code(result, path, joined)
    out.echo(sweep_summary(result, metric))
    if ui:
        out.echo(f"\nMLflow UI: {ui}")
    out.result("sweep", sweep_json(result, metric, tracking_uri, code, command))
    finish(result, path, joined, out.echo)


def exit_code(result, sweep_uri: str, address: str | None) -> tuple[int, str | None]:
    """The exit code of a sweep that ended with `result`, and the resume command if any."""
    if result.errors:
        command = ["hmtl", "resume", sweep_uri, *(["--address", address] if address else [])]
        return ERRORED_EXIT, shlex.join(command)
    return (NO_METRIC_EXIT if result.best_trial is None else 0), None


def finish(result, sweep_uri: str, address: str | None, echo=click.echo) -> None:
    """Exit 3 with the exact resume command when trials errored, 1 when no trial reported
    the metric; return (exit 0) otherwise."""
    code, command = exit_code(result, sweep_uri, address)
    if command:
        echo(
            f"\n{result.errors} trial(s) errored; continue them from their latest checkpoints "
            f"with:\n  {command}"
        )
    if code:
        sys.exit(code)


def sweep_json(result, metric: str, tracking_uri: str, code: int, command: str | None) -> dict:
    """The `hmtl.sweep/1` object (docs/cli.md)."""
    # Lazy: keeps mlflow out of `hmtl --help`.
    from hmtl.orchestration.tracking.tags import redact_uri

    best = None
    if result.best_trial is not None:
        best = {
            "trial": result.best_trial,
            "value": result.best_metrics.get(metric),
            "epoch": result.best_epoch,
            "params": result.best_params,
            "checkpoint": result.best_checkpoint,
        }
    return {
        "name": result.name,
        "path": result.path,
        "metric": metric,
        "trials": result.trials,
        "errored": result.errors,
        "best": best,
        "tracking_uri": redact_uri(tracking_uri),
        "undelivered": result.undelivered,
        "optuna_storage": getattr(result, "optuna_storage", None),
        "exit_code": code,
        "resume_command": command,
    }


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
    if result.optuna_storage:  # the Optuna study, for optuna-dashboard
        lines.append(
            f"  optuna        optuna-dashboard {result.optuna_storage}   "
            f"(study {result.optuna_study})"
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


def result_metric(manifest: dict) -> str:
    metric = manifest["space"].get("metric", "val/balanced_accuracy")
    return metric[0] if isinstance(metric, list) else metric


@click.command("resume")
@click.argument("path", metavar="SWEEP_OR_STUDY")
@address_option()
@json_option()
@verbose_option()
def resume_command(path: str, address: str | None, as_json: bool, verbose: bool) -> None:
    """Continue an interrupted sweep or study from its storage.

    SWEEP_OR_STUDY is its folder, e.g. hmtl-runs/sweeps/quickstart or
    hmtl-runs/studies/quickstart_study (a local path or s3://)."""
    joined = ray_address(parse_address(address, from_env("address")), "resume")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    out = Output(as_json)
    if folder_kind(path) == "study":
        # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
        from hmtl.orchestration.cli.study import resume_study_command

        resume_study_command(path, joined, verbose, out)
        return
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform.cluster import InfeasibleError
    from hmtl.orchestration.sweep.manifest import read_manifest
    from hmtl.orchestration.sweep.run import resume_sweep
    from hmtl.orchestration.sweep.space import SpaceError
    from hmtl.orchestration.tracking.probe import TrackingError
    from hmtl.trainables.data.storage import StorageError

    try:
        manifest = read_manifest(path)
        out.echo(f"hmtl resume {path}: tracking {manifest['tracking_uri']}, ray {ray_line(joined)}")
        with out.human():
            result = resume_sweep(path, address=joined, verbose=2 if verbose else 1)
    except (InfeasibleError, SpaceError, StorageError, TrackingError) as err:
        fail(str(err))
    end(out, result, path, result_metric(manifest), joined, manifest["tracking_uri"])


@click.command("report")
@click.argument("path", metavar="SWEEP_OR_STUDY")
@out_option("default: hmtl-runs/reports/<name>")
@tracking_uri_option("the one the sweep or study was run with")
def report_command(path: str, out: str | None, tracking_uri: str | None) -> None:
    """Plots and tables of a sweep or study, logged to its MLflow parent run.

    SWEEP_OR_STUDY is its folder (a local path or s3://)."""
    problem = tracking_problem(tracking_uri, from_env("tracking_uri"))
    if problem:
        fail(problem)
    if folder_kind(path) == "study":
        # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
        from hmtl.orchestration.cli.study import report_study_command

        report_study_command(path, out, tracking_uri)
        return
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.sweep.report import build_report
    from hmtl.orchestration.sweep.space import SpaceError
    from hmtl.orchestration.tracking.probe import TrackingError, probe
    from hmtl.trainables.data.storage import StorageError

    try:
        if tracking_uri:
            probe(tracking_uri)
        report = build_report(path, out=out, tracking_uri=tracking_uri)
    except (SpaceError, StorageError, TrackingError) as err:
        fail(str(err))
    click.echo(f"report of {path}: {len(report.files)} files in {report.folder}")
    for file in report.files:
        click.echo(f"  {file.name}")
    if report.parent_run_id:
        click.echo(f"logged to MLflow run {report.parent_run_id} (artifacts under report/)")
    else:
        click.echo("not logged: no MLflow parent run found for this sweep")
