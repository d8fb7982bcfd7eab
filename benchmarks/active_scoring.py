"""Pool scoring of the nine query strategies: hmtl's against DISTIL's per-batch DataLoader loop.

For each strategy, both arms select a budget (`--budget`, a fraction of the pool) from the same
pool of synthetic 48 px grey faces with the same freshly initialised model (small_cnn width 16
with the expression head, as `active_quickstart` trains), on one torch thread (`--threads`):

- hmtl: `hmtl.trainables.active`'s registered strategy over a `PoolContext` (the images resident on
  the scoring device, batches are index lookups, set-based strategies work in chunks);
- DISTIL: `distil_style.py`, a re-implementation of DISTIL's strategies (a Dataset returning
  one eval-transformed image per item, a DataLoader, dense gradient embeddings and kernels).

A labelled set of a tenth of the pool's size sits beside the pool (ActiveFER's first cycle:
10% labelled), which CoreSet and GLISTER read. Each (strategy, arm, pool size) cell reports its
seconds (the process's CPU time on CPU, steadier than wall time on a shared machine; wall time
on CUDA), its picks and its peak memory. The set-based cells (CoreSet, BADGE, GLISTER) run in
a fresh subprocess each, so that their peak is their own: the growth of the resident set
(VmHWM after the selection minus VmRSS before it, the high-water mark reset after the pool and
model are loaded) and, on CUDA, torch's peak allocation over the baseline; the others run in
this process (a process start costs seconds on a loaded machine).

Printed: a throughput table (images/s = pool rows / seconds of the whole selection, pool
scoring included; the ratio is DISTIL's seconds over hmtl's), whether both arms chose
`budget` distinct rows, and for the four strategies that are the same algorithm in both arms
(random with the same seed, entropy, margin, least confidence) whether they chose the same
rows; then the peak memory of CoreSet, BADGE and GLISTER at `--memory-pools`. DISTIL's cells
refuse (and print what they would need) above `--cap-gib` in one allocation.

Some rows are scaled down so the default run takes about 9 minutes of CPU (22 minutes of wall
time on the 2-core VM under a load average of 5-33; BENCHMARKS.md):
BALD (DISTIL runs T=10 full forward passes), DeepFool (DISTIL goes image by image) and GLISTER
(DISTIL's N x N kernel costs N^2 x K(D+1) operations) run on `--bald-pool`, `--deepfool-pool`
and `--glister-pool` rows, both arms alike; DISTIL's GLISTER is not run above
`--glister-pool` (its time, scaled by N^2 from the measured cell, is printed instead).

    python benchmarks/active_scoring.py [--quick] [--pool 20000] [--budget 0.05]
        [--strategies NAME ...] [--device cpu|cuda] [--threads 1] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hmtl.trainables.active.base import PoolContext
from hmtl.trainables.active.registry import MODULES, get_strategy
from hmtl.trainables.config import build_config

SET_BASED = ("coreset", "badge", "glister")
SAME_ALGORITHM = ("random", "entropy", "margin", "least_confidence")
SIZE = 48
NAMES = {"random_choice": "random"}
STRATEGIES = tuple(NAMES.get(m, m) for m in MODULES)


def labelled_rows(pool: int) -> int:
    return max(pool // 10, 1)


def render(cache: Path, rows: int) -> Path:
    """`rows` synthetic faces (uint8 N x 1 x 48 x 48) and expressions, rendered once."""
    from hmtl.trainables.data.synthetic import render_faces

    path = cache / "faces.npz"
    if path.exists() and len(np.load(path, mmap_mode="r")["expression"]) >= rows:
        return path
    began = time.perf_counter()
    parts = [
        render_faces(min(2048, rows - s), size=SIZE, channels=1, seed=0, start=s)
        for s in range(0, rows, 2048)
    ]
    images = np.concatenate([p.images for p in parts]).transpose(0, 3, 1, 2)
    labels = np.concatenate([p.expression for p in parts])
    np.savez(path, images=np.ascontiguousarray(images), expression=labels)
    print(f"rendered {rows} faces in {time.perf_counter() - began:.0f} s", flush=True)
    return path


def make_model(device: torch.device):
    """A freshly initialised small_cnn (width 16) with the expression head, seed 0."""
    from hmtl.trainables.data.dataset import DatasetInfo
    from hmtl.trainables.data.prepared import EXPRESSIONS
    from hmtl.trainables.models import build_backbone
    from hmtl.trainables.network import FaceModel
    from hmtl.trainables.tasks import build_tasks

    cfg = build_config({"data": {"image_size": SIZE, "channels": 1}, "model": {"width": 16}})
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", 1, 16)
    info = DatasetInfo(EXPRESSIONS, (1,) * 8, (), "bench", "bench")
    return FaceModel(backbone, build_tasks(cfg, info, backbone.feature_dim)).to(device).eval()


def status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak() -> int:
    """Reset the resident high-water mark (Linux clear_refs 5); the baseline RSS in KiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return status_kib("VmRSS")
    except OSError:  # no reset: the peak so far is the baseline, a smaller growth is hidden
        return status_kib("VmHWM")


def measure(spec: dict) -> dict:
    """Run one cell (strategy, arm, pool); its seconds, picks and peak memory growth."""
    import distil_style as distil

    from hmtl.trainables.active.config import StrategySettings
    from hmtl.trainables.data.faces import FaceData

    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    n, budget, m = spec["pool"], spec["budget"], labelled_rows(spec["pool"])
    with np.load(spec["faces"]) as faces:
        images = torch.from_numpy(faces["images"][: m + n].copy())
        labels = torch.from_numpy(faces["expression"][: m + n].copy())
    model = make_model(device)
    with torch.no_grad():  # the first pass allocates torch's workspaces: not the strategy's
        model.backbone(torch.zeros(2, 1, SIZE, SIZE, device=device))
    if spec["arm"] == "hmtl":
        ctx = PoolContext(
            model=model,
            data=FaceData(images.to(device), {"expression": labels.to(device)}),
            pool=torch.arange(m, m + n),
            labelled=torch.arange(0, m),
            image_size=SIZE,
            batch_size=spec["batch"],
            settings=StrategySettings(),
            generator=np.random.default_rng(spec["seed"]),
            seed=spec["seed"],
        )
        run = lambda: get_strategy(spec["strategy"]).select(ctx, budget).tolist()  # noqa: E731
    else:
        args = distil.Args(device, spec["batch"], spec["seed"], int(spec["cap_gib"] * 2**30))
        net = distil.Net(model).to(device)
        pool = distil.EvalImages(images[m:], SIZE)
        labelled = distil.EvalImages(images[:m], SIZE, labels[:m])
        run = lambda: distil.STRATEGIES[spec["strategy"]](net, pool, labelled, budget, args)  # noqa: E731
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        gpu_base = torch.cuda.memory_allocated()
    base = reset_peak()
    began, cpu_began = time.perf_counter(), time.process_time()
    try:
        picked = [int(i) for i in run()]
    except distil.TooLarge as err:
        return {"skipped": str(err)}
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - began
    out = {
        # This process's CPU time on CPU: the other work sharing the machine stretches wall
        # time far more than it does the work done (one torch thread, no loader workers).
        "seconds": wall if cuda else time.process_time() - cpu_began,
        "wall": wall,
        "peak_mib": (status_kib("VmHWM") - base) / 1024,
        "picked": picked,
    }
    if cuda:
        out["gpu_peak_mib"] = (torch.cuda.max_memory_allocated() - gpu_base) / 2**20
    return out


def cell(
    strategy: str,
    arm: str,
    pool: int,
    args: argparse.Namespace,
    faces: Path,
    fresh: bool,
    budget: int | None = None,
) -> dict:
    """One cell, in a fresh subprocess when its memory is wanted (else here: a process
    start costs seconds on a loaded machine); its answer, or the error it ended with."""
    spec = {
        "strategy": strategy,
        "arm": arm,
        "pool": pool,
        "budget": budget or budget_of(pool, args),
        "faces": str(faces),
        "device": args.device,
        "threads": args.threads,
        "batch": args.batch,
        "seed": args.seed,
        "cap_gib": args.cap_gib,
    }
    if not fresh:
        return measure(spec)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {done.returncode}: {tail}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def budget_of(pool: int, args: argparse.Namespace) -> int:
    return max(1, round(args.budget * pool))


def table_pool(strategy: str, args: argparse.Namespace) -> int:
    scaled = {"bald": args.bald_pool, "deepfool": args.deepfool_pool, "glister": args.glister_pool}
    return min(args.pool, scaled.get(strategy, args.pool))


def distinct(result: dict, budget: int) -> bool:
    picked = result.get("picked", [])
    return len(picked) == budget and len(set(picked)) == budget


def timing(r: dict, n: int) -> str:
    """Seconds, (wall seconds) and images/s of one cell, 24 characters."""
    if "seconds" not in r:
        return f"{'skipped' if 'skipped' in r else 'failed':>24}"
    rate = f"{n / r['seconds']:8.0f}" if r["seconds"] > 0.05 else f"{'-':>8}"  # random: none
    return f"{r['seconds']:8.1f}{'(' + format(r['wall'], '.1f') + ')':>8}{rate}"


def throughput(args: argparse.Namespace, results: dict, faces: Path) -> None:
    """The side-by-side table: each strategy, both arms, images/s and the ratio."""
    kind = "wall" if args.device == "cuda" else "CPU (process time)"
    print(
        f"\nPool scoring on {args.device}, {args.threads} thread(s), batch {args.batch}: {kind} "
        "seconds of the whole selection (pool scoring included), images/s = pool / seconds; "
        "wall seconds in brackets; ratio = DISTIL's seconds / hmtl's"
    )
    print(
        f"{'strategy':<17}{'pool':>7}{'budget':>7} | {'hmtl s':>8}{'(wall)':>8}{'img/s':>8} | "
        f"{'DISTIL s':>8}{'(wall)':>8}{'img/s':>8} | {'ratio':>6} | sizes | same picks"
    )
    for name in args.strategies:
        n = table_pool(name, args)
        budget = budget_of(n, args)
        for arm in ("hmtl", "distil"):
            results[name, arm, n] = cell(name, arm, n, args, faces, name in SET_BASED)
        ours, theirs = results[name, "hmtl", n], results[name, "distil", n]
        rate = [timing(r, n) for r in (ours, theirs)]
        timed = "seconds" in ours and "seconds" in theirs and ours["seconds"] > 0.05
        ratio = f"{theirs['seconds'] / ours['seconds']:5.1f}x" if timed else f"{'-':>6}"
        sizes = "ok" if distinct(ours, budget) and distinct(theirs, budget) else "WRONG"
        same = "-"
        if "picked" in ours and "picked" in theirs:
            shared = len(set(ours["picked"]) & set(theirs["picked"]))
            exact = "identical" if ours["picked"] == theirs["picked"] else f"{shared}/{budget}"
            same = exact if name in SAME_ALGORITHM else f"({shared}/{budget} shared)"
        scaled = "  (scaled down)" if n < args.pool else ""
        print(
            f"{name:<17}{n:>7}{budget:>7} | {rate[0]} | {rate[1]} | {ratio} | {sizes:<5} | "
            f"{same}{scaled}",
            flush=True,
        )
        for arm, r in (("hmtl", ours), ("DISTIL", theirs)):
            for key in ("error", "skipped"):
                if key in r:
                    print(f"    {arm}: {r[key]}")


def memory(args: argparse.Namespace, results: dict, faces: Path) -> None:
    """Peak memory of the set-based strategies at each of `--memory-pools`.

    Cells the throughput table ran are reused; the others pick `--memory-budget` of the pool:
    every large allocation is sized by the pool before the first pick, so fewer picks leave
    the peak as it is and save DISTIL's per-pick loops (minutes for BADGE at 30k)."""
    gpu = args.device == "cuda"
    print(
        "\nPeak memory growth during the selection (fresh process per cell; RSS = VmHWM - "
        "VmRSS before" + ("; GPU = torch peak allocation" if gpu else "") + "), and seconds"
    )
    head = f"{'strategy':<10}{'pool':>7}{'picks':>6} | {'hmtl MiB':>9}{'s':>7}"
    print(head + (f"{'GPU MiB':>9}" if gpu else "") + f" | {'DISTIL MiB':>10}{'s':>7}")
    for name in [s for s in args.strategies if s in SET_BASED]:
        for n in args.memory_pools:
            picks = max(1, round(args.memory_budget * n))
            for arm in ("hmtl", "distil"):
                key = (name, arm, n)
                if key not in results:
                    results[key] = skip_glister(name, arm, n, args, results) or cell(
                        name, arm, n, args, faces, True, picks
                    )
            picks = len(results[name, "hmtl", n].get("picked", []))
            line = f"{name:<10}{n:>7}{picks:>6} |"
            for arm in ("hmtl", "distil"):
                key = (name, arm, n)
                r = results[key]
                if "peak_mib" in r:
                    line += f" {r['peak_mib']:9.0f}{r['seconds']:7.1f}"
                    line += f"{r['gpu_peak_mib']:9.0f}" if gpu else ""
                    line += " |" if arm == "hmtl" else ""
                else:
                    line += f"  {r.get('skipped') or r.get('error')}"
            print(line, flush=True)


def skip_glister(name: str, arm: str, n: int, args: argparse.Namespace, results: dict):
    """DISTIL's GLISTER above `--glister-pool`: what it would need instead of running it.

    Its N x N float32 kernel exists whole, and every pick copies `sim_mat[remaining]`, about
    as large again; the kernel's blocks cost N^2 x K(D+1) operations, so the time is scaled by
    N^2 from the measured cell."""
    if (name, arm) != ("glister", "distil") or n <= args.glister_pool:
        return None
    kernel = n * n * 4 / 2**30
    why = "over --cap-gib in one allocation" if kernel > args.cap_gib else "too long to run"
    text = f"not run ({why}): would need {kernel:.2f} GiB kernel + as much again per pick"
    measured = results.get(("glister", "distil", table_pool("glister", args)), {})
    if "seconds" in measured:
        scale = (n / table_pool("glister", args)) ** 2
        text += f", ~{measured['seconds'] * scale / 60:.0f} min at N^2 from the measured cell"
    return {"skipped": text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=20_000)
    parser.add_argument("--budget", type=float, default=0.05, help="fraction of the pool")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=512, help="both arms' batch size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-pools", type=int, nargs="*", default=[20_000, 30_000])
    parser.add_argument("--memory-budget", type=float, default=0.01, help="memory-only cells")
    parser.add_argument("--bald-pool", type=int, default=2_000)
    parser.add_argument("--deepfool-pool", type=int, default=200)
    parser.add_argument("--glister-pool", type=int, default=2_000)
    parser.add_argument("--cap-gib", type=float, default=3.0, help="DISTIL's largest allocation")
    parser.add_argument("--quick", action="store_true", help="a 2,000-row pool (development)")
    parser.add_argument("--cache", type=Path, help="keep the rendered faces here between runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return
    if not (0 < args.budget < 1 and 0 < args.memory_budget < 1) or args.pool < 20:
        parser.error("--budget and --memory-budget are fractions in (0, 1); --pool >= 20")
    if args.quick:
        args.pool, args.memory_pools = 2_000, [2_000, 3_000]
        args.bald_pool, args.deepfool_pool, args.glister_pool = 500, 50, 500
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here; every GPU row skipped")
        return
    print(f"load average before: {Path('/proc/loadavg').read_text().split()[:3]}")
    began = time.perf_counter()
    results: dict = {}
    rows = max([args.pool, *args.memory_pools])
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.cache or Path(scratch)
        cache.mkdir(parents=True, exist_ok=True)
        faces = render(cache, rows + labelled_rows(rows))
        throughput(args, results, faces)
        if args.memory_pools:
            memory(args, results, faces)
    print(
        f"\n{time.perf_counter() - began:.0f} s in all; load average after: "
        f"{Path('/proc/loadavg').read_text().split()[:3]}"
    )


if __name__ == "__main__":
    main()
