"""Reading dataset cards without their shards, and publishing the mined rows of a pool.

Both stream: a pool may hold millions of faces, so its card is read alone and the kept rows
are copied shard by shard (one pool shard in memory at a time).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from hmtl.trainables.data.prepared import (
    DatasetError,
    PreparedWriter,
    Published,
    write_scored_shard,
)
from hmtl.trainables.data.storage import filesystem_for, redact, storage_error
from hmtl.trainables.mining import Scores


def read_card(uri: str, option: str) -> dict:
    """A prepared dataset's card.json, read without downloading its shards (the pool may be
    millions of rows). One-line DatasetError/StorageError naming `option`."""
    fs, root = filesystem_for(uri)
    try:
        with fs.open_input_stream(f"{root.rstrip('/')}/card.json") as f:
            card = json.loads(f.read())
    except FileNotFoundError:
        raise DatasetError(
            f"{option} {redact(uri)}: not a prepared dataset (no card.json)"
        ) from None
    except json.JSONDecodeError:
        raise DatasetError(f"{option} {redact(uri)}: card.json is not valid JSON") from None
    except OSError as err:
        raise storage_error(uri, err, f"{option}: reading the dataset card") from None
    for key in ("shards", "image_size", "channels", "num_rows", "fingerprint"):
        if key not in card:
            raise DatasetError(f"{option} {redact(uri)}: card.json has no '{key}'")
    return card


def publish_mined(
    pool: str, card: dict, scores: Scores, rows: np.ndarray, provenance: dict, out: str, name: str
) -> Published:
    """Publish pool rows `rows` (ascending) with their `scores` under `out/name/`: written
    shard by shard (the pool's own sharding, streamed), the card with `provenance` last. The
    fingerprint also covers the provenance, so other settings never reuse a card."""
    size, channels = card["image_size"], card["channels"]
    fs, root = filesystem_for(pool)
    with PreparedWriter(out, name, size, channels) as writer:
        offset = 0
        for shard in card["shards"]:
            with fs.open_input_file(f"{root.rstrip('/')}/{shard}") as f:
                table = pq.read_table(f, columns=["image"])
            mine = rows[(rows >= offset) & (rows < offset + table.num_rows)]
            offset += table.num_rows
            if len(mine) == 0:
                continue
            values = table.column("image").take(mine - (offset - table.num_rows)).to_pylist()
            images = np.frombuffer(b"".join(values), np.uint8).reshape(
                len(mine), size, size, channels
            )
            labels = {"expression": scores.label[mine]}
            columns = {
                "pool_row": mine.astype(np.int64),
                "mining_similarity": scores.similarity[mine],
                "mining_confidence": scores.confidence[mine],
                "mining_classifier": scores.classifier[mine].astype(np.int8),
            }
            write_scored_shard(writer, images, labels, np.full(len(mine), "train", object), columns)
        writer.digest.update(json.dumps(provenance, sort_keys=True).encode())
        return writer.publish(
            source_format="mined", source=redact(pool), bad_rows=0, mining=provenance
        )
