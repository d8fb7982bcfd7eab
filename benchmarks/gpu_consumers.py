"""The other GPU consumers against their own CPU rows: active-learning pool scoring and the
mining embedder's model pass, each on the CPU and (where there is one) on CUDA, same machine.

- Pool scoring: `hmtl.trainables.active`'s registered strategies over a `PoolContext`, as an
  `active` stage runs them (`active_quickstart`'s model: small_cnn width 16 with the expression
  head, freshly initialised, 48 px grey faces resident on the scoring device); `entropy`
  (one scoring pass over the pool) and `coreset` (the pass plus k-centre greedy on the
  features). images/s = pool rows / seconds of the whole selection.
- Mining: `trainables.mining.primitive`'s `Primitive.embed`, what each Ray Data actor of
  `hmtl mine` runs per batch (uint8 NHWC in, unit-norm features and logits out as numpy), over
  the pool in batches; a freshly initialised small_cnn width 32, 48 px grey (benchmarks/
  mining.py's primitive). Ray itself is not involved: this is the model pass an actor makes.

Each CPU row uses torch's default threads on this machine (printed); the ratio is the CUDA
row's images/s over the CPU row's. A second, larger batch is measured on CUDA for both
(the GPU wants larger batches than the CPU's defaults, which are kept for the CPU rows).

    python benchmarks/gpu_consumers.py --out DIR [--pool 20000] [--device cuda|cpu]

Writes DIR/consumers.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hmtl.trainables.active.base import PoolContext
from hmtl.trainables.active.config import StrategySettings
from hmtl.trainables.active.registry import get_strategy
from hmtl.trainables.config import build_config
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.data.faces import FaceData
from hmtl.trainables.data.prepared import EXPRESSIONS
from hmtl.trainables.mining.primitive import HEAD, build_primitive
from hmtl.trainables.models import build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.tasks import build_tasks

SIZE = 48
INFO = DatasetInfo(EXPRESSIONS, (1,) * 8, (), "bench", "bench")


def face_model(width: int) -> tuple[FaceModel, dict]:
    """A freshly initialised small_cnn of `width` with the expression head (seed 0), and
    its config tree."""
    tree = {"data": {"image_size": SIZE, "channels": 1}, "model": {"width": width}}
    cfg = build_config(tree)
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", 1, width)
    return FaceModel(backbone, build_tasks(cfg, INFO, backbone.feature_dim)), cfg.model_dump()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pool_scoring(device: torch.device, strategy: str, pool: int, batch: int) -> dict:
    """One selection of 5% of `pool` rows, a tenth as many labelled rows beside them."""
    model, _ = face_model(16)
    model = model.to(device).eval()
    labelled = max(pool // 10, 1)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (labelled + pool, 1, SIZE, SIZE), dtype=torch.uint8, generator=gen
    )
    labels = torch.randint(0, 8, (labelled + pool,), generator=gen)
    ctx = PoolContext(
        model=model,
        data=FaceData(images.to(device), {"expression": labels.to(device)}),
        pool=torch.arange(labelled, labelled + pool),
        labelled=torch.arange(0, labelled),
        image_size=SIZE,
        batch_size=batch,
        settings=StrategySettings(),
        generator=np.random.default_rng(0),
        seed=0,
    )
    select = get_strategy(strategy).select
    budget = max(1, pool // 20)
    select(ctx, budget)  # warm-up: workspaces, cuDNN's algorithm search
    synchronize(device)
    began = time.perf_counter()
    picked = select(ctx, budget)
    synchronize(device)
    seconds = time.perf_counter() - began
    assert len(set(picked.tolist())) == budget
    return {"seconds": seconds, "images_per_s": pool / seconds}


def mining(device: torch.device, pool: int, batch: int) -> dict:
    """`Primitive.embed` over `pool` faces in batches of `batch` (numpy in and out)."""
    model, config = face_model(32)
    state = model.state_dict()
    spec = {
        "config": config,
        "backbone": {
            k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")
        },
        "head": {"weight": state[f"{HEAD}weight"], "bias": state[f"{HEAD}bias"]},
    }
    primitive = build_primitive(spec, str(device))
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (pool, SIZE, SIZE, 1), dtype=np.uint8)
    primitive.embed(faces[:batch])  # warm-up
    synchronize(device)
    began = time.perf_counter()
    rows = 0
    for start in range(0, pool, batch):
        features, _ = primitive.embed(faces[start : start + batch])
        rows += len(features)
    seconds = time.perf_counter() - began  # embed returns numpy: the copies back are counted
    assert rows == pool and features.shape[1] == primitive.backbone.feature_dim
    return {"seconds": seconds, "images_per_s": pool / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pool", type=int, default=None, help="rows (20000; CPU only: 2000)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None)
    args = parser.parse_args()
    cuda = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
    pool = args.pool or (20_000 if cuda else 2_000)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if cuda else [])
    print(f"pool scoring and mining over {pool} faces, CPU threads {torch.get_num_threads()}")
    rows = []
    # (what, how, CPU batch, extra CUDA batch): the CPU batches are the shipped defaults
    # (active learning's 512, hmtl mine's 256).
    work = [
        ("pool scoring", "entropy", 512, 4096),
        ("pool scoring", "coreset", 512, 4096),
        ("mining embed", "Primitive.embed", 256, 4096),
    ]
    for what, how, batch, big in work:
        for device in devices:
            for size in [batch] + ([big] if device.type == "cuda" else []):
                row = {"what": what, "how": how, "device": device.type, "batch": size, "pool": pool}
                where = f"  {what:<13} {how:<16} {device.type:>4} batch {size:>5}:"
                try:
                    if what == "mining embed":
                        row.update(mining(device, pool, size))
                    else:
                        row.update(pool_scoring(device, how, pool, size))
                except Exception as err:  # one failing row must not cost the others
                    line = (str(err).strip().splitlines() or ["no message"])[0][:300]
                    row["error"] = f"{type(err).__name__}: {line}"
                    print(f"{where} FAILED: {row['error']}", flush=True)
                else:
                    rate = f"{row['images_per_s']:9.0f} img/s ({row['seconds']:.2f} s)"
                    print(f"{where} {rate}", flush=True)
                rows.append(row)
    result = {
        "cpu_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if cuda else "CPU",
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "consumers.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
