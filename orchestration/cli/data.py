"""`hmtl data prepare` and `hmtl data inspect`."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click
import numpy as np

from hmtl.orchestration.cli.common import OneLineGroup, fail
from hmtl.orchestration.cli.options import PUBLISHED, json_option, out_option
from hmtl.orchestration.platform.folders import removed_on_failure
from hmtl.orchestration.platform.progress import maker
from hmtl.trainables.data.prepare import prepare
from hmtl.trainables.data.prepared import DatasetError, read_prepared
from hmtl.trainables.data.readers import FORMATS
from hmtl.trainables.data.readers.base import BadRow, ReaderOptions, SourceError
from hmtl.trainables.data.storage import StorageError, filesystem_for, is_remote, redact


@click.group("data", cls=OneLineGroup)
def data_group() -> None:
    """Prepare source datasets into Parquet shards, and inspect prepared ones."""


def _data_errors() -> tuple[type[Exception], ...]:

    return (SourceError, BadRow, DatasetError, StorageError)


@data_group.command("prepare")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMATS))
@click.argument("source")
@out_option(
    f"{PUBLISHED}; S3-compatible stores: ?endpoint_override=URL or HMTL_S3_ENDPOINT", required=True
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
    "--unlabelled",
    is_flag=True,
    help="imagefolder: every image under SOURCE at any depth, no classes (for pre-training).",
)
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
    unlabelled: bool,
) -> None:
    """Read SOURCE in FORMAT and publish it as Parquet shards plus card.json under --out."""

    if unlabelled and fmt != "imagefolder":
        fail(f"--unlabelled: only the imagefolder format reads images without labels, not {fmt}")
    options = ReaderOptions(
        crop_face=not no_crop_face, ferplus_mode=ferplus_mode, unlabelled=unlabelled
    )
    # The dataset's folder under a local --out is made before the first row is read; a
    # source that turns out bad must not leave it (or --out itself) behind empty.
    target = Path(out) / (name or fmt)
    cleanup = removed_on_failure(target) if not is_remote(out) else contextlib.nullcontext()
    try:
        with cleanup:
            result = prepare(
                fmt,
                source,
                out,
                size=size,
                channels=int(channels) if channels else None,
                name=name,
                skip_bad=skip_bad,
                options=options,
                progress=maker(f"prepare {fmt}", " rows"),
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
@out_option("default: hmtl-runs/inspect/<name>-<fingerprint>", path=click.Path(file_okay=False))
@json_option()
def data_inspect_command(uri: str, out: str | None, as_json: bool) -> None:
    """Print a prepared dataset's card; write a contact sheet and a class histogram (PNG)."""

    try:
        if "://" in uri and not is_remote(uri):
            filesystem_for(uri)  # refuses the scheme, instead of reading it as a local path
        prepared = read_prepared(uri, fail_fast=True)
    except _data_errors() as err:
        fail(str(err))
    except NotADirectoryError:
        fail(f"{uri}: a file, not a prepared dataset folder (card.json + Parquet shards)")
    card = prepared.card
    click.echo(json.dumps(card, indent=2) if as_json else card_text(card))  # the card as is
    name = f"{card.get('name', 'dataset')}-{card['fingerprint'][:12]}"
    folder = Path(out) if out else Path("hmtl-runs") / "inspect" / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sheet = contact_sheet(prepared, folder / "contact_sheet.png")
        histogram = class_histogram(card, folder / "class_histogram.png")
    except OSError as err:
        fail(f"{folder}: cannot write the pictures ({err.strerror or err})")
    click.echo(f"\ncontact sheet    {sheet}\nclass histogram  {histogram}", err=as_json)


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
        f"labels       {'expression' if card.get('labelled', True) else 'none (unlabelled)'}; "
        f"optional: {labels}; "
        f"soft labels: {'yes' if card.get('has_soft_labels') else 'no'}",
        f"splits       {splits}",
    ]
    if card.get("bad_rows"):
        reasons = ", ".join(f"{k} x{v}" for k, v in card.get("bad_row_reasons", {}).items())
        lines.append(f"bad rows     {card['bad_rows']:,} skipped ({reasons})")
    classes = card.get("classes") or ["unlabelled"]  # an unlabelled card counts rows only
    width = max([9, *(len(c) + 1 for c in classes)])
    lines += ["", "counts".ljust(12) + "".join(c.rjust(width) for c in classes) + "total".rjust(9)]
    for group, counts in _by_split(card):
        row = [counts.get(c, 0) for c in classes]
        lines.append(group.ljust(12) + "".join(f"{n:>{width},}" for n in row) + f"{sum(row):>9,}")
    return "\n".join(lines)


def contact_sheet(prepared, path: Path, per_class: int = 8) -> Path:
    """A grid PNG: one row per class, up to `per_class` seeded random samples, labelled."""
    # Lazy: keeps matplotlib out of `hmtl --help` and the input checks.
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
    # Lazy: keeps matplotlib out of `hmtl --help` and the input checks.
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
