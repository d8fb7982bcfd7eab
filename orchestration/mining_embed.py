"""Embedding prepared datasets with a primitive model, on Ray Data, cached on disk.

The pool is read as a stream of its Parquet shards (`ray.data.read_parquet`, local or S3,
only the `image` column) and embedded by a fixed pool of model actors (`map_batches` with a
callable class whose `__init__` builds the model once per actor; GPU actors where the
cluster has GPUs). The driver consumes the result batch by batch into memory-mapped `.npy`
files, so its memory is one batch whatever the pool's size.

Cache: `<cache>/<model sha256[:16]>-<dataset fingerprint[:16]>/` holds `embeddings.npy`
(N, D) float32, `logits.npy` (N, C) float32 and `meta.json`, written last (the completion
marker; the folder is staged under a temporary name and renamed). The same checkpoint and
the same dataset reuse it: embedding millions of faces is the dominant cost of mining.

`engine="local"` runs the same model over the same shards in this process (small datasets,
and the baseline a benchmark compares Ray Data with).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from trainables.data.storage import filesystem_for, redact
from trainables.mining.primitive import build_primitive

ENGINES = ("ray", "local")


@dataclass
class Embedded:
    """A dataset's cached embeddings (memory-mapped, read-only) and whether they were reused."""

    embeddings: np.ndarray
    logits: np.ndarray
    folder: Path
    reused: bool


class Embedder:
    """Ray Data's callable class: builds the primitive once per actor, embeds image batches."""

    def __init__(
        self, spec: dict, image_size: int, channels: int, device: str = "cpu", threads: int = 0
    ):
        import torch

        if threads:  # actors: one core each, so the pool, not threads, scales out
            torch.set_num_threads(threads)
        self.model = build_primitive(spec, device)
        self.shape = (image_size, image_size, channels)

    def __call__(self, batch: dict) -> dict:
        images = decode(batch["image"], self.shape)
        embeddings, logits = self.model.embed(images)
        return {"embedding": embeddings, "logits": logits}


def decode(column, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 (N, S, S, C) images from a column of raw image bytes (numpy objects or Arrow)."""
    values = column.to_pylist() if hasattr(column, "to_pylist") else list(column)
    return np.frombuffer(b"".join(values), np.uint8).reshape(len(values), *shape)


def embedded(
    uri: str,
    card: dict,
    spec: dict,
    model_sha: str,
    cache: str | os.PathLike,
    engine: str = "ray",
    actors: int = 1,
    batch_size: int = 256,
    use_gpu: bool = False,
) -> Embedded:
    """The embeddings of the prepared dataset at `uri` (its `card` already read) under the
    primitive `spec` whose checkpoint has SHA-256 `model_sha`: from the cache, else computed
    with `engine` and cached. Ray must be initialised for `engine="ray"`."""
    folder = Path(cache) / f"{model_sha[:16]}-{card['fingerprint'][:16]}"
    if (folder / "meta.json").is_file():
        return _open(folder, reused=True)
    shape = (card["image_size"], card["image_size"], card["channels"])
    if engine == "ray":
        batches = _ray_batches(uri, card, spec, shape, actors, batch_size, use_gpu)
    else:
        batches = _local_batches(uri, card, spec, shape, batch_size)
    staging = folder.with_name(f".tmp-{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    try:
        rows = _write(staging, batches, card["num_rows"])
        meta = {
            "dataset": redact(uri),
            "fingerprint": card["fingerprint"],
            "model_sha256": model_sha,
            "rows": rows,
            "engine": engine,
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.replace(staging, folder)
        except OSError:
            if not (folder / "meta.json").is_file():  # else a concurrent run cached it
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _open(folder, reused=False)


def _write(folder: Path, batches: Iterator[tuple[np.ndarray, np.ndarray]], total: int) -> int:
    """Stream (embeddings, logits) batches into memory-mapped .npy files; the row count."""
    emb = logits = None
    start = 0
    for e, z in batches:
        if emb is None:
            emb = np.lib.format.open_memmap(
                folder / "embeddings.npy", "w+", np.float32, (total, e.shape[1])
            )
            logits = np.lib.format.open_memmap(
                folder / "logits.npy", "w+", np.float32, (total, z.shape[1])
            )
        if start + len(e) > total:
            raise ValueError(f"more rows than the card's {total}")
        emb[start : start + len(e)] = e
        logits[start : start + len(z)] = z
        start += len(e)
    if start != total or emb is None:
        raise ValueError(f"embedded {start} rows, the card says {total}")
    emb.flush()
    logits.flush()
    return start


def _open(folder: Path, reused: bool) -> Embedded:
    return Embedded(
        embeddings=np.load(folder / "embeddings.npy", mmap_mode="r"),
        logits=np.load(folder / "logits.npy", mmap_mode="r"),
        folder=folder,
        reused=reused,
    )


def _shard_paths(uri: str, card: dict) -> tuple[object, list[str]]:
    fs, root = filesystem_for(uri)
    return fs, [f"{root.rstrip('/')}/{shard}" for shard in card["shards"]]


def _ray_batches(uri, card, spec, shape, actors, batch_size, use_gpu):
    import ray.data

    # Pool order is row identity: the cache and the selection index rows by position.
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    # The command prints its own progress; Ray Data's per-operator log is for --verbose debugging.
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    fs, paths = _shard_paths(uri, card)
    # At least one block per shard, so the actors can share a pool of few shards (Ray Data
    # warned that a 10-shard pool reached the actor pool as one input; benchmarks/mining.py).
    ds = ray.data.read_parquet(
        paths, filesystem=fs, partitioning=None, override_num_blocks=len(paths)
    ).select_columns(["image"])
    ds = ds.map_batches(
        Embedder,
        fn_constructor_kwargs={
            "spec": spec,
            "image_size": shape[0],
            "channels": shape[2],
            "device": "cuda" if use_gpu else "cpu",
            "threads": 1,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if use_gpu else 0,
        num_cpus=0 if use_gpu else 1,
    )
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        yield batch["embedding"], batch["logits"]


def _local_batches(uri, card, spec, shape, batch_size):
    embedder = Embedder(spec, shape[0], shape[2])
    fs, paths = _shard_paths(uri, card)
    for path in paths:
        with fs.open_input_file(path) as f:
            for record in pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=["image"]):
                out = embedder({"image": record.column("image")})
                yield out["embedding"], out["logits"]
