"""The HMTL training step at speed: images/s, step time, peak memory, FLOPs and MFU.

Each row runs trainables' own step (`train.train_step` inside `train.train_epoch`, set up by
`setup.py` as `train()` sets it up) on random uint8 faces resident on the device: augmentation
at the `strong` level on whole batches there, bf16 autocast and channels-last by default on
CUDA (fp32, NCHW on the CPU), metrics summed on the device with no host sync until the
epoch ends. Rows: ResNet-18 at 112 px and ResNet-50 at 224 px (3 channels, the ImageNet
stem), expression alone and with all four auxiliaries (weight 1 each, `aux_budget` 1), and
on CUDA the ResNet-18 row with all auxiliaries again under `runtime.compile`.

Per row: images/s and ms per step over `--steps` timed steps (after `--warmup` steps; the
clock stops after a device synchronise), the peak memory torch allocated, model FLOPs per
step (torch.utils.flop_counter over one step: forward and backward of every task), the
achieved TFLOP/s and MFU = achieved / the card's dense bf16 peak (gpu_report.py's table; no
MFU on a CPU). On CUDA also: host syncs per step (torch.cuda.set_sync_debug_mode counts
them; 0 is the target) and the share of the step the GPU was busy (torch.profiler's kernel
time over wall time: well under 1 means the host, not the GPU, sets the pace).

    python benchmarks/gpu_train_step.py --out DIR [--device cuda|cpu] [--steps 30]
        [--warmup 5] [--no-compile]

Writes DIR/train_step.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from hmtl.trainables.config import build_config
from hmtl.trainables.data.dataset import DatasetInfo, Splits
from hmtl.trainables.data.faces import FaceData
from hmtl.trainables.data.prepared import EXPRESSIONS
from hmtl.trainables.runtime.precision import use_bf16, use_channels_last
from hmtl.trainables.session import LocalSession
from hmtl.trainables.setup import Run, set_up_data, set_up_model, set_up_optimiser
from hmtl.trainables.train import plan_epoch, set_up_runtime, train_epoch, train_step

AUX = ("jigsaw", "rotation", "inpainting", "contrastive")
# (backbone, image size, batch on CUDA, batch on the CPU: the CPU half checks the rows run)
SHAPES = (("resnet18", 112, 512, 2), ("resnet50", 224, 128, 2))


def build_run(device: str, backbone: str, size: int, batch: int, steps: int, aux: bool, comp: bool):
    """A `Run` exactly as `train()` builds one, over random faces resident on the device."""
    cfg = build_config(
        {
            "data": {"image_size": size, "channels": 3, "batch_size": batch},
            "model": {"backbone": backbone},
            "tasks": {"loss_weights": dict.fromkeys(AUX, 1.0) if aux else {}},
            "augmentation": {"level": "strong"},
            "schedule": {"epochs": 2, "warmup_epochs": 0.0},
            "runtime": {"device": device, "compile": comp},
        }
    )
    session = LocalSession(tempfile.mkdtemp(prefix="hmtl-bench-"), log=None)
    device_, autocast = set_up_runtime(cfg, session)
    gen = torch.Generator().manual_seed(0)
    rows = batch * steps
    images = torch.randint(0, 256, (rows, 3, size, size), dtype=torch.uint8, generator=gen)
    train = FaceData(images, {"expression": torch.randint(0, 8, (rows,), generator=gen)})
    held_out = FaceData(images[:batch], {"expression": train.labels["expression"][:batch]})
    info = DatasetInfo(EXPRESSIONS, (rows // 8,) * 8, (), "bench", "bench")
    data = set_up_data(cfg, session, device_, Splits(train, held_out, held_out, info))
    torch.manual_seed(0)
    net = set_up_model(cfg, session, info, device_, None, resuming=False)
    opt = set_up_optimiser(cfg, session, net.model, len(data.stream))
    return Run(cfg, session, device_, autocast, data, net, opt, time.perf_counter())


def synchronize(run: Run) -> None:
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)


def step_flops(run: Run, rows, jitter) -> int:
    """Model FLOPs of one training step (forward and backward of every task)."""
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(run, rows, 0, jitter)
    return counter.get_total_flops()


def syncs_per_step(run: Run, rows, jitter, steps: int = 2) -> float:
    """Host syncs the step makes, as torch's sync debug mode reports them (CUDA only)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for step in range(steps):
                train_step(run, rows, step, jitter)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    synchronize(run)
    return sum("synchronizing" in str(w.message) for w in caught) / steps


def busy_share(run: Run, rows, jitter, steps: int = 3) -> float | None:
    """GPU kernel time over wall time across `steps` steps (torch.profiler); None if the
    profiler cannot read the device."""
    # Lazy: the profiler is only wanted on CUDA rows.
    from torch.profiler import ProfilerActivity, profile

    try:
        synchronize(run)
        began = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for step in range(steps):
                train_step(run, rows, step, jitter)
            synchronize(run)
        wall = time.perf_counter() - began
        kernels = sum(
            e.self_device_time_total for e in prof.key_averages() if e.device_type.name == "CUDA"
        )
        return kernels / 1e6 / wall if wall > 0 else None
    except Exception as err:  # the profiler is a diagnostic: its failure is not the row's
        print(f"  profiler: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
        return None


def measure(device: str, backbone: str, size: int, batch: int, aux: bool, comp: bool, args):
    """One row: the step's speed, memory and FLOPs (a compiled row's FLOPs are its eager
    twin's, `args.flops`: the counter's dispatch mode and the compiler do not mix)."""
    run = build_run(device, backbone, size, batch, args.steps, aux, comp)
    cuda = run.device.type == "cuda"
    rows, jitter = plan_epoch(run, 1)
    began = time.perf_counter()
    for step in range(args.warmup):  # cuDNN's algorithm search, the allocator, compiling
        train_step(run, rows, step % run.opt.steps_per_epoch, jitter)
    synchronize(run)
    warm_s = time.perf_counter() - began
    if cuda:
        torch.cuda.reset_peak_memory_stats(run.device)
    sums, elapsed, images = train_epoch(run, rows, jitter)  # the timed steps, as train() runs them
    steps = run.opt.steps_per_epoch
    row = {
        "backbone": backbone,
        "image_size": size,
        "batch": batch,
        "auxiliaries": list(AUX) if aux else [],
        "compile": comp,
        "precision": "bf16" if use_bf16(run.cfg.runtime, run.device) else "fp32",
        "channels_last": use_channels_last(run.cfg.runtime, run.device),
        "steps": steps,
        "warmup_s": round(warm_s, 2),
        "step_ms": 1000 * elapsed / steps,
        "images_per_s": batch * steps / elapsed,
        "backbone_images_per_step": images / steps,
        "loss": float(sums["loss"]) / steps,
        "peak_mib": torch.cuda.max_memory_allocated(run.device) / 2**20 if cuda else None,
    }
    flops = getattr(args, "flops", None) if comp else step_flops(run, rows, jitter)
    row["flops_per_step"] = flops
    row["tflops"] = flops / (row["step_ms"] / 1000) / 1e12 if flops else None
    if cuda:
        row["host_syncs_per_step"] = syncs_per_step(run, rows, jitter)
        row["gpu_busy_share"] = busy_share(run, rows, jitter)
    fell_back = getattr(run.net.model.train_features, "fell_back", None)
    if fell_back:
        row["compile_fell_back"] = fell_back
    print(
        f"  {backbone} {size}px batch {batch} {'all aux' if aux else 'expression'}"
        f"{' compiled' if comp else ''}: {row['images_per_s']:.4g} img/s, "
        f"{row['step_ms']:.1f} ms/step, {row['tflops'] or 0:.3g} TFLOP/s achieved",
        flush=True,
    )
    shutil.rmtree(run.session.out_dir, ignore_errors=True)  # the session's unused folder
    del run
    if cuda:
        torch.cuda.empty_cache()
    return row


def safely(device: str, backbone: str, size: int, batch: int, aux: bool, comp: bool, args):
    """`measure`, or the row with the error it ended in: one failing row (out of memory, a
    compiler crash) must not cost the others on a machine lent for minutes."""
    try:
        return measure(device, backbone, size, batch, aux, comp, args)
    except Exception as err:
        line = (str(err).strip().splitlines() or ["no message"])[0][:300]
        print(f"  {backbone} {size}px batch {batch} aux {aux} compile {comp}: FAILED: {line}")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {
            "backbone": backbone,
            "image_size": size,
            "batch": batch,
            "auxiliaries": list(AUX) if aux else [],
            "compile": comp,
            "error": f"{type(err).__name__}: {line}",
        }


def compile_fallback_check() -> dict:
    """torch.compile's own failure path through `runtime.compile`'s wrapper: a backend that
    raises must leave one note and the eager result (the unit tests use a stand-in
    compiler, to stay fast)."""
    # Lazy: only this check needs them.
    from hmtl.trainables.models import build_backbone
    from hmtl.trainables.runtime.compile import Compiled

    def no_compiler(graph, example_inputs):
        raise RuntimeError("g++: command not found")

    torch.manual_seed(0)
    model = build_backbone("small_cnn", 1, 8).eval()
    x = torch.rand(4, 1, 48, 48)
    notes: list[str] = []
    began = time.perf_counter()
    wrapped = Compiled(model.forward_features, "the backbone", notes.append, backend=no_compiler)
    with torch.no_grad():
        same = torch.equal(wrapped(x), model.forward_features(x))
    return {
        "one_note": len(notes) == 1,
        "note": notes[0] if notes else None,
        "eager_result": same,
        "ok": len(notes) == 1 and same and "g++: command not found" in notes[0],
        "seconds": round(time.perf_counter() - began, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (30; CPU 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (5; CPU 0)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled row")
    args = parser.parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device == "cuda"
    # The CPU half checks that every row runs; its figures are not the CPU's best.
    args.steps = args.steps or (30 if cuda else 1)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 0)
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"training step on {name}, torch {torch.__version__}, {args.steps} timed steps")
    rows = []
    for backbone, size, gpu_batch, cpu_batch in SHAPES:
        for aux in (False, True):
            batch = gpu_batch if cuda else cpu_batch
            rows.append(safely(device, backbone, size, batch, aux, False, args))
    if cuda and not args.no_compile:
        backbone, size, batch, _ = SHAPES[0]
        args.flops = rows[1].get("flops_per_step")  # the same step, eager
        rows.append(safely(device, backbone, size, batch, True, True, args))
    result = {"device": name, "torch": torch.__version__, "rows": rows}
    result["compile_fallback"] = compile_fallback_check()
    print(
        f"  torch.compile fallback check: {'ok' if result['compile_fallback']['ok'] else 'FAILED'}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_step.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
