"""`prepare`: a dataset in its source format → published Parquet shards plus `card.json`.

Records stream from the format's reader; each face is conformed and buffered, and every
`rows_per_shard` rows become one shard, so memory holds one shard, never the dataset.

Conforming an image: a non-square image is centre-cropped to a square of its shorter
side (faces are centred in every supported source), then resized to size × size with
PIL's bilinear filter (antialiased when shrinking; images already at size are untouched).
Grey → RGB repeats the plane; RGB → grey is ITU-R 601 luma (PIL's "L"). Without
`size`/`channels` the source's own are kept, which requires every image to agree.

Bad rows (a `Record` with `bad`, or one that cannot be conformed) stop the run with one
line naming the file and row, unless `skip_bad`, which counts them in the card. A
`BadRow` *raised* by a reader ends its scan, so it always stops the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from hmtl.trainables.data import readers
from hmtl.trainables.data.prepared import EXPRESSIONS, PreparedWriter
from hmtl.trainables.data.readers.base import BadRow, Reader, ReaderOptions, Record, SourceError
from hmtl.trainables.data.storage import redact

SHARD_BYTES = 256 << 20
"""Upper bound of one shard's image bytes, whatever rows_per_shard says."""
_MAX_REASONS = 50


@dataclass
class PrepareResult:
    uri: str
    """The published dataset folder: `<out>/<name>/<fingerprint>`."""
    card: dict
    reused: bool
    """True when an identical dataset (same fingerprint) was already published there."""
    bad_rows: int


class ProgressBar(Protocol):
    """What `prepare` advances while it reads (a tqdm bar is one); closed twice at most."""

    def update(self, n: int = 1) -> object: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...

    def close(self) -> None: ...


def prepare(
    fmt: str,
    source: str | Path,
    out: str | Path,
    *,
    size: int | None = None,
    channels: int | None = None,
    name: str | None = None,
    skip_bad: bool = False,
    options: ReaderOptions = ReaderOptions(),  # noqa: B008 - frozen dataclass
    progress: Callable[[int | None], ProgressBar] | None = None,
    rows_per_shard: int = 4096,
) -> PrepareResult:
    """Read `source` with the `fmt` reader and publish it under `<out>/<name>/<fingerprint>/`.

    Raises SourceError (the source as a whole), BadRow (the first bad row, without
    `skip_bad`), DatasetError or StorageError; on any failure nothing is published.
    `progress(total)` makes the bar advanced once per row read (the CLI passes one on a
    terminal); the source is counted for its total first, so only when it is given.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if size is not None and size < 1:
        raise ValueError(f"size must be positive, got {size}")
    reader = _reader(fmt)
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{source}: no such file or folder")
    bar = progress(reader.count(path, options)) if progress else None
    state = _State(size, channels, skip_bad, unlabelled=options.unlabelled)
    try:
        with PreparedWriter(out, name or fmt) as writer:
            shard = _Shard()
            records = iter(reader.scan(path, options))
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    break
                except BadRow as err:  # raised, not yielded: the reader cannot go on past it
                    raise state.stop(err, raised=True) from None
                state.take(record, shard)
                if len(shard) >= state.shard_rows(rows_per_shard):
                    writer.write_shard(*shard.drain())
                if bar is not None:
                    _advance(bar, state)
            if len(shard):
                writer.write_shard(*shard.drain())
            if bar is not None:
                bar.close()  # before publishing: the rate it ends on is the reading rate
            if writer.num_rows == 0:
                raise SourceError(f"{source}: no usable rows ({state.read} read, {state.bad} bad)")
            published = writer.publish(
                source_format=fmt,
                source=redact(str(source)),
                reader_options=asdict(options),
                preprocessing="centre square crop, PIL bilinear resize, ITU-R 601 luma",
                bad_rows=state.bad,
                bad_row_reasons=dict(state.reasons.most_common()),
                bad_row_examples=state.examples,
                # Rows of one person must not straddle splits drawn later (CK+, KDEF).
                split_groups="identity" if "identity" in writer.labels_seen else None,
            )
    finally:
        if bar is not None:
            bar.close()  # again on failure; closing twice is harmless
    return PrepareResult(published.uri, published.card, published.reused, state.bad)


def _advance(bar: ProgressBar, state: _State) -> None:
    """One more row read; the bad rows so far beside the count, once there are any."""
    bar.update(1)
    if state.bad:
        bar.set_postfix_str(f"{state.bad:,} bad", refresh=False)


def _reader(fmt: str) -> Reader:
    try:
        return readers.get_reader(fmt)
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("hmtl.trainables.data.readers"):
            raise SourceError(f"format {fmt}: no reader installed yet ({err.name})") from None
        raise


@dataclass
class _State:
    """Target shape, counts and bad-row bookkeeping while streaming."""

    size: int | None
    channels: int | None
    skip_bad: bool
    unlabelled: bool = False
    """Rows carry no expression label (and the card will say so)."""
    read: int = 0
    bad: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    first: str = ""
    """Where the first good image came from (it fixed the natural size/channels)."""
    natural: tuple[int, int] | None = None
    given: tuple[int | None, int | None] = (None, None)

    def take(self, record: Record, shard: _Shard) -> None:
        self.read += 1
        try:
            if record.bad is not None:
                raise record.bad
            image = self.conform(record)
            soft = _check_soft(record)
            label = record.expression
            if self.unlabelled:
                label = None
            elif label is None or not 0 <= int(label) < len(EXPRESSIONS):
                raise BadRow(record.where, f"expression label {label!r} outside 0..7")
        except BadRow as err:
            if not self.skip_bad:
                raise self.stop(err) from None
            self.bad += 1
            self.reasons[err.reason if len(self.reasons) < _MAX_REASONS else "other"] += 1
            if len(self.examples) < 10:
                self.examples.append(str(err))
            return
        shard.add(image, None if label is None else int(label), record.labels, record.split, soft)

    def stop(self, err: BadRow, raised: bool = False) -> BadRow:
        """The one-line error that ends a run at a bad row."""
        hint = (
            "the reader cannot continue past it"
            if raised
            else "--skip-bad skips and counts bad rows"
        )
        good = self.read - self.bad - (0 if raised else 1)
        return BadRow(
            err.where,
            f"{err.reason} (stopped after {self.read} rows read, {good} good; "
            f"nothing published; {hint})",
        )

    def conform(self, record: Record) -> np.ndarray:
        image = record.image
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim not in (2, 3)
            or (image.ndim == 3 and image.shape[2] not in (1, 3))
            or min(image.shape[:2]) < 1
        ):
            shape = getattr(image, "shape", None)
            raise BadRow(record.where, f"not a uint8 grey or RGB image (shape {shape})")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        natural = (min(image.shape[:2]), 1 if image.ndim == 2 else 3)
        if self.natural is None:
            self.natural, self.first = natural, record.where
            self.given = (self.size, self.channels)
            self.size = self.size or natural[0]
            self.channels = self.channels or natural[1]
        for k, (what, flag) in enumerate((("size", "--size N"), ("channels", "--channels 1|3"))):
            if self.given[k] is None and natural[k] != self.natural[k]:
                raise SourceError(
                    f"{record.where}: image {what} {natural[k]} differs from {self.natural[k]} "
                    f"({self.first}); pass {flag} to choose one"
                )
        return conform_image(image, self.size, self.channels)

    def shard_rows(self, rows_per_shard: int) -> int:
        row_bytes = (self.size or 1) ** 2 * (self.channels or 1)
        return max(1, min(rows_per_shard, SHARD_BYTES // row_bytes))


def conform_image(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Centre square crop, channel conversion, bilinear resize: (size, size, channels) uint8."""
    h, w = image.shape[:2]
    side = min(h, w)
    if h != w:
        top, left = (h - side) // 2, (w - side) // 2
        image = image[top : top + side, left : left + side]
    have = 1 if image.ndim == 2 else 3
    if have != channels:
        if channels == 3:
            image = np.repeat(image[:, :, None], 3, axis=2)
        else:
            image = np.asarray(Image.fromarray(np.ascontiguousarray(image), "RGB").convert("L"))
    if side != size:
        pil = Image.fromarray(np.ascontiguousarray(image))
        image = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))
    if image.ndim == 2:
        image = image[:, :, None]
    return np.ascontiguousarray(image)


def _check_soft(record: Record) -> np.ndarray | None:
    if record.soft is None:
        return None
    soft = np.asarray(record.soft, np.float32)
    if soft.shape != (len(EXPRESSIONS),) or not np.isfinite(soft).all():
        raise BadRow(record.where, f"soft label must be 8 finite values, got shape {soft.shape}")
    return soft


class _Shard:
    """Rows buffered for the next shard; label columns hold None where a row lacks one."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []
        self.expression: list[int] = []
        self.labels: list[dict] = []
        self.split: list[str | None] = []
        self.soft: list[np.ndarray | None] = []

    def __len__(self) -> int:
        return len(self.images)

    def add(self, image, expression, labels, split, soft) -> None:
        self.images.append(image)
        self.expression.append(expression)
        self.labels.append(labels)
        self.split.append(split)
        self.soft.append(soft)

    def drain(self) -> tuple:
        names = sorted({k for row in self.labels for k in row})
        labels = {}
        if any(e is not None for e in self.expression):  # an unlabelled source has none
            labels["expression"] = np.asarray(self.expression, np.int64)
        labels |= {k: [row.get(k) for row in self.labels] for k in names}
        split = self.split if any(s is not None for s in self.split) else None
        soft = self.soft if any(s is not None for s in self.soft) else None
        out = (np.stack(self.images), labels, split, soft)
        self.__init__()
        return out
