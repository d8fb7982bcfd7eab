"""Running a study: its stages one after another on one Ray cluster, then its report.

    study -> stage (a kind from orchestration/study/kinds/base.py) -> sweep -> trial

Storage: `<storage>/studies/<study>/hmtl-study.json` (the study, where it tracks, and each
finished stage's outputs) and one sweep folder per stage, `<storage>/studies/<study>/sweeps/
<stage>/` (the sweep layout, so `hmtl status` and `hmtl resume` work on a stage too).
MLflow: the study's experiment holds one study run, a run per stage under it
(`mlflow.parentRunId`) and the trial runs under those, tagged `hmtl.study`, `hmtl.stage` and,
for grid trials, `hmtl.arm`, `hmtl.cell`, `hmtl.seed`.

A stage's outputs are recorded in the study file when it finishes; `resume_study` reuses
them (the stage is not run again, references resolve to the same URIs), resumes a stage whose
sweep had started like `hmtl resume` resumes a sweep, and starts the rest. A job stage (a
kind with `run`: mine, distill) runs on the driver in its own stage run; one that did not
finish runs again on resume (mining is cached, both jobs publish atomically and reuse an
identical dataset, so repeating one costs time, not correctness).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from hmtl.orchestration.platform.cluster import check_local
from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.study.checks import StudyError
from hmtl.orchestration.study.job_stage import run_job
from hmtl.orchestration.study.kinds import KINDS
from hmtl.orchestration.study.manifest import STUDY_MANIFEST
from hmtl.orchestration.study.refs import has_reference, resolve
from hmtl.orchestration.study.reporting import study_report
from hmtl.orchestration.study.results import trial_run_ids
from hmtl.orchestration.study.sequential import run_rounds, saved_trials, sequential
from hmtl.orchestration.study.spec import Study, validate_study
from hmtl.orchestration.study.subsets import record_label_subsets
from hmtl.orchestration.study.tracking import (
    finish_study_run,
    log_answers,
    stage_run_id,
    study_run_id,
)
from hmtl.orchestration.sweep.manifest import MANIFEST
from hmtl.orchestration.sweep.run import resume_sweep, run_sweep
from hmtl.orchestration.sweep.space import SpaceError, validate_space
from hmtl.orchestration.tracking.probe import probe
from hmtl.orchestration.tracking.tags import STAGE_TAG, STUDY_TAG, redact_uri


@dataclass
class StudyResult:
    name: str
    path: str
    outputs: dict[str, dict[str, Any]]
    """Stage name -> its recorded outputs (best_checkpoint, best_config, run_id, ...)."""
    errors: int = 0
    """Errored trials of the stage the study stopped at (0: every stage finished)."""
    stopped_at: str | None = None
    markdown: str = ""
    files: list[Path] = field(default_factory=list)
    run_id: str | None = None


def study_store(storage: str, name: str) -> Store:
    return Store.open(storage).child("studies", name)


def stage_options(study: Study, stage, outputs: dict[str, dict]) -> tuple[Any, dict]:
    """A stage's options and overrides, its references resolved from recorded `outputs`."""
    resolved = resolve(stage.raw, outputs)
    rest = {k: v for k, v in resolved.items() if k not in ("name", "kind", "overrides")}
    return KINDS[stage.kind].options.model_validate(rest), resolved.get("overrides") or {}


def stage_space(study: Study, stage, outputs: dict[str, dict]):
    """The sweep that runs `stage`, its references resolved from recorded `outputs`."""
    options, overrides = stage_options(study, stage, outputs)
    return KINDS[stage.kind].space(study, stage, options, overrides)


def is_job(stage) -> bool:
    """Whether the stage's kind is a job the driver runs (it has `run`), not a sweep."""
    return hasattr(KINDS[stage.kind], "run")


def check_study(study: Study, address: str | None, num_cpus: int | None = None) -> None:
    """Before Ray starts: every sweep stage whose config needs no earlier stage builds a
    valid sweep that this machine (or the cluster) can hold; every job stage passes its
    kind's `preflight` (the inputs its options name)."""
    for stage in study.stage_list:
        try:
            if is_job(stage):
                preflight = getattr(KINDS[stage.kind], "preflight", None)
                if preflight is not None:
                    preflight(study, stage, os.getcwd())
                continue
            if has_reference(stage.raw):
                continue
            space = stage_space(study, stage, {})
        except (SpaceError, ValueError) as err:
            raise StudyError(
                f"{study.label()}: stages[{stage.index}] ({stage.name}): {err}"
            ) from None
        check_local(space, address, num_cpus)


def run_study(
    study: Study,
    storage: str,
    tracking_uri: str,
    address: str | None = None,
    num_cpus: int | None = None,
    verbose: int = 1,
    announce: Callable[[], None] | None = None,
    echo: Callable[[str], None] = print,
) -> StudyResult:
    """Run every stage of a new study, then its report; refuses a study that exists."""

    check_study(study, address, num_cpus)
    store = study_store(storage, study.name)
    try:
        store.read_text(STUDY_MANIFEST, fail_fast=True)
        raise StudyError(
            f"{store.uri}: study '{study.name}' exists; continue it with "
            f"`hmtl resume {store.uri}` or give the study another name"
        )
    except FileNotFoundError:
        pass
    probe(tracking_uri)
    store.check_writable()
    raw = study.model_dump(mode="json", exclude={"source"})
    raw["base"] = study.base_tree()
    manifest = {
        "study": raw,
        "source": str(study.source.resolve()) if study.source else None,
        "origin": os.getcwd(),
        "tracking_uri": redact_uri(tracking_uri),
        "outputs": {},
    }
    _save(store, manifest)
    if announce is not None:
        announce()
    return _drive(study, store, manifest, address, num_cpus, verbose, echo)


def read_study(path: str | Store) -> tuple[Study, dict[str, Any]]:
    """The study stored at `path` (`<storage>/studies/<name>`) and its manifest."""
    store = Store.open(path)
    try:
        text = store.read_text(STUDY_MANIFEST, fail_fast=True)
    except FileNotFoundError:
        raise StudyError(f"{store.uri}: not a study folder (no {STUDY_MANIFEST})") from None
    manifest = json.loads(text)
    source = manifest.get("source")
    study = validate_study(manifest["study"], Path(source) if source else None)
    return study, manifest


def is_study(path: str) -> bool:
    try:
        Store.open(path).read_text(STUDY_MANIFEST, fail_fast=True)
    except (FileNotFoundError, OSError, ValueError):
        return False
    return True


def resume_study(
    path: str,
    address: str | None = None,
    num_cpus: int | None = None,
    verbose: int = 1,
    echo: Callable[[str], None] = print,
) -> StudyResult:
    """Continue a study: finished stages reused, a started one resumed, the rest run."""

    store = Store.open(path)
    study, manifest = read_study(store)
    probe(manifest["tracking_uri"])
    return _drive(study, store, manifest, address, num_cpus, verbose, echo)


def _drive(study, store, manifest, address, num_cpus, verbose, echo) -> StudyResult:

    tracking_uri = manifest["tracking_uri"]
    outputs: dict[str, dict] = manifest["outputs"]
    study_run = study_run_id(tracking_uri, study.name)
    for stage in study.stage_list:
        if stage.name in outputs:
            echo(f"stage {stage.name}: finished earlier, reused ({outputs[stage.name]['path']})")
            continue
        if is_job(stage):  # not finished: run (again; jobs are safe to repeat)
            try:
                options, overrides = stage_options(study, stage, outputs)
            except ValueError as err:
                raise StudyError(
                    f"{study.label()}: stages[{stage.index}] ({stage.name}): {err}"
                ) from None
            outputs[stage.name] = run_job(
                study,
                stage,
                options,
                overrides,
                store,
                tracking_uri,
                study_run,
                manifest["origin"],
                echo,
                address,
                num_cpus,
            )
            _save(store, manifest)
            continue
        sweep = store.child("sweeps", stage.name)
        try:
            sweep.read_text(MANIFEST)
            started = True
        except FileNotFoundError:
            started = False
        context = {
            "experiment": study.name,
            "parent": study_run,
            "labels": {STUDY_TAG: study.name, STAGE_TAG: stage.name},
        }
        # Relative paths are read against the folder the study started in, also on resume.
        origin = manifest["origin"]
        if sequential(stage):  # seeds in rounds until each comparison is decided
            try:
                options, overrides = stage_options(study, stage, outputs)
            except ValueError as err:
                raise StudyError(
                    f"{study.label()}: stages[{stage.index}] ({stage.name}): {err}"
                ) from None
            result, space, looks = run_rounds(
                study,
                stage,
                options,
                overrides,
                store,
                manifest,
                lambda: _save(store, manifest),
                partial(
                    run_sweep,
                    storage=store,
                    tracking_uri=tracking_uri,
                    address=address,
                    num_cpus=num_cpus,
                    verbose=verbose,
                    tracking=context,
                    origin=origin,
                ),
                partial(resume_sweep, address=address, num_cpus=num_cpus, verbose=verbose),
                echo,
            )
            ran, fixed = saved_trials(study, stage, looks)
            echo(
                f"stage {stage.name}: {len(looks)} look(s), {ran} trials run of the {fixed} "
                f"a fixed design of {sequential(stage).max} seeds runs: {fixed - ran} saved"
            )
        elif started:  # a stage the study was stopped in: resumed like a sweep
            echo(f"stage {stage.name} ({stage.kind}): resuming {sweep.uri}")
            space = validate_space(json.loads(sweep.read_text(MANIFEST))["space"])
            result = resume_sweep(sweep, address=address, num_cpus=num_cpus, verbose=verbose)
        else:
            try:
                space = stage_space(study, stage, outputs)
            except (SpaceError, ValueError) as err:
                raise StudyError(
                    f"{study.label()}: stages[{stage.index}] ({stage.name}): {err}"
                ) from None
            echo(f"stage {stage.name} ({stage.kind}): {space.num_samples} trials")
            result = run_sweep(
                space,
                store,
                tracking_uri,
                address,
                num_cpus,
                verbose,
                tracking=context,
                origin=origin,
            )
        if result.errors or result.best_trial is None:
            return StudyResult(
                study.name, store.uri, outputs, max(result.errors, 1), stage.name, run_id=study_run
            )
        # Which rows each label fraction kept, beside the results (the sweep's checks ran).
        record_label_subsets(space, store, tracking_uri, study_run, manifest["origin"])
        outputs[stage.name] = {
            "kind": stage.kind,
            "path": sweep.uri if sequential(stage) else result.path,
            "best_checkpoint": result.best_checkpoint,
            "best_value": result.best_metrics.get(space.metrics[0]),
            "run_id": stage_run_id(tracking_uri, study.name, stage.name),
            "trials": result.trials,
            **KINDS[stage.kind].outputs(study, space, result, sweep),
        }
        if sequential(stage):  # every round's trials; the saving against `max` seeds
            ran, fixed = saved_trials(study, stage, manifest["rounds"][stage.name])
            outputs[stage.name].update(trials=ran, fixed_trials=fixed, saved_trials=fixed - ran)
        _save(store, manifest)
    markdown, files = report_study(study, store, tracking_uri, study_run)
    finish_study_run(tracking_uri, study_run, outputs)
    return StudyResult(study.name, store.uri, outputs, 0, None, markdown, files, study_run)


def report_study(
    study: Study,
    store: Store,
    tracking_uri: str | None,
    run_id: str | None,
    out: Path | None = None,
) -> tuple[str, list[Path]]:
    """Build the report from the stored trials into `out` (default: `report/` in a local
    study folder, a temporary folder for object storage) and log it to the study's run."""

    runs = trial_run_ids(tracking_uri, study.name)
    if out is None and not store.remote:
        out = Path(store.root) / "report"
    scratch = None
    if out is None:
        scratch = tempfile.TemporaryDirectory(prefix="hmtl-study-report-")
        out = Path(scratch.name)
    markdown, files, headlines = study_report(study, store, out, runs)
    if tracking_uri and run_id:
        log_answers(tracking_uri, run_id, study.description, headlines)
    if tracking_uri and run_id and files:
        client = MlflowClient(tracking_uri)
        for path in files:
            where = path.parent.relative_to(out).as_posix()
            client.log_artifact(run_id, str(path), f"report/{where}".rstrip("/."))
    if scratch is not None:
        scratch.cleanup()
    return markdown, files


def _save(store: Store, manifest: dict[str, Any]) -> None:
    store.write_text(STUDY_MANIFEST, json.dumps(manifest, indent=2))
