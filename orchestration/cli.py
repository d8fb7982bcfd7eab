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

from orchestration.cli_common import USER_ERRORS, OneLineGroup, fail
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


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    from orchestration.single_run import local_checkpoint

    if config is None and resume_from is None:
        fail("give a CONFIG, or --resume-from a checkpoint to continue with its own config")
    problem = tracking_problem(tracking_uri)
    if problem:
        fail(problem)
    try:
        # A remote checkpoint is fetched to scratch that goes away when training ends.
        with local_checkpoint(resume_from) as checkpoint:
            _train(config, list(overrides), out, resume_from, checkpoint, tracking_uri)
    except USER_ERRORS as err:
        fail(str(err))


def _train(
    config: str | None,
    overrides: list[str],
    out: str | None,
    resume_from: str | None,
    checkpoint: str | None,
    tracking_uri: str | None,
) -> None:
    """`hmtl train` once the checkpoint (if any) is local: every input is checked before
    the run folder, the header line or an MLflow run exists; raises USER_ERRORS."""
    from orchestration.folders import blocking_file, removed_on_failure
    from orchestration.single_run import TrackedSession, check_inputs
    from trainables.checkpoint import load_checkpoint
    from trainables.config import build_config
    from trainables.session import LocalSession
    from trainables.train import train

    if checkpoint is not None and not Path(checkpoint).exists():
        fail(f"--resume-from {resume_from}: no such checkpoint")
    # Read now so a damaged checkpoint is refused before anything is made or printed.
    state = load_checkpoint(checkpoint) if checkpoint is not None else None
    if config is not None:
        path = resolve_config(config)
        cfg = load_config(path, overrides)
        name = path.stem
    else:
        source = f"{resume_from} (its config)"
        cfg = build_config(state["config"], overrides, source=source)
        name = "resumed"
    check_inputs(cfg)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out) if out else Path("hmtl-runs") / "train" / f"{name}-{stamp}"
    blocked = blocking_file(run_dir)
    if blocked is not None:
        fail(f"--out {run_dir}: {blocked} is a file, not a folder")
    if run_dir.exists() and any(run_dir.glob("checkpoint_*")) and resume_from is None:
        fail(
            f"{run_dir} already holds checkpoints; pass --resume-from "
            f"{run_dir}/checkpoint_... to continue, or choose another --out"
        )
    click.echo(f"hmtl train: {config or resume_from} -> {run_dir}")
    # A run that fails before its first checkpoint (bad data rows, say) leaves no folder.
    with removed_on_failure(run_dir, keep=lambda: any(run_dir.glob("checkpoint_*"))):
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
        except USER_ERRORS:
            if tracking_uri:
                session.finish("FAILED")
            raise
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
    from orchestration.cluster import address_problem
    from orchestration.folders import blocking_file
    from orchestration.smoke import smoke as make_smoke
    from orchestration.space import SpaceError, load_space

    storage = storage or "hmtl-runs"
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        fail(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
    for problem in (address_problem(address), tracking_problem(tracking_uri)):
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
    except (SpaceError, ConfigError) as err:
        fail(str(err))
    # Tune's classic progress table shows the metric and the searched values, a row a trial.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from orchestration.cluster import InfeasibleError
    from orchestration.sweep import mlflow_ui_command, run_sweep
    from orchestration.tracking import default_tracking_uri

    tracking_uri = tracking_uri or default_tracking_uri(storage)
    header = (
        f"hmtl sweep {spec.name}: {spec.num_samples} trials, storage {storage}, "
        f"tracking {tracking_uri}"
    )
    try:
        # The header comes once the sweep's checks pass, so a refusal is the only line.
        result = run_sweep(
            spec, storage, tracking_uri, address=address, announce=lambda: click.echo(header)
        )
    except (InfeasibleError, SpaceError, StorageError) as err:
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
    from orchestration.cluster import address_problem

    problem = address_problem(address)
    if problem:
        fail(problem)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from orchestration.cluster import InfeasibleError
    from orchestration.space import SpaceError
    from orchestration.sweep import read_manifest, resume_sweep

    try:
        manifest = read_manifest(sweep_uri)
        click.echo(f"hmtl resume {sweep_uri}: tracking {manifest['tracking_uri']}")
        result = resume_sweep(sweep_uri, address=address)
    except (InfeasibleError, SpaceError, StorageError) as err:
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

    try:
        report = build_report(sweep_uri, out=out, tracking_uri=tracking_uri)
    except (SpaceError, StorageError) as err:
        fail(str(err))
    click.echo(f"report of {sweep_uri}: {len(report.files)} files in {report.folder}")
    for file in report.files:
        click.echo(f"  {file.name}")
    if report.parent_run_id:
        click.echo(f"logged to MLflow run {report.parent_run_id} (artifacts under report/)")
    else:
        click.echo("not logged: no MLflow parent run found for this sweep")


# MLflow's tracking stores by URI scheme (mlflow/tracking/_tracking_service/utils.py).
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def tracking_problem(uri: str | None) -> str | None:
    """Why `--tracking-uri` names no MLflow store (None when it may): MLflow's own refusal
    comes as a traceback from the first trial's callback, after Ray has started."""
    if uri is None or uri.split("://", 1)[0].split("+", 1)[0] in TRACKING_SCHEMES:
        return None
    return (
        f"--tracking-uri {uri}: not an MLflow tracking URI "
        "(give http://HOST:PORT of an MLflow server, or sqlite:///PATH)"
    )


def result_metric(manifest: dict) -> str:
    metric = manifest["space"].get("metric", "val/balanced_accuracy")
    return metric[0] if isinstance(metric, list) else metric


def sweep_summary(result, metric: str) -> str:
    lines = [
        "",
        f"sweep {result.name}: {result.trials} trials, {result.errors} errored",
        f"  stored at     {result.path}",
    ]
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
