"""The `hmtl` command line.

Bad input (a config, a dataset, a checkpoint) ends in one line on stderr that names
the problem, and exit code 2, before any work starts; never a traceback.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime
from importlib import resources
from pathlib import Path

import click

from orchestration.cli_common import USER_ERRORS, fail
from orchestration.cli_data import data_group
from orchestration.cli_jobs import logs_command, stop_command, submit_command
from trainables.config import ConfigError, load_config
from trainables.data.storage import StorageError


def shipped_config(name: str) -> Path | None:
    """A training config that ships with the package, by name (`demo` -> configs/demo.yaml)."""
    candidate = resources.files("trainables") / "configs" / f"{name}.yaml"
    return Path(str(candidate)) if candidate.is_file() else None


def resolve_config(config: str) -> Path:
    path = Path(config)
    if path.exists():
        return path
    found = shipped_config(config)
    if found is None:
        fail(f"{config}: no such config file or shipped config name")
    return found


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """hmtl: hybrid multi-task learning experiments for facial representations."""


@main.command("train")
@click.argument("config", required=False)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set optim.lr=3e-4 (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Run folder for checkpoints and metrics (default: hmtl-runs/train/<name>-<time>).",
)
@click.option(
    "--resume-from",
    default=None,
    help="Checkpoint folder or s3:// URI to continue from (e.g. RUN/checkpoint_000003); "
    "without CONFIG, the checkpoint's own config is used.",
)
@click.option("--tracking-uri", default=None, help="Also log this run to MLflow here.")
def train_command(
    config: str | None,
    overrides: tuple[str, ...],
    out: str | None,
    resume_from: str | None,
    tracking_uri: str | None,
) -> None:
    """Train one model without Ray: one progress line per epoch, then a summary."""
    from orchestration.single_run import TrackedSession, local_checkpoint, scratch_dir
    from trainables.checkpoint import load_checkpoint
    from trainables.config import build_config
    from trainables.session import LocalSession
    from trainables.train import train

    if config is None and resume_from is None:
        fail("give a CONFIG, or --resume-from a checkpoint to continue with its own config")
    try:
        checkpoint = local_checkpoint(resume_from, scratch_dir()) if resume_from else None
        if checkpoint is not None and not Path(checkpoint).exists():
            fail(f"--resume-from {resume_from}: no such checkpoint")
        if config is not None:
            path = resolve_config(config)
            cfg = load_config(path, list(overrides))
            name = path.stem
        else:
            cfg = build_config(
                load_checkpoint(checkpoint)["config"],
                list(overrides),
                source=f"{resume_from} (its config)",
            )
            name = "resumed"
    except USER_ERRORS as err:
        fail(str(err))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out) if out else Path("hmtl-runs") / "train" / f"{name}-{stamp}"
    if run_dir.exists() and any(run_dir.glob("checkpoint_*")) and resume_from is None:
        fail(
            f"{run_dir} already holds checkpoints; pass --resume-from "
            f"{run_dir}/checkpoint_... to continue, or choose another --out"
        )
    click.echo(f"hmtl train: {config or resume_from} -> {run_dir}")
    if tracking_uri:
        session = TrackedSession(
            run_dir,
            cfg,
            tracking_uri,
            resume_from=checkpoint,
            origin_uri=resume_from,
            log=click.echo,
        )
    else:
        session = LocalSession(run_dir, resume_from=checkpoint, log=click.echo)
    try:
        result = train(cfg, session)
    except USER_ERRORS as err:
        if tracking_uri:
            session.finish("FAILED")
        fail(str(err))
    if tracking_uri:
        session.finish()
    click.echo(summary(result.metrics, result.checkpoint))


@main.command("sweep")
@click.argument("space")
@click.option("--name", default=None, help="Sweep name (default: the space's name).")
@click.option(
    "--storage", default=None, help="Local folder or s3://bucket/prefix (default: ./hmtl-runs)."
)
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking URI (default: sqlite:///<storage>/mlflow.db).",
)
@click.option("--address", default=None, help="Ray cluster: auto or HOST:PORT (default: local).")
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
def sweep_command(
    space: str,
    name: str | None,
    storage: str | None,
    tracking_uri: str | None,
    address: str | None,
    num_samples: int | None,
    smoke: bool,
) -> None:
    """Search auxiliary-loss weights and augmentation with Ray Tune + Optuna (+ ASHA)."""
    from orchestration.smoke import smoke as make_smoke
    from orchestration.space import SpaceError, load_space

    storage = storage or "hmtl-runs"
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        fail(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
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
            scratch.mkdir(parents=True, exist_ok=True)
            spec = make_smoke(spec, scratch)
        updates = {k: v for k, v in {"name": name, "num_samples": num_samples}.items() if v}
        if updates:
            spec = spec.model_copy(update=updates)
    except (SpaceError, ConfigError) as err:
        fail(str(err))
    # Tune's classic progress table shows the metric and the searched values, a row a trial.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from orchestration.cluster import InfeasibleError
    from orchestration.sweep import mlflow_ui_command, run_sweep
    from orchestration.tracking import default_tracking_uri
    from orchestration.tracking_probe import TrackingError

    tracking_uri = tracking_uri or default_tracking_uri(storage)
    click.echo(
        f"hmtl sweep {spec.name}: {spec.num_samples} trials, storage {storage}, "
        f"tracking {tracking_uri}"
    )
    try:
        result = run_sweep(spec, storage, tracking_uri, address=address)
    except (InfeasibleError, SpaceError, StorageError, TrackingError) as err:
        fail(str(err))
    click.echo(sweep_summary(result, spec.metrics[0]))
    click.echo(f"\nMLflow UI: {mlflow_ui_command(tracking_uri)}")
    if result.best_trial is None:
        sys.exit(1)


@main.command("resume")
@click.argument("sweep_uri")
@click.option("--address", default=None, help="Ray cluster: auto or HOST:PORT (default: local).")
def resume_command(sweep_uri: str, address: str | None) -> None:
    """Continue an interrupted sweep from its storage (e.g. hmtl-runs/sweeps/quickstart)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from orchestration.cluster import InfeasibleError
    from orchestration.space import SpaceError
    from orchestration.sweep import read_manifest, resume_sweep
    from orchestration.tracking_probe import TrackingError

    try:
        manifest = read_manifest(sweep_uri)
        click.echo(f"hmtl resume {sweep_uri}: tracking {manifest['tracking_uri']}")
        result = resume_sweep(sweep_uri, address=address)
    except (InfeasibleError, SpaceError, StorageError, TrackingError) as err:
        fail(str(err))
    click.echo(sweep_summary(result, result_metric(manifest)))


@main.command("status")
@click.argument("sweep_uri")
def status_command(sweep_uri: str) -> None:
    """Trials of a sweep, their states and metrics, and the best so far."""
    from orchestration.space import SpaceError
    from orchestration.status import status_text

    try:
        click.echo(status_text(sweep_uri))
    except (SpaceError, StorageError) as err:
        fail(str(err))


@main.command("report")
@click.argument("sweep_uri")
@click.option(
    "--out", default=None, help="Folder for the report (default: hmtl-runs/reports/<sweep>)."
)
@click.option("--tracking-uri", default=None, help="MLflow to log to (default: the sweep's).")
def report_command(sweep_uri: str, out: str | None, tracking_uri: str | None) -> None:
    """Plots and a table of a sweep's trials, logged to its MLflow parent run."""
    from orchestration.report import build_report
    from orchestration.space import SpaceError
    from orchestration.tracking_probe import TrackingError, probe

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
    )
    for key, value in sorted(result.best_params.items()):
        lines.append(f"    {key} = {value}")
    lines.append(f"  checkpoint    {result.best_checkpoint}")
    return "\n".join(lines)


def summary(metrics: dict, checkpoint: str | None) -> str:
    lines = ["", "summary"]
    for key in (
        "val/accuracy",
        "val/balanced_accuracy",
        "val/macro_f1",
        "test/accuracy",
        "test/balanced_accuracy",
        "test/macro_f1",
    ):
        if key in metrics:
            lines.append(f"  {key:<24} {metrics[key]:.4f}")
    per_class = {
        k.rsplit("/", 1)[1]: v for k, v in metrics.items() if k.startswith("test/accuracy/")
    }
    if per_class:
        lines.append(
            "  test accuracy per class  "
            + "  ".join(f"{name} {value:.2f}" for name, value in per_class.items())
        )
    lines.append(f"  checkpoint               {checkpoint}")
    return "\n".join(lines)


main.add_command(data_group)
for command in (submit_command, logs_command, stop_command):
    main.add_command(command)

if __name__ == "__main__":
    main()
