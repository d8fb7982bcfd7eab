"""Embedding prepared datasets with a primitive model, on Ray Data, cached on disk.

The pool is read as a stream of its Parquet shards (`ray.data.read_parquet`, local or S3,
only the `image` column) and embedded by a fixed pool of model actors (`map_batches` with a
callable class whose `__init__` builds the model once per actor; GPU actors where the
cluster has GPUs), in blocks of about `BLOCK_BYTES`. The driver consumes the result block by
block into memory-mapped `.npy` files, so its memory is a block or two whatever the pool's
size.

Cache: `<cache>/<model sha256[:16]>-<dataset fingerprint[:16]>/` holds `embeddings.npy`
(N, D) float32, `logits.npy` (N, C) float32 and `meta.json`, written last (the completion
marker; the folder is staged under a temporary name and renamed). The same checkpoint and
the same dataset reuse it: embedding millions of faces is the dominant cost of mining.

`engine="local"` runs the same model over the same shards in this process (small datasets,
and the baseline a benchmark compares Ray Data with).
"""

from __future__ import annotations

import contextlib
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
import torch

from hmtl.orchestration.platform.progress import counted
from hmtl.trainables.data.storage import filesystem_for, redact
from hmtl.trainables.mining.primitive import build_primitive

ENGINES = ("ray", "local")
BLOCK_BYTES = 8 * 1024 * 1024
"""Ray Data's target block size while mining (its default is 128 MiB). Ray Data 2.60 reads
Parquet in bins of up to 128 MiB of images whatever `override_num_blocks` asks, and a map
task's output block grows to the target size: with the default, a large pool reached the
driver as blocks of ~58k 48 px faces, each only once an actor had embedded all of it, and
the driver's heap grew with the pool up to that cap (BENCHMARKS.md, issue 15). At 8 MiB a
block is about 4,000 48 px faces (a few hundred 112 px RGB ones): the driver holds a few MiB."""


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
    # A bar (on a terminal) advanced block by block, by the block's rows: images/s.
    total, what = card["num_rows"], f"embed {card.get('name', 'dataset')}"
    batches = counted(batches, lambda b: len(b[0]), total, what, " images")
    staging = folder.with_name(f".tmp-{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    try:
        rows = _write(staging, batches, total)
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


@contextlib.contextmanager
def _mining_context() -> Iterator[None]:
    """Ray Data's settings while the pool is embedded, restored afterwards so that other Ray
    Data users in this process are not affected. A Dataset keeps a copy of the context it was
    built under; the progress bars are looked up in the current one while iterating."""
    # Lazy: the local engine runs without Ray.
    import ray.data

    context = ray.data.DataContext.get_current()
    saved = (
        context.execution_options.preserve_order,
        context.enable_progress_bars,
        context.target_max_block_size,
    )
    # Pool order is row identity: the cache and the selection index rows by position.
    context.execution_options.preserve_order = True
    # The command draws its own bar (embedded()); Ray Data's per-operator bars are for
    # debugging.
    context.enable_progress_bars = False
    context.target_max_block_size = BLOCK_BYTES
    try:
        yield
    finally:
        (
            context.execution_options.preserve_order,
            context.enable_progress_bars,
            context.target_max_block_size,
        ) = saved


def _pool_dataset(uri, card, spec, shape, actors, batch_size, use_gpu):
    """The pool's embeddings as a lazy Ray Data dataset: Parquet shards streamed through a
    pool of `actors` model actors. Build it inside `_mining_context()`."""
    # Lazy: the local engine runs without Ray.
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    fs, paths = _shard_paths(uri, card)
    # One block per shard is honoured only by Ray Data's V1 Parquet reader; the default (V2)
    # bin-packs shards into read tasks, and BLOCK_BYTES bounds the blocks instead.
    ds = ray.data.read_parquet(
        paths, filesystem=fs, partitioning=None, override_num_blocks=len(paths)
    ).select_columns(["image"])
    return ds.map_batches(
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


def _ray_batches(uri, card, spec, shape, actors, batch_size, use_gpu):
    with _mining_context():
        ds = _pool_dataset(uri, card, spec, shape, actors, batch_size, use_gpu)
        # One block at a time (plus Ray Data's default prefetch of one): `_write` copies each
        # into the memory map and drops it before the next.
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
