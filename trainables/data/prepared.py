"""The prepared form every dataset is read from: Parquet shards plus `card.json`.

One row per face: `image` (raw uint8 bytes, H×W×C), `expression` (canonical index,
see DATASETS.md), optional label columns, an optional `soft` vote distribution
(fixed-size list of 8 float32) and an optional `split`. The card records classes,
counts, image size, channels, which optional labels exist and a SHA-256 fingerprint
over the rows.

A dataset lives at `<root>/<name>/<fingerprint>/`, where `root` is a local folder or
`s3://bucket/prefix` (see `storage.py`). `PreparedWriter` streams shards into
`<root>/<name>/.tmp-<uuid>/` and publishes them only once every shard is written:
locally by renaming the folder (the card inside it), on S3 by copying the shards to the
final prefix and writing the card last. The card is the completion marker: a folder
without one is refused, so a crash never leaves anything that looks complete.

Reading from S3 goes through a node-local cache keyed by fingerprint (`storage.cache_root`),
so a second read downloads nothing; images are decoded to one uint8 array once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hmtl.trainables.data.retrying import without_retries
from hmtl.trainables.data.storage import (
    StorageError,
    cache_root,
    filesystem_for,
    is_remote,
    join,
    redact,
    storage_error,
)

EXPRESSIONS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
OPTIONAL_LABELS = {
    "yaw": pa.float32(),
    "pitch": pa.float32(),
    "roll": pa.float32(),
    "valence": pa.float32(),
    "arousal": pa.float32(),
    "gender": pa.int8(),
    "identity": pa.int32(),
}
SOFT_TYPE = pa.list_(pa.float32(), len(EXPRESSIONS))
SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class DatasetError(ValueError):
    """A dataset that cannot be used, phrased as one line naming the file."""


@dataclass
class Prepared:
    """A prepared dataset read into memory: NHWC uint8 images and label arrays.

    `labels` holds `expression`, the optional labels (floats NaN and integers -1 where a
    row has none) and `soft` ((N, 8) float32) when the dataset has soft labels.
    """

    images: np.ndarray
    labels: dict[str, np.ndarray]
    split: np.ndarray | None
    card: dict


@dataclass
class Published:
    uri: str
    card: dict
    reused: bool
    """True when the same fingerprint was already published; nothing new was written."""


class PreparedWriter:
    """Streams one dataset's shards to `<out>/<name>/.tmp-<uuid>/`, then publishes them.

    Use as a context manager: leaving it with an exception (or without `publish`) removes
    the temporary folder. The fingerprint, counts and label set accumulate shard by shard,
    so memory stays bounded by one shard.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        name: str,
        image_size: int | None = None,
        channels: int | None = None,
    ):
        if not _NAME.fullmatch(name):
            raise DatasetError(f"dataset name {name!r}: use letters, digits, '_', '.', '-'")
        self.out, self.name = str(out), name
        self.image_size, self.channels = image_size, channels  # else fixed by the first shard
        self.fs, root = filesystem_for(out)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.parent = f"{root.rstrip('/')}/{name}"
        self.staging = f"{self.parent}/.tmp-{uuid.uuid4().hex}"
        self.shards: list[str] = []
        self.digest = hashlib.sha256()
        self.counts: dict[str, Counter] = {}
        self.labels_seen: set[str] = set()
        self.has_soft = self.has_split = False
        self.labelled: bool | None = None  # fixed by the first shard: expression or none
        self.num_rows = 0
        self._open = False

    def __enter__(self) -> PreparedWriter:
        try:
            # Also the first write probe: a missing bucket or a read-only store fails here.
            without_retries(self.fs).create_dir(self.staging, recursive=True)
        except OSError as err:
            raise storage_error(self.out, err, "creating the dataset folder") from None
        self._open = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._open:
            self._delete(self.staging)

    def write_shard(
        self,
        images: np.ndarray,
        labels: dict[str, np.ndarray | list],
        split: np.ndarray | list | None = None,
        soft: np.ndarray | list | None = None,
    ) -> None:
        """Write rows as one shard: `images` (n, S, S, C) uint8, per-row label columns
        (lists may hold None for a row without that label), split names, (n, 8) soft."""
        n = len(images)
        if self.image_size is None and images.ndim == 4:
            self.image_size, self.channels = images.shape[1], images.shape[3]
        if images.dtype != np.uint8 or images.shape[1:] != (
            self.image_size,
            self.image_size,
            self.channels,
        ):
            raise DatasetError(
                f"{self.name}: images must be uint8 (N, {self.image_size}, {self.image_size}, "
                f"{self.channels}), got {images.dtype} {images.shape}"
            )
        extra = sorted(set(labels) - {"expression"} - set(OPTIONAL_LABELS))
        labelled = "expression" in labels
        if extra or (not labelled and labels) or self.labelled not in (None, labelled):
            raise DatasetError(
                f"{self.name}: unexpected label columns {extra}, or 'expression' missing from "
                "a labelled dataset (an unlabelled one has no label columns at all)"
            )
        self.labelled = labelled
        columns = {"split": split, "soft": soft, **labels}
        short = [c for c, v in columns.items() if v is not None and len(v) != n]
        if short:
            raise DatasetError(f"{self.name}: columns {short} do not have {n} rows like the images")
        table = _table(images, labels, split, soft)
        self.digest_table(table)
        shard = f"part-{len(self.shards):05d}.parquet"
        try:
            pq.write_table(table, f"{self.staging}/{shard}", filesystem=self.fs)
        except OSError as err:
            raise storage_error(self.out, err, f"writing {shard}") from None
        self.shards.append(shard)

    def digest_table(self, table: pa.Table) -> None:
        _update_digest(self.digest, table)
        self.num_rows += table.num_rows
        names = table.column_names
        self.labels_seen |= {c for c in names if c in OPTIONAL_LABELS}
        self.has_soft |= "soft" in names
        if "expression" in names:
            expression = table.column("expression").to_numpy()
        else:
            expression = np.full(table.num_rows, -1)
        if "split" in names:
            self.has_split = True
            groups = table.column("split").fill_null("unassigned").to_pylist()
        else:
            groups = ["all"] * table.num_rows
        for group, label in zip(groups, expression.tolist(), strict=True):
            self.counts.setdefault(group, Counter())[label] += 1

    def card(self, **extra) -> dict:
        if self.labelled is False:  # no label columns: rows per group, no classes
            extra = {"labelled": False, **extra}
            return {
                **self._card(**extra),
                "classes": [],
                "counts": {
                    g: {"unlabelled": sum(t.values())} for g, t in sorted(self.counts.items())
                },
            }
        return self._card(**extra)

    def _card(self, **extra) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "classes": list(EXPRESSIONS),
            "num_rows": self.num_rows,
            "image_size": int(self.image_size or 0),
            "channels": int(self.channels or 0),
            "optional_labels": sorted(self.labels_seen),
            "has_soft_labels": self.has_soft,
            "has_split": self.has_split,
            "counts": {
                group: {EXPRESSIONS[i]: int(tally.get(i, 0)) for i in range(len(EXPRESSIONS))}
                for group, tally in sorted(self.counts.items())
            },
            **{key: value for key, value in extra.items() if value is not None},
            "shards": list(self.shards),
            "fingerprint": self.digest.hexdigest(),
        }

    def publish(self, **extra) -> Published:
        """Publish under `<out>/<name>/<fingerprint>/`, or keep an identical one found there.

        `extra` adds card fields (source_format, source, bad_rows...).
        """
        card = self.card(**extra)
        fingerprint = card["fingerprint"]
        final = f"{self.parent}/{fingerprint}"
        uri = join(self.out, self.name, fingerprint)
        try:
            existing = self._read_card(final)
            if existing is not None:
                return Published(uri, existing, reused=True)
            text = json.dumps(card, indent=2)
            if self.local:
                self._write(f"{self.staging}/card.json", text)
                if self.fs.get_file_info(final).type != pafs.FileType.NotFound:
                    self.fs.delete_dir(final)  # an incomplete leftover without a card
                try:
                    self.fs.move(self.staging, final)
                except OSError:
                    existing = self._read_card(final)  # a concurrent writer published it
                    if existing is None:
                        raise
                    return Published(uri, existing, reused=True)
                self._open = False
            else:
                for shard in self.shards:
                    self.fs.copy_file(f"{self.staging}/{shard}", f"{final}/{shard}")
                self._write(f"{final}/card.json", text)  # last: the completion marker
        except OSError as err:
            raise storage_error(self.out, err, "publishing the dataset") from None
        return Published(uri, card, reused=False)

    def _read_card(self, folder: str) -> dict | None:
        try:
            with self.fs.open_input_stream(f"{folder}/card.json") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return None

    def _write(self, path: str, text: str) -> None:
        with self.fs.open_output_stream(path) as f:
            f.write(text.encode())

    def _delete(self, path: str) -> None:
        with contextlib.suppress(OSError):  # best effort: the store may be what failed
            self.fs.delete_dir(path)


def write_prepared(
    root: str | os.PathLike,
    name: str,
    source_format: str,
    images: np.ndarray,
    labels: dict[str, np.ndarray],
    split: np.ndarray | None = None,
    rows_per_shard: int = 4096,
) -> Path:
    """Write in-memory arrays under `<root>/<name>/<fingerprint>/` and return that folder.

    `images` is (N, H, W, C) uint8; `labels` holds `expression`, any optional labels and
    optionally `soft` ((N, 8)). A dataset with the same fingerprint is kept as it is.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise DatasetError(f"{name}: images must be uint8 (N, S, S, C), got {images.shape}")
    labels = dict(labels)
    soft = labels.pop("soft", None)
    n = len(images)
    with PreparedWriter(root, name, images.shape[1], images.shape[3]) as writer:
        for start in range(0, n, rows_per_shard):
            rows = slice(start, min(start + rows_per_shard, n))
            writer.write_shard(
                images[rows],
                {c: v[rows] for c, v in labels.items()},
                None if split is None else split[rows],
                None if soft is None else soft[rows],
            )
        published = writer.publish(source_format=source_format, source=name, bad_rows=0)
    return Path(published.uri)


def _table(images, labels, split, soft) -> pa.Table:
    n = len(images)
    flat = np.ascontiguousarray(images).reshape(-1)
    if flat.nbytes >= 2**31:
        raise DatasetError(f"a shard of {flat.nbytes} image bytes is too large; use fewer rows")
    offsets = np.arange(n + 1, dtype=np.int32) * (flat.nbytes // max(n, 1))
    image = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(flat)])
    columns = {"image": image}
    if "expression" in labels:  # absent from an unlabelled dataset
        columns["expression"] = _column(labels["expression"], pa.int8())
    for col in sorted(set(labels) - {"expression"}):
        columns[col] = _column(labels[col], OPTIONAL_LABELS[col])
    if soft is not None:
        columns["soft"] = _soft_column(soft)
    if split is not None:
        columns["split"] = pa.array([None if s is None else str(s) for s in split], pa.string())
    return pa.table(columns)


def _column(values, arrow_type: pa.DataType) -> pa.Array:
    if isinstance(values, np.ndarray):
        return pa.array(values.astype(arrow_type.to_pandas_dtype()), type=arrow_type)
    return pa.array(values, type=arrow_type)


def _soft_column(soft) -> pa.Array:
    if isinstance(soft, np.ndarray):
        return pa.FixedSizeListArray.from_arrays(
            pa.array(soft.astype(np.float32).reshape(-1)), len(EXPRESSIONS)
        )
    # A row without a distribution is stored as NaNs, not null: Parquet in pyarrow 25
    # cannot read back null entries of a fixed-size list.
    missing = [float("nan")] * len(EXPRESSIONS)
    rows = [missing if s is None else np.asarray(s, np.float32).tolist() for s in soft]
    return pa.array(rows, SOFT_TYPE)


def _update_digest(digest, table: pa.Table) -> None:
    """Hash rows in a canonical encoding, independent of how they are sharded.

    Missing values (null, or an all-NaN soft label) are skipped, so a row hashes the same
    whether its shard holds the column or not. Lists hash by their repr like scalars.
    """
    names = table.column_names
    columns = [table.column(c).to_pylist() for c in names]
    for row in zip(*columns, strict=True):
        for col, value in zip(names, row, strict=True):
            if value is None or (isinstance(value, list) and all(v != v for v in value)):
                continue
            raw = value if isinstance(value, bytes) else repr(value).encode()
            digest.update(col.encode() + b"=" + len(raw).to_bytes(8, "little") + raw)


def read_prepared(
    uri: str | os.PathLike, cache_dir: str | os.PathLike | None = None, fail_fast: bool = False
) -> Prepared:
    """Read a prepared dataset (a local folder or an S3 URI), checking the card against
    the shards. S3 datasets are read through the node cache (`fetch_to_cache`)."""
    folder = fetch_to_cache(str(uri), cache_dir, fail_fast) if is_remote(uri) else Path(uri)
    return _read_folder(folder)


def fetch_to_cache(
    uri: str, cache_dir: str | os.PathLike | None = None, fail_fast: bool = False
) -> Path:
    """The local copy of the dataset at S3 `uri`, downloaded on first use.

    The copy lives at `<cache>/<fingerprint>/`. A URI ending in the fingerprint (the form
    `prepare` publishes) is served from the cache without contacting the store at all.
    `fail_fast`: the first touch (the card) does not wait out an outage (commands a user
    runs by hand); trials wait, retrying for the storage budget.
    """
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    last = uri.partition("?")[0].rstrip("/").rsplit("/", 1)[-1]
    if _FINGERPRINT.fullmatch(last) and (root / last / "card.json").is_file():
        return root / last
    fs, path = filesystem_for(uri)
    try:
        first = without_retries(fs) if fail_fast else fs
        with first.open_input_stream(f"{path}/card.json") as f:
            card = json.loads(f.read())
    except FileNotFoundError:
        bucket = path.split("/", 1)[0]
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise StorageError(f"{redact(uri)}: the bucket '{bucket}' does not exist") from None
        raise DatasetError(
            f"{redact(uri)}: no card.json (not a prepared dataset, or not completely published)"
        ) from None
    except json.JSONDecodeError as err:
        raise DatasetError(f"{redact(uri)}/card.json: not valid JSON (line {err.lineno})") from None
    except OSError as err:
        raise storage_error(uri, err, "reading the dataset card") from None
    fingerprint = str(card.get("fingerprint", ""))
    if not _FINGERPRINT.fullmatch(fingerprint) or (
        _FINGERPRINT.fullmatch(last) and last != fingerprint
    ):
        raise DatasetError(f"{redact(uri)}/card.json: bad or mismatched fingerprint")
    target = root / fingerprint
    if (target / "card.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    local = pafs.LocalFileSystem()
    try:
        for shard in card.get("shards", []):
            try:
                pafs.copy_files(
                    f"{path}/{shard}",
                    str(staging / shard),
                    source_filesystem=fs,
                    destination_filesystem=local,
                )
            except OSError as err:
                raise storage_error(join(uri, shard), err, "downloading a shard") from None
        (staging / "card.json").write_text(json.dumps(card, indent=2))
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "card.json").is_file():  # else another worker won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _read_folder(folder: Path) -> Prepared:
    card_path = folder / "card.json"
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{card_path}: no dataset card (is this a prepared dataset?)") from None
    except json.JSONDecodeError as err:
        raise DatasetError(f"{card_path}: not valid JSON (line {err.lineno})") from None
    for key in ("shards", "image_size", "channels", "num_rows", "fingerprint"):
        if key not in card:
            raise DatasetError(f"{card_path}: missing key '{key}'")
    size, channels, total = card["image_size"], card["channels"], card["num_rows"]
    expected = size * size * channels
    # Decoded once, shard by shard, into one preallocated array (writable for torch).
    images = np.empty((total, size, size, channels), np.uint8)
    rest, start = [], 0
    for shard in card["shards"]:
        try:
            table = pq.read_table(folder / shard)
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(f"{folder / shard}: unreadable shard ({err})") from None
        columns = ("image", "expression") if card.get("labelled", True) else ("image",)
        for column in columns:
            if column not in table.column_names:
                raise DatasetError(f"{folder / shard}: no '{column}' column")
        if start + table.num_rows > total:
            raise DatasetError(f"{folder}: card says {total} rows, shards hold more")
        for chunk in table.column("image").chunks:
            lengths = pc.binary_length(chunk).to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(lengths != expected)
            if len(bad):
                row = start + int(bad[0])
                raise DatasetError(
                    f"{folder}: row {row} has {lengths[bad[0]]} image bytes, "
                    f"expected {expected} ({size}x{size}x{channels})"
                )
            base = np.frombuffer(chunk.buffers()[1], np.int32)[chunk.offset]
            values = np.frombuffer(chunk.buffers()[2], np.uint8)
            n = len(chunk)
            images[start : start + n] = values[base : base + n * expected].reshape(
                n, size, size, channels
            )
            start += n
        rest.append(table.drop_columns(["image"]))
    if start != total:
        raise DatasetError(f"{folder}: card says {total} rows, shards hold {start}")
    table = pa.concat_tables(rest, promote_options="default") if rest else None
    labels, split = _labels(table) if table is not None else ({}, None)
    if "expression" not in labels:  # no rows, or an unlabelled dataset: -1 = no label
        labels["expression"] = np.full(total, -1, np.int8)
    return Prepared(images=images, labels=labels, split=split, card=card)


def _labels(table: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    labels: dict[str, np.ndarray] = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if name == "expression":
            labels[name] = np.array(column.to_numpy(zero_copy_only=False))  # writable
        elif name == "soft":
            soft = np.full((len(column), len(EXPRESSIONS)), np.nan, np.float32)
            present = ~column.is_null().to_numpy(zero_copy_only=False)
            flat = column.flatten().to_numpy(zero_copy_only=False)
            soft[present] = flat.reshape(-1, len(EXPRESSIONS))
            labels[name] = soft
        elif name in OPTIONAL_LABELS:
            arrow_type = OPTIONAL_LABELS[name]
            if pa.types.is_integer(arrow_type):
                column = column.fill_null(-1)
            values = column.to_numpy(zero_copy_only=False)
            labels[name] = values.astype(arrow_type.to_pandas_dtype())  # a writable copy
    split = None
    if "split" in table.column_names:
        split = table.column("split").to_numpy(zero_copy_only=False)
    return labels, split


def find_prepared(root: str | os.PathLike, name: str) -> Path | None:
    """The published folder of dataset `name` under local `root`, if one exists."""
    cards = sorted((Path(root) / name).glob("*/card.json"))
    published = [c.parent for c in cards if not c.parent.name.startswith(".tmp-")]
    return published[0] if published else None


def write_scored_shard(
    writer: PreparedWriter,
    images: np.ndarray,
    labels: dict[str, np.ndarray],
    split: np.ndarray | None,
    scores: dict[str, np.ndarray],
) -> None:
    """`writer.write_shard` plus per-row numeric columns (a mined dataset's scores); readers
    ignore columns they do not know, and the fingerprint covers them like any other."""
    table = _table(images, labels, split, None)
    for name, values in scores.items():
        table = table.append_column(name, pa.array(np.asarray(values)))
    writer.digest_table(table)
    shard = f"part-{len(writer.shards):05d}.parquet"
    try:
        pq.write_table(table, f"{writer.staging}/{shard}", filesystem=writer.fs)
    except OSError as err:
        raise storage_error(writer.out, err, f"writing {shard}") from None
    writer.shards.append(shard)
