"""`hmtl study`, and the study side of `hmtl resume` and `hmtl report` (a study folder,
`<storage>/studies/<name>`, is told from a sweep folder by its `hmtl-study.json`)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from hmtl.orchestration.cli.common import fail, tracking_problem
from hmtl.orchestration.cli.options import (
    address_option,
    storage_option,
    tracking_uri_option,
    verbose_option,
)
from hmtl.orchestration.platform.cluster import InfeasibleError, address_problem
from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.study.checks import StudyError
from hmtl.orchestration.sweep.space import SpaceError
from hmtl.trainables.config import ConfigError
from hmtl.trainables.data.storage import StorageError

ERRORED_EXIT = 3  # as `hmtl sweep`'s (orchestration/cli/main.py)


@click.command("study")
@click.argument("study")
@storage_option()
@tracking_uri_option()
@address_option()
@click.option(
    "--smoke", is_flag=True, help="Synthetic data, tiny model, 1 epoch, 2 seeds: checks the path."
)
@verbose_option("Also show Ray's and MLflow's log lines.")
def study_command(
    study: str,
    storage: str | None,
    tracking_uri: str | None,
    address: str | None,
    smoke: bool,
    verbose: bool,
) -> None:
    """Run a study (a file, or a shipped study's name): its stages in order, then its report."""

    storage = storage or "hmtl-runs"
    for problem in (address_problem(address), tracking_problem(tracking_uri)):
        if problem:
            fail(problem)
    if "://" in storage and tracking_uri is None:
        fail(f"--storage {storage}: object storage needs --tracking-uri (an MLflow server)")
    try:
        # Lazy: keeps matplotlib out of `hmtl --help` and the input checks.
        from hmtl.orchestration.study.spec import load_study

        spec = load_study(study)
        if smoke:
            # Lazy: keeps matplotlib out of `hmtl --help` and the input checks.
            from hmtl.orchestration.study.smoke import smoke_study

            local_root = Path("hmtl-runs") if "://" in storage else Path(storage)
            spec = smoke_study(spec, local_root.resolve() / "smoke")
        # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
        from hmtl.orchestration.study.engine import check_study

        check_study(spec, address)  # before Ray's slow import
    except (StudyError, SpaceError, ConfigError, InfeasibleError) as err:
        fail(str(err))
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.study.engine import run_study
    from hmtl.orchestration.tracking.callback import default_tracking_uri
    from hmtl.orchestration.tracking.probe import TrackingError

    tracking_uri = tracking_uri or default_tracking_uri(storage)
    count = len(spec.stage_list)
    header = f"hmtl study {spec.name}: {count} stage{'s' * (count != 1)}, storage {storage}"
    try:
        result = run_study(
            spec,
            storage,
            tracking_uri,
            address=address,
            verbose=2 if verbose else 1,
            announce=lambda: click.echo(header),
            echo=click.echo,
        )
    except (StudyError, SpaceError, InfeasibleError, StorageError, TrackingError) as err:
        fail(str(err))
    finish_study(result, address)


def resume_study_command(path: str, address: str | None, verbose: bool) -> None:
    """`hmtl resume STUDY_PATH`."""
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.study.engine import resume_study
    from hmtl.orchestration.tracking.probe import TrackingError

    click.echo(f"hmtl resume {path}: a study")
    try:
        result = resume_study(path, address=address, verbose=2 if verbose else 1, echo=click.echo)
    except (StudyError, SpaceError, InfeasibleError, StorageError, TrackingError) as err:
        fail(str(err))
    finish_study(result, address)


def report_study_command(path: str, out: str | None, tracking_uri: str | None) -> None:
    """`hmtl report STUDY_PATH`: the report rebuilt from the stored trials."""
    # Lazy: keeps mlflow out of `hmtl --help` and the input checks.
    from mlflow.exceptions import MlflowException

    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.study.engine import read_study, report_study

    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.study.tracking import study_run_id
    from hmtl.orchestration.tracking.probe import TrackingError, probe

    try:
        study, manifest = read_study(path)

        tracking_uri = tracking_uri or manifest["tracking_uri"]
        probe(tracking_uri)
        run_id = study_run_id(tracking_uri, study.name)
        markdown, files = report_study(
            study, Store.open(path), tracking_uri, run_id, Path(out) if out else None
        )
    except (StudyError, StorageError, TrackingError, MlflowException) as err:
        fail(str(err).splitlines()[0])
    click.echo(markdown or "no finished grid trials to report yet")
    click.echo(f"{len(files)} file(s); logged to MLflow run {run_id} (artifacts under report/)")


def finish_study(result, address: str | None) -> None:
    """The report, then exit 3 with the resume command if a stage has errored trials."""
    for name, out in result.outputs.items():
        if "trials" not in out:  # a job stage (mine, distill): what it published
            click.echo(f"stage {name}: {out.get('rows')} rows in {out.get('dataset')}")
            continue
        click.echo(
            f"stage {name}: {out['trials']} trials, best checkpoint {out['best_checkpoint']}"
        )
    if result.stopped_at is not None:
        command = ["hmtl", "resume", result.path, *(["--address", address] if address else [])]
        click.echo(
            f"\nstage {result.stopped_at}: {result.errors} trial(s) errored or none reported the "
            f"metric; continue the study with:\n  {shlex.join(command)}"
        )
        sys.exit(ERRORED_EXIT)
    click.echo(f"\n{result.markdown}")
    click.echo(f"study {result.name}: stored at {result.path}; MLflow run {result.run_id}")
