"""`hmtl study`, and the study side of `hmtl resume` and `hmtl report` (a study folder,
`<storage>/studies/<name>`, is told from a sweep folder by its `hmtl-study.json`)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from hmtl.orchestration.cli.checks import local_checks, ray_line
from hmtl.orchestration.cli.common import fail
from hmtl.orchestration.cli.completion import complete_study
from hmtl.orchestration.cli.options import (
    DEFAULT_STORAGE,
    TRACKING_ENV,
    address_option,
    json_option,
    set_option,
    source,
    storage_option,
    tracking_uri_option,
    verbose_option,
)
from hmtl.orchestration.cli.output import Output

ERRORED_EXIT = 3  # as `hmtl sweep`'s (orchestration/cli/sweep.py)


def with_overrides(spec, overrides: tuple[str, ...]):
    """The study with `--set` applied to its base config, checked as the file's base is."""
    if not overrides:
        return spec
    # Lazy: keeps optuna and pydantic out of `hmtl --help`.
    from hmtl.orchestration.study.spec import validate_study
    from hmtl.trainables.config import build_config

    tree = build_config(spec.base_tree(), overrides, source="--set").model_dump(mode="json")
    raw = spec.model_dump(mode="json", exclude={"source"})
    return validate_study({**raw, "base": tree}, spec.source)


@click.command("study")
@click.argument("study", shell_complete=complete_study)
@storage_option()
@tracking_uri_option("sqlite:///<storage>/mlflow.db")
@address_option()
@set_option()
@click.option(
    "--smoke", is_flag=True, help="Synthetic data, tiny model, 1 epoch, 2 seeds: checks the path."
)
@json_option()
@verbose_option()
def study_command(
    study: str,
    storage: str | None,
    tracking_uri: str | None,
    address: str | None,
    overrides: tuple[str, ...],
    smoke: bool,
    as_json: bool,
    verbose: bool,
) -> None:
    """Run a study (a file, or a shipped study's name): its stages in order, then its report."""
    # Lazy: keeps optuna, torch and pydantic out of `hmtl --help`.
    from hmtl.orchestration.platform.cluster import InfeasibleError
    from hmtl.orchestration.study.checks import StudyError
    from hmtl.orchestration.sweep.space import SpaceError
    from hmtl.trainables.config import ConfigError

    storage = storage or DEFAULT_STORAGE
    joined = local_checks(storage, tracking_uri, address, "study")
    try:
        # Lazy: keeps matplotlib out of `hmtl --help` and the input checks.
        from hmtl.orchestration.study.spec import load_study

        spec = with_overrides(load_study(study), overrides)
        if smoke:
            # Lazy: keeps matplotlib out of `hmtl --help` and the input checks.
            from hmtl.orchestration.study.smoke import smoke_study

            local_root = Path(DEFAULT_STORAGE) if "://" in storage else Path(storage)
            spec = smoke_study(spec, local_root.resolve() / "smoke")
        # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
        from hmtl.orchestration.study.engine import check_study

        check_study(spec, joined)  # before Ray's slow import
    except (StudyError, SpaceError, ConfigError, InfeasibleError) as err:
        fail(str(err))
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.study.engine import run_study
    from hmtl.orchestration.tracking.callback import default_tracking_uri
    from hmtl.orchestration.tracking.probe import TrackingError
    from hmtl.trainables.data.storage import StorageError

    out = Output(as_json)
    tracking_note = source("tracking_uri", TRACKING_ENV)
    tracking_uri = tracking_uri or default_tracking_uri(storage)
    count = len(spec.stage_list)
    header = (
        f"hmtl study {spec.name}: {count} stage{'s' * (count != 1)}, storage {storage}, "
        f"tracking {tracking_uri}{tracking_note}, ray {ray_line(joined)}"
    )
    try:
        with out.human():
            result = run_study(
                spec,
                storage,
                tracking_uri,
                address=joined,
                verbose=2 if verbose else 1,
                announce=lambda: out.echo(header),
                echo=out.echo,
            )
    except (StudyError, SpaceError, InfeasibleError, StorageError, TrackingError) as err:
        fail(str(err))
    finish_study(result, joined, out)


def resume_study_command(path: str, joined: str | None, verbose: bool, out: Output) -> None:
    """`hmtl resume STUDY_PATH`."""
    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform.cluster import InfeasibleError
    from hmtl.orchestration.study.checks import StudyError
    from hmtl.orchestration.study.engine import resume_study
    from hmtl.orchestration.sweep.space import SpaceError
    from hmtl.orchestration.tracking.probe import TrackingError
    from hmtl.trainables.data.storage import StorageError

    out.echo(f"hmtl resume {path}: a study, ray {ray_line(joined)}")
    try:
        with out.human():
            result = resume_study(path, address=joined, verbose=2 if verbose else 1, echo=out.echo)
    except (StudyError, SpaceError, InfeasibleError, StorageError, TrackingError) as err:
        fail(str(err))
    finish_study(result, joined, out)


def report_study_command(path: str, out: str | None, tracking_uri: str | None) -> None:
    """`hmtl report STUDY_PATH`: the report rebuilt from the stored trials."""
    # Lazy: keeps mlflow out of `hmtl --help` and the input checks.
    from mlflow.exceptions import MlflowException

    # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform.store import Store
    from hmtl.orchestration.study.checks import StudyError
    from hmtl.orchestration.study.engine import read_study, report_study
    from hmtl.orchestration.study.tracking import study_run_id
    from hmtl.orchestration.tracking.probe import TrackingError, probe
    from hmtl.trainables.data.storage import StorageError

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


def finish_study(result, address: str | None, out: Output | None = None) -> None:
    """The stages and the report (and with --json the `hmtl.study/1` object), then exit 3
    with the resume command if a stage has errored trials."""
    out = out or Output(False)
    for name, stage in result.outputs.items():
        if "trials" not in stage:  # a job stage (mine, distill): what it published
            out.echo(f"stage {name}: {stage.get('rows')} rows in {stage.get('dataset')}")
            continue
        out.echo(
            f"stage {name}: {stage['trials']} trials, best checkpoint {stage['best_checkpoint']}"
        )
    command = None
    if result.stopped_at is not None:
        words = ["hmtl", "resume", result.path, *(["--address", address] if address else [])]
        command = shlex.join(words)
        out.echo(
            f"\nstage {result.stopped_at}: {result.errors} trial(s) errored or none reported the "
            f"metric; continue the study with:\n  {command}"
        )
    else:
        out.echo(f"\n{result.markdown}")
        out.echo(f"study {result.name}: stored at {result.path}; MLflow run {result.run_id}")
    out.result(
        "study",
        {
            "name": result.name,
            "path": result.path,
            "stages": result.outputs,
            "stopped_at": result.stopped_at,
            "errored": result.errors,
            "run_id": result.run_id,
            "report_files": [str(f) for f in result.files],
            "exit_code": ERRORED_EXIT if command else 0,
            "resume_command": command,
        },
    )
    if command:
        sys.exit(ERRORED_EXIT)
