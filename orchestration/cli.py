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

from trainables.checkpoint import CheckpointError
from trainables.config import ConfigError, load_config
from trainables.data.prepared import DatasetError
from trainables.data.readers import FORMATS
from trainables.data.storage import StorageError

USER_ERRORS = (ConfigError, DatasetError, CheckpointError, StorageError, FileNotFoundError)


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

    tracking_uri = tracking_uri or default_tracking_uri(storage)
    click.echo(
        f"hmtl sweep {spec.name}: {spec.num_samples} trials, storage {storage}, "
        f"tracking {tracking_uri}"
    )
    try:
        result = run_sweep(spec, storage, tracking_uri, address=address)
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


# ---------------------------------------------------------------------------- Ray jobs

ADDRESS_HELP = (
    "The cluster's Ray dashboard (jobs API), e.g. http://127.0.0.1:8265 through "
    "`ray dashboard cluster.yaml`. The token comes from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH "
    "or ~/.ray/auth_token."
)


@main.command("submit")
@click.argument("space", required=False)
@click.option("--address", required=True, help=ADDRESS_HELP)
@click.option(
    "--storage",
    default=None,
    help="s3://bucket/prefix (required on a multi-node cluster); on a single node, a path "
    "on the head (default: hmtl-runs in the job's working directory).",
)
@click.option("--tracking-uri", default=None, help="MLflow tracking URI, as seen from the head.")
@click.option("--name", default=None, help="Sweep name (default: the space's name).")
@click.option(
    "--num-samples",
    type=click.IntRange(min=1),
    default=None,
    help="Number of trials (default: the space's num_samples).",
)
@click.option("--smoke", is_flag=True, help="The smoke version of the space (see hmtl sweep).")
@click.option(
    "--resume",
    "resume_uri",
    default=None,
    metavar="SWEEP_URI",
    help="Submit `hmtl resume SWEEP_URI` instead of a new sweep (no SPACE then).",
)
def submit_command(
    space: str | None,
    address: str,
    storage: str | None,
    tracking_uri: str | None,
    name: str | None,
    num_samples: int | None,
    smoke: bool,
    resume_uri: str | None,
) -> None:
    """Submit a sweep (or its resumption) to a Ray cluster as a Ray job."""
    from orchestration import jobs
    from trainables.data.storage import redact

    def warn(message: str) -> None:
        click.echo(f"hmtl: {message}", err=True)

    try:
        if resume_uri is not None:
            given = [
                flag
                for flag, value in (
                    ("SPACE", space),
                    ("--storage", storage),
                    ("--tracking-uri", tracking_uri),
                    ("--name", name),
                    ("--num-samples", num_samples),
                    ("--smoke", smoke or None),
                )
                if value is not None
            ]
            if given:
                fail(
                    f"--resume takes the sweep's space, storage and tracking from its "
                    f"manifest; drop {', '.join(given)}"
                )
            command = jobs.resume_command(resume_uri)
            submission = jobs.submit(address, command, resume_uri, "--resume", warn=warn)
        else:
            if space is None:
                fail("give a SPACE (a shipped name or a file in the project), or --resume")
            command = jobs.sweep_command(
                jobs.space_argument(space, jobs.project_root()),
                storage,
                tracking_uri,
                name=name,
                num_samples=num_samples,
                smoke=smoke,
            )
            submission = jobs.submit(address, command, storage, warn=warn)
    except jobs.JobError as err:
        fail(str(err))
    job, where = submission.job_id, submission.address
    nodes = f"{submission.nodes} node{'s' if submission.nodes != 1 else ''}"
    click.echo(f"submitted job {job} to {where} ({nodes}): {redact(submission.command)}")
    if submission.note:
        click.echo(f"  note: {submission.note}")
    click.echo(f"  follow:  hmtl logs {job} --address {where} --follow")
    click.echo(f"  stop:    hmtl stop {job} --address {where}")


@main.command("logs")
@click.argument("job_id", metavar="JOB")
@click.option("--address", required=True, help=ADDRESS_HELP)
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
def logs_command(job_id: str, address: str, follow: bool) -> None:
    """Print a Ray job's logs (the sweep's progress table and summary)."""
    from orchestration import jobs

    try:
        if not follow:
            click.echo(jobs.logs(address, job_id), nl=False)
            return
        final = jobs.follow_logs(address, job_id, lambda chunk: click.echo(chunk, nl=False))
    except jobs.JobError as err:
        fail(str(err))
    except KeyboardInterrupt:
        click.echo(f"\nstopped following; job {job_id} keeps running", err=True)
        return
    click.echo(f"\njob {job_id}: {final}")


@main.command("stop")
@click.argument("job_id", metavar="JOB")
@click.option("--address", required=True, help=ADDRESS_HELP)
def stop_command(job_id: str, address: str) -> None:
    """Stop a Ray job and print its final status."""
    from orchestration import jobs

    try:
        final = jobs.stop(address, job_id)
    except jobs.JobError as err:
        fail(str(err))
    click.echo(f"job {job_id}: {final}")


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


# ---------------------------------------------------------------------------- hmtl data


@main.group("data")
def data_group() -> None:
    """Prepare source datasets into Parquet shards, and inspect prepared ones."""


def _data_errors() -> tuple[type[Exception], ...]:
    from trainables.data.readers.base import BadRow, SourceError

    return (SourceError, BadRow, DatasetError, StorageError)


@data_group.command("prepare")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMATS))
@click.argument("source")
@click.option(
    "--out",
    required=True,
    help="Local folder or s3://bucket/prefix (S3-compatible: add ?endpoint_override=URL "
    "or set HMTL_S3_ENDPOINT). Published as OUT/NAME/<fingerprint>/.",
)
@click.option(
    "--size", type=click.IntRange(8, 1024), default=None, help="Side in pixels (default: source's)."
)
@click.option(
    "--channels",
    type=click.Choice(["1", "3"]),
    default=None,
    help="1 grey, 3 RGB (default: source's).",
)
@click.option("--name", default=None, help="Dataset name under OUT (default: the format).")
@click.option("--skip-bad", is_flag=True, help="Skip bad rows and count them in the card.")
@click.option("--no-crop-face", is_flag=True, help="AffectNet: keep the whole image.")
@click.option(
    "--ferplus-mode",
    type=click.Choice(["majority", "distribution"]),
    default="majority",
    help="FERPlus: majority label, or also the vote distribution as a soft target.",
)
def data_prepare_command(
    fmt: str,
    source: str,
    out: str,
    size: int | None,
    channels: str | None,
    name: str | None,
    skip_bad: bool,
    no_crop_face: bool,
    ferplus_mode: str,
) -> None:
    """Read SOURCE in FORMAT and publish it as Parquet shards plus card.json under --out."""
    from trainables.data.prepare import prepare
    from trainables.data.readers.base import ReaderOptions
    from trainables.data.storage import redact

    options = ReaderOptions(crop_face=not no_crop_face, ferplus_mode=ferplus_mode)
    try:
        result = prepare(
            fmt,
            source,
            out,
            size=size,
            channels=int(channels) if channels else None,
            name=name,
            skip_bad=skip_bad,
            options=options,
            progress=sys.stderr.isatty(),
        )
    except _data_errors() as err:
        fail(str(err))
    card, uri = result.card, redact(result.uri)
    if result.reused:
        click.echo(
            f"hmtl data prepare: identical dataset already published at {uri}; nothing written"
        )
    else:
        click.echo(f"hmtl data prepare: published {uri}")
    click.echo(
        f"  {card['num_rows']:,} rows, {card['image_size']} px, {card['channels']} channel(s), "
        f"fingerprint {card['fingerprint'][:12]}"
    )
    if result.bad_rows:
        reasons = card.get("bad_row_reasons") or {}
        top = "; ".join(f"{why} x{n}" for why, n in list(reasons.items())[:3])
        click.echo(f"  skipped {result.bad_rows:,} bad rows ({top})")
    empty = [c for c, n in _class_totals(card).items() if n == 0]
    if empty:
        click.echo(f"  no rows for: {', '.join(empty)}")


@data_group.command("inspect")
@click.argument("uri")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the PNGs (default: hmtl-runs/inspect/<name>-<fingerprint>).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
def data_inspect_command(uri: str, out: str | None, as_json: bool) -> None:
    """Print a prepared dataset's card; write a contact sheet and a class histogram (PNG)."""
    import json

    from trainables.data.prepared import read_prepared

    try:
        prepared = read_prepared(uri)
    except _data_errors() as err:
        fail(str(err))
    card = prepared.card
    click.echo(json.dumps(card, indent=2) if as_json else card_text(card))
    name = f"{card.get('name', 'dataset')}-{card['fingerprint'][:12]}"
    folder = Path(out) if out else Path("hmtl-runs") / "inspect" / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sheet = contact_sheet(prepared, folder / "contact_sheet.png")
        histogram = class_histogram(card, folder / "class_histogram.png")
    except OSError as err:
        fail(f"{folder}: cannot write the pictures ({err.strerror or err})")
    click.echo(f"\ncontact sheet    {sheet}\nclass histogram  {histogram}")


def _by_split(card: dict) -> list[tuple[str, dict[str, int]]]:
    """The card's per-split counts in train, val, test order (then any other group)."""
    order = {"train": 0, "val": 1, "test": 2}
    return sorted(card.get("counts", {}).items(), key=lambda kv: (order.get(kv[0], 3), kv[0]))


def _class_totals(card: dict) -> dict[str, int]:
    totals = dict.fromkeys(card.get("classes", []), 0)
    for counts in card.get("counts", {}).values():
        for cls, n in counts.items():
            totals[cls] = totals.get(cls, 0) + n
    return totals


def card_text(card: dict) -> str:
    """A dataset card as a short readable summary with a counts table."""
    labels = ", ".join(card.get("optional_labels", [])) or "none"
    splits = "official" if card.get("has_split") else "drawn at training time"
    if card.get("split_groups") == "identity":
        splits += ", identity-disjoint"
    lines = [
        f"dataset      {card.get('name')}  ({card.get('source_format')}: {card.get('source')})",
        f"rows         {card['num_rows']:,}  ({card['image_size']}x{card['image_size']}, "
        f"{card['channels']} channel(s))",
        f"fingerprint  {card['fingerprint']}",
        f"labels       expression; optional: {labels}; "
        f"soft labels: {'yes' if card.get('has_soft_labels') else 'no'}",
        f"splits       {splits}",
    ]
    if card.get("bad_rows"):
        reasons = ", ".join(f"{k} x{v}" for k, v in card.get("bad_row_reasons", {}).items())
        lines.append(f"bad rows     {card['bad_rows']:,} skipped ({reasons})")
    classes = card.get("classes", [])
    width = max([9, *(len(c) + 1 for c in classes)])
    lines += ["", "counts".ljust(12) + "".join(c.rjust(width) for c in classes) + "total".rjust(9)]
    for group, counts in _by_split(card):
        row = [counts.get(c, 0) for c in classes]
        lines.append(group.ljust(12) + "".join(f"{n:>{width},}" for n in row) + f"{sum(row):>9,}")
    return "\n".join(lines)


def contact_sheet(prepared, path: Path, per_class: int = 8) -> Path:
    """A grid PNG: one row per class, up to `per_class` seeded random samples, labelled."""
    import numpy as np
    from matplotlib.figure import Figure

    images, y = prepared.images, prepared.labels["expression"]
    classes = prepared.card.get("classes", [])
    size, pad = images.shape[1], 2
    cell = size + pad
    sheet = np.full((len(classes) * cell + pad, per_class * cell + pad, 3), 255, np.uint8)
    rng = np.random.default_rng(0)
    for row in range(len(classes)):
        for col, i in enumerate(rng.permutation(np.flatnonzero(y == row))[:per_class]):
            top, left = pad + row * cell, pad + col * cell
            sheet[top : top + size, left : left + size] = images[i]  # grey broadcasts to RGB
    fig = Figure(figsize=(2 + per_class, 0.3 + len(classes)), dpi=max(50, 2 * size))
    ax = fig.add_axes((0.18, 0.02, 0.8, 0.9))
    ax.imshow(sheet, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([pad + r * cell + size / 2 for r in range(len(classes))])
    ax.set_yticklabels([f"{c} ({int((y == r).sum())})" for r, c in enumerate(classes)])
    ax.set_title(f"{prepared.card.get('name')}  {prepared.card['fingerprint'][:12]}")
    fig.savefig(path)
    return path


def class_histogram(card: dict, path: Path) -> Path:
    """A grouped bar chart of rows per class, one bar per split."""
    import numpy as np
    from matplotlib.figure import Figure

    classes, counts = card.get("classes", []), _by_split(card)
    fig = Figure(figsize=(9, 4), dpi=100)
    ax = fig.add_subplot()
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(counts))
    for k, (group, tally) in enumerate(counts):
        ax.bar(x + k * width, [tally.get(c, 0) for c in classes], width, label=group)
    ax.set_xticks(x + width * (len(counts) - 1) / 2, classes, rotation=30)
    ax.set_ylabel("rows")
    ax.set_title(f"{card.get('name')}: rows per class and split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path


if __name__ == "__main__":
    main()
