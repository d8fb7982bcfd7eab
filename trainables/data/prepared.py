"""The prepared form every dataset is read from: Parquet shards plus `card.json`.

One row per face: `image` (raw uint8 bytes, H×W×C), `expression` (canonical index,
see DATASETS.md) and optional label columns. The card records classes, counts, image
size, channels, which optional labels exist and a SHA-256 fingerprint over the rows.

A dataset is written into a temporary folder and renamed to
`<root>/<name>/<fingerprint>/` only once the card (written last) is in place, so a
crash never leaves anything that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1


class DatasetError(ValueError):
    """A dataset that cannot be used, phrased as one line naming the file."""


@dataclass
class Prepared:
    """A prepared dataset read into memory: NHWC uint8 images and label arrays."""

    images: np.ndarray
    labels: dict[str, np.ndarray]
    split: np.ndarray | None
    card: dict


def write_prepared(
    root: str | os.PathLike,
    name: str,
    source_format: str,
    images: np.ndarray,
    labels: dict[str, np.ndarray],
    split: np.ndarray | None = None,
    rows_per_shard: int = 4096,
) -> Path:
    """Write shards and card under `<root>/<name>/<fingerprint>/` and return that folder.

    `images` is (N, H, W, C) uint8; `labels` holds `expression` and any optional
    labels. If a dataset with the same fingerprint exists already, it is kept.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise DatasetError(f"{name}: images must be uint8 (N, S, S, C), got {images.shape}")
    extra = sorted(set(labels) - {"expression"} - set(OPTIONAL_LABELS))
    if extra or "expression" not in labels:
        raise DatasetError(f"{name}: unexpected label columns {extra} or no 'expression'")
    n = len(images)
    parent = Path(root) / name
    staging = parent / f".tmp-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    digest = hashlib.sha256()
    try:
        shards = []
        for k, start in enumerate(range(0, n, rows_per_shard)):
            rows = slice(start, min(start + rows_per_shard, n))
            table = _table(
                images[rows],
                {c: v[rows] for c, v in labels.items()},
                None if split is None else split[rows],
            )
            _update_digest(digest, table)
            shard = f"part-{k:05d}.parquet"
            pq.write_table(table, staging / shard)
            shards.append(shard)
        fingerprint = digest.hexdigest()
        card = _card(name, source_format, images.shape, labels, split, shards, fingerprint)
        (staging / "card.json").write_text(json.dumps(card, indent=2))
        final = parent / fingerprint
        if (final / "card.json").exists():
            shutil.rmtree(staging)
        else:
            os.replace(staging, final)
        return final
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _table(images: np.ndarray, labels: dict[str, np.ndarray], split: np.ndarray | None):
    columns = {"image": pa.array([img.tobytes() for img in images], type=pa.binary())}
    columns["expression"] = pa.array(labels["expression"].astype(np.int8), type=pa.int8())
    for col in sorted(set(labels) - {"expression"}):
        arrow_type = OPTIONAL_LABELS[col]
        columns[col] = pa.array(labels[col].astype(arrow_type.to_pandas_dtype()), type=arrow_type)
    if split is not None:
        columns["split"] = pa.array(split.astype(str), type=pa.string())
    return pa.table(columns)


def _update_digest(digest, table: pa.Table) -> None:
    """Hash rows in a canonical encoding, independent of how they are sharded."""
    names = table.column_names
    columns = [table.column(c).to_pylist() for c in names]
    for row in zip(*columns, strict=True):
        for col, value in zip(names, row, strict=True):
            raw = value if isinstance(value, bytes) else repr(value).encode()
            digest.update(col.encode() + b"=" + len(raw).to_bytes(8, "little") + raw)


def _card(name, source_format, shape, labels, split, shards, fingerprint) -> dict:
    n, size, _, channels = shape
    groups = split if split is not None else np.full(n, "all")
    counts: dict[str, dict[str, int]] = {}
    for group in sorted(set(groups.tolist())):
        tally = Counter(labels["expression"][groups == group].tolist())
        counts[str(group)] = {EXPRESSIONS[i]: int(tally.get(i, 0)) for i in range(len(EXPRESSIONS))}
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "source_format": source_format,
        "classes": list(EXPRESSIONS),
        "num_rows": int(n),
        "image_size": int(size),
        "channels": int(channels),
        "optional_labels": sorted(set(labels) - {"expression"}),
        "has_split": split is not None,
        "counts": counts,
        "shards": shards,
        "fingerprint": fingerprint,
    }


def read_prepared(folder: str | os.PathLike) -> Prepared:
    """Read a prepared dataset folder, checking the card against the shards."""
    folder = Path(folder)
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
    size, channels = card["image_size"], card["channels"]
    tables = []
    for shard in card["shards"]:
        try:
            tables.append(pq.read_table(folder / shard))
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(f"{folder / shard}: unreadable shard ({err})") from None
    table = pa.concat_tables(tables)
    if table.num_rows != card["num_rows"]:
        raise DatasetError(
            f"{folder}: card says {card['num_rows']} rows, shards hold {table.num_rows}"
        )
    for column in ("image", "expression"):
        if column not in table.column_names:
            raise DatasetError(f"{folder}: shards have no '{column}' column")
    raw = table.column("image").to_pylist()
    expected = size * size * channels
    bad = next((i for i, b in enumerate(raw) if len(b) != expected), None)
    if bad is not None:
        raise DatasetError(
            f"{folder}: row {bad} has {len(raw[bad])} image bytes, "
            f"expected {expected} ({size}x{size}x{channels})"
        )
    # A bytearray makes the array writable, which torch.from_numpy wants.
    images = np.frombuffer(bytearray(b"".join(raw)), dtype=np.uint8)
    images = images.reshape(-1, size, size, channels)
    labels = {
        c: table.column(c).to_numpy() for c in table.column_names if c not in ("image", "split")
    }
    split = (
        table.column("split").to_numpy(zero_copy_only=False)
        if "split" in table.column_names
        else None
    )
    return Prepared(images=images, labels=labels, split=split, card=card)


def find_prepared(root: str | os.PathLike, name: str) -> Path | None:
    """The published folder of dataset `name` under `root`, if one exists."""
    cards = sorted((Path(root) / name).glob("*/card.json"))
    published = [c.parent for c in cards if not c.parent.name.startswith(".tmp-")]
    return published[0] if published else None
