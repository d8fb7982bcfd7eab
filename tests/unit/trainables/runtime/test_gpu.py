"""The runtime on CUDA (skipped without it; benchmarks/gpu_check.sh runs them): a training
step that never waits on the GPU, host rows that train as resident ones, torch.compile
that compiles, bf16 within rounding of fp32."""

import math

import pytest
import torch
from test_precision import all_tasks_model, losses

from hmtl.trainables.config import RuntimeConfig
from hmtl.trainables.runtime.precision import autocast
from hmtl.trainables.session import LocalSession
from hmtl.trainables.setup import Run, set_up_data, set_up_model, set_up_optimiser
from hmtl.trainables.train import plan_epoch, set_up_runtime, train, train_step

pytestmark = pytest.mark.gpu

ALL_AUX = (
    "tasks.loss_weights.jigsaw=0.5",
    "tasks.loss_weights.rotation=0.5",
    "tasks.loss_weights.inpainting=0.5",
    "tasks.loss_weights.contrastive=0.5",
)


def cuda_run(cfg, tmp_path) -> Run:
    """A `Run` as `train()` sets one up."""
    session = LocalSession(tmp_path, log=None)
    device, autocast = set_up_runtime(cfg, session)
    data = set_up_data(cfg, session, device, None)
    torch.manual_seed(cfg.runtime.seed)
    net = set_up_model(cfg, session, data.splits.info, device, None, resuming=False)
    opt = set_up_optimiser(cfg, session, net.model, len(data.stream))
    return Run(cfg, session, device, autocast, data, net, opt, 0.0)


@pytest.mark.parametrize("level", ["weak", "strong"])
def test_a_training_step_never_waits_on_the_gpu(tiny_config, tmp_path, level):
    cfg = tiny_config("runtime.device=cuda", f"augmentation.level={level}", *ALL_AUX)
    run = cuda_run(cfg, tmp_path)
    rows, jitter = plan_epoch(run, 1)
    train_step(run, rows, 0, jitter)  # first step: cuDNN's search and lazy set-up may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host sync now raises, naming the op
    try:
        figures = [train_step(run, rows, step, jitter) for step in (1, 2)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(math.isfinite(float(f["loss"])) for f in figures)
    assert run.net.model.backbone.training and figures[-1]["loss"].is_cuda


def scalars(metrics):
    return {k: v for k, v in metrics.items() if k.startswith("train/loss")}


def test_host_rows_train_as_resident_rows_on_cuda(tiny_config, tmp_path):
    found = {}
    for placement in ("device", "host"):
        cfg = tiny_config(
            "runtime.device=cuda",
            f"runtime.data_placement={placement}",
            "schedule.epochs=1",
            "data.label_fraction=0.5",
            "tasks.loss_weights.rotation=0.5",
        )
        result = train(cfg, LocalSession(tmp_path / placement, log=None))
        found[placement] = scalars(result.metrics)
    assert found["host"].keys() == found["device"].keys()
    for name, value in found["device"].items():  # cuDNN may pick other kernels: not bitwise
        assert found["host"][name] == pytest.approx(value, rel=0.02), name


def test_compile_on_cuda_trains_like_eager(tiny_config, tmp_path, capsys):
    results = {}
    for compiled in (False, True):
        cfg = tiny_config(
            "runtime.device=cuda",
            f"runtime.compile={str(compiled).lower()}",
            "schedule.epochs=1",
            "tasks.loss_weights.rotation=0.5",
        )
        results[compiled] = train(cfg, LocalSession(tmp_path / str(compiled), log=None)).metrics
    assert "could not be compiled" not in capsys.readouterr().out
    assert results[True]["train/loss"] == pytest.approx(results[False]["train/loss"], rel=0.05)


def test_bf16_losses_on_cuda_are_within_rounding_of_fp32():
    # fp32 on CUDA too: the strong views' noise is drawn on the device, so CPU and CUDA
    # losses agree only in distribution.
    cuda = torch.device("cuda")
    model = all_tasks_model().to(cuda)
    fp32 = losses(model, autocast(RuntimeConfig(precision="fp32"), cuda), cuda)
    bf16 = losses(model, autocast(RuntimeConfig(), cuda), cuda)  # auto: bf16 on CUDA
    for name, value in fp32.items():
        assert bf16[name].item() == pytest.approx(value.item(), rel=0.02, abs=0.01), name
