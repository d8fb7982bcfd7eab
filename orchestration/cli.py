"""The `hmtl` command line.

Bad input (a config, a dataset, a checkpoint) ends in one line on stderr that names
the problem, and exit code 2, before any work starts; never a traceback.
"""

from __future__ import annotations

import sys
from datetime import datetime
from importlib import resources
from pathlib import Path

import click

from trainables.checkpoint import CheckpointError
from trainables.config import ConfigError, load_config
from trainables.data.prepared import DatasetError

USER_ERRORS = (ConfigError, DatasetError, CheckpointError, FileNotFoundError)


def fail(message: str) -> None:
    click.echo(f"hmtl: error: {message}", err=True)
    sys.exit(2)


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
@click.argument("config")
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
    type=click.Path(),
    default=None,
    help="Checkpoint folder to continue from (e.g. RUN/checkpoint_000003).",
)
def train_command(
    config: str, overrides: tuple[str, ...], out: str | None, resume_from: str | None
) -> None:
    """Train one model without Ray: one progress line per epoch, then a summary."""
    from trainables.session import LocalSession
    from trainables.train import train

    path = resolve_config(config)
    try:
        cfg = load_config(path, list(overrides))
    except ConfigError as err:
        fail(str(err))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out) if out else Path("hmtl-runs") / "train" / f"{path.stem}-{stamp}"
    if run_dir.exists() and any(run_dir.glob("checkpoint_*")) and resume_from is None:
        fail(
            f"{run_dir} already holds checkpoints; pass --resume-from "
            f"{run_dir}/checkpoint_... to continue, or choose another --out"
        )
    if resume_from is not None and not Path(resume_from).exists():
        fail(f"--resume-from {resume_from}: no such checkpoint")
    click.echo(f"hmtl train: {path} -> {run_dir}")
    session = LocalSession(run_dir, resume_from=resume_from, log=click.echo)
    try:
        result = train(cfg, session)
    except USER_ERRORS as err:
        fail(str(err))
    click.echo(summary(result.metrics, result.checkpoint))


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


if __name__ == "__main__":
    main()
