"""Pool embedding throughput of `hmtl mine`'s Ray Data engine, and the driver's memory.

1. Throughput: the same pool (the shipped synthetic smoke pool: 48 px grey faces) embedded by
   the same primitive (a freshly initialised small_cnn of `--width`; mining needs only its
   shapes and weights) with `hmtl.orchestration.mining.embed.embedded`: `engine="local"` (one
   process reading the shards and running the model, one torch thread like an actor) and
   Ray Data with 1 and 2 CPU actors. Prints images/s and the ratio to the local loop.
2. Memory: the driver's peak resident memory while Ray Data embeds a small and a 10x larger
   pool (the larger pool repeats the small one's shards, so it costs no rendering). RssAnon
   (heap) and RssFile (mostly the memory-mapped output, N x D floats, which is the result,
   not buffering) are sampled every 50 ms. Streaming means RssAnon stays flat.

Ray starts locally with `--cpus` logical CPUs: on a 2-core machine, 2 actors of 1 CPU plus
Ray Data's read tasks need more than 2 logical CPUs to be scheduled at all.

    python benchmarks/mining.py [--pool 20000] [--large 200000] [--width 32] [--cpus 3]
        [--memory-only] [--actors 2]

`--memory-only` skips the throughput arms (the memory question needs neither them nor
several actors: `--memory-only --actors 1` is the cheap run on a shared machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import torch

from hmtl.orchestration.mining.embed import embedded
from hmtl.trainables.checkpoint import rng_state, save_checkpoint
from hmtl.trainables.config import build_config
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.data.prepared import EXPRESSIONS
from hmtl.trainables.data.synthetic_pool import ensure_synthetic_pool
from hmtl.trainables.mining.primitive import primitive_spec
from hmtl.trainables.models import build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.tasks import build_tasks


def primitive(folder: Path, width: int) -> dict:
    """A freshly initialised small_cnn checkpoint with an expression head, and its spec."""
    cfg = build_config({"data": {"image_size": 48, "channels": 1}, "model": {"width": width}})
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", 1, width)
    info = DatasetInfo(EXPRESSIONS, (1,) * 8, (), "bench", "bench")
    model = FaceModel(backbone, build_tasks(cfg, info, backbone.feature_dim))
    state = {"model": model.state_dict(), "optimizer": {}, "scheduler": {}, "epoch": 1}
    save_checkpoint(folder, {**state, "rng": rng_state(), "config": cfg.model_dump()})
    return primitive_spec(str(folder))


def repeated(pool: Path, times: int, root: Path) -> tuple[str, dict]:
    """A pool `times` as large as `pool`: its shards linked `times` over, a card to match."""
    card = json.loads((pool / "card.json").read_text())
    folder = root / f"pool-x{times}"
    folder.mkdir(parents=True)
    shards = []
    for r in range(times):
        for shard in card["shards"]:
            name = f"r{r:03d}-{shard}"
            os.link(pool / shard, folder / name)
            shards.append(name)
    digest = hashlib.sha256(f"{card['fingerprint']}x{times}".encode()).hexdigest()
    big = {**card, "shards": shards, "num_rows": card["num_rows"] * times, "fingerprint": digest}
    (folder / "card.json").write_text(json.dumps(big))
    return str(folder), big


class PeakMemory:
    """Samples this process's RssAnon and RssFile (MiB) every 50 ms; peaks above the start."""

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = self.read()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()

    @staticmethod
    def read() -> tuple[float, float]:
        fields = dict(
            line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
        )
        return tuple(int(fields[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile"))

    def sample(self) -> None:
        while not self.done.wait(0.05):
            now = self.read()
            self.peak = tuple(max(a, b) for a, b in zip(self.peak, now, strict=True))


def timed(uri, card, spec, engine, actors, root: Path, batch: int) -> tuple[float, PeakMemory]:
    """Embed the pool into a fresh cache (nothing reused); seconds and the memory sampler."""
    cache = Path(tempfile.mkdtemp(dir=root))
    with PeakMemory() as memory:
        start = time.perf_counter()
        result = embedded(uri, card, spec, "bench" * 8, cache, engine, actors, batch)
        seconds = time.perf_counter() - start
    assert not result.reused and len(result.embeddings) == card["num_rows"]
    return seconds, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--cpus", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--memory-only", action="store_true", help="skip the throughput arms")
    parser.add_argument("--actors", type=int, default=2, help="Ray Data actors, memory arms")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the local loop gets what one actor gets
    from hmtl.orchestration.platform.cluster import init_ray

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = primitive(root / "ckpt", args.width)
        start = time.perf_counter()
        pool = ensure_synthetic_pool(str(root / "pools"), args.pool, 48, 1)
        print(f"pool: {args.pool} faces rendered in {time.perf_counter() - start:.0f} s")
        card = json.loads((Path(pool) / "card.json").read_text())
        init_ray(None, num_cpus=args.cpus)
        rates = {}
        throughput_arms = () if args.memory_only else (("local", 1), ("ray", 1), ("ray", 2))
        for engine, actors in throughput_arms:
            seconds, _ = timed(str(pool), card, spec, engine, actors, root, args.batch)
            label = "local loop" if engine == "local" else f"ray data, {actors} actor(s)"
            rates[label] = args.pool / seconds
            ratio = rates[label] / rates["local loop"]
            print(f"{label:<22} {seconds:7.1f} s  {rates[label]:8.0f} images/s  x{ratio:.2f}")
        print(f"driver memory, ray data with {args.actors} actor(s) (MiB; width {args.width}):")
        for n in (args.pool, args.large):
            uri, big = (
                repeated(Path(pool), n // args.pool, root) if n != args.pool else (str(pool), card)
            )
            seconds, memory = timed(uri, big, spec, "ray", args.actors, root, args.batch)
            growth = [p - s for p, s in zip(memory.peak, memory.start, strict=True)]
            print(
                f"  {big['num_rows']:>8} faces  {seconds:7.1f} s  peak RssAnon "
                f"{memory.peak[0]:7.0f} (+{growth[0]:.0f})  peak RssFile {memory.peak[1]:7.0f} "
                f"(+{growth[1]:.0f})"
            )
    print(f"load average at the end: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
