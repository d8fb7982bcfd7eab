"""The `hmtl` command line (also `python -m hmtl`).

Bad input (a config, a dataset, a checkpoint, an `HMTL_*` variable) ends in one line on
stderr that names the problem, and exit code 2, before any work starts; never a traceback.

Each command lives in its own module, imported only when that command runs (or shows its
help): `hmtl --help` and tab completion import click and this package's small modules only,
never torch, Ray or MLflow.
"""

from __future__ import annotations

import click

from hmtl.orchestration.cli.common import LazyGroup, fail

CLI = "hmtl.orchestration.cli"
COMMANDS: dict[str, tuple[str, str]] = {
    "data": (f"{CLI}.data:data_group", "Prepare source datasets into Parquet shards, and "
             "inspect prepared ones."),
    "train": (f"{CLI}.train:train_command", "Train one model without Ray: one progress line "
              "per epoch, then a summary."),
    "sweep": (f"{CLI}.sweep:sweep_command", "Search auxiliary-loss weights and augmentation "
              "with Ray Tune + Optuna (+ ASHA)."),
    "study": (f"{CLI}.study:study_command", "Run a study (a file, or a shipped study's name): "
              "its stages in order, then its report."),
    "status": (f"{CLI}.status:status_command", "A sweep's trials (or a study's stages), their "
               "states and the best so far."),
    "resume": (f"{CLI}.sweep:resume_command", "Continue an interrupted sweep or study from its "
               "storage."),
    "report": (f"{CLI}.sweep:report_command", "Plots and tables of a sweep or study, logged to "
               "its MLflow parent run."),
    "active": (f"{CLI}.active:active_command", "Run one active-learning loop without Ray: one "
               "line per cycle, then a summary."),
    "mine": (f"{CLI}.mine:mine_command", "Pseudo-label confident faces of an unlabelled pool "
             "and publish them as a dataset."),
    "distill": (f"{CLI}.distill:distill_command", "Distil a dataset into a few synthetic "
                "images per class (distribution matching)."),
    "submit": (f"{CLI}.jobs:submit_command", "Submit a sweep or a study (a shipped name or a "
               "file in the project), or the resumption of either, to a Ray cluster as a Ray "
               "job."),
    "logs": (f"{CLI}.jobs:logs_command", "Print a Ray job's logs (the sweep's progress table "
             "and summary)."),
    "stop": (f"{CLI}.jobs:stop_command", "Stop a Ray job and print its final status."),
}  # fmt: skip


def version_line() -> str:
    """`hmtl <version> (commit <sha>)`: the installed version and the checkout's commit."""
    # Lazy: importlib.metadata and git only for `hmtl --version`.
    from importlib.metadata import PackageNotFoundError, version

    # Lazy: importlib.metadata and git only for `hmtl --version`.
    from hmtl.orchestration.tracking.tags import git_commit

    try:
        number = version("hmtl")
    except PackageNotFoundError:
        number = "unknown"
    return f"hmtl {number} (commit {git_commit()})"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_line())
        ctx.exit()


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Environment: MLFLOW_TRACKING_URI and RAY_ADDRESS stand in for --tracking-uri and "
    "--address; HMTL_* variables are listed in the README. Tab completion: docs/cli.md.",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version and the commit, then exit.",
)
@click.pass_context
def main(ctx: click.Context) -> None:
    """hmtl: hybrid multi-task learning experiments for facial representations."""
    if ctx.meta.get("hmtl.help"):
        return
    # Every HMTL_* variable is checked before any command starts (README "Environment").
    # Lazy: keeps pydantic-settings out of `hmtl --help` and tab completion.
    from hmtl.trainables.settings import settings_problem

    problem = settings_problem()
    if problem:
        fail(problem)


if __name__ == "__main__":
    main()
