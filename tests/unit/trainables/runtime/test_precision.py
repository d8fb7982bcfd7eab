"""bf16 autocast and channels-last: on by default on CUDA only, and bf16 losses on the CPU
within rounding of fp32 ones (the numerics the GPU path trains with)."""

import pytest
import torch
from helpers import FACE_INFO, faces

from hmtl.trainables.augment import augment
from hmtl.trainables.config import RuntimeConfig, build_config
from hmtl.trainables.models import build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.runtime.precision import autocast, use_bf16, use_channels_last
from hmtl.trainables.tasks import AuxBatch, build_tasks

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object needs no CUDA
ALL_AUX = {"jigsaw": 0.5, "rotation": 0.5, "inpainting": 0.5, "contrastive": 0.5}


def test_defaults_keep_the_cpu_path_fp32_and_nchw():
    runtime = RuntimeConfig()
    assert not use_bf16(runtime, CPU) and not use_channels_last(runtime, CPU)
    assert use_bf16(runtime, CUDA) and use_channels_last(runtime, CUDA)
    assert not use_bf16(RuntimeConfig(precision="fp32"), CUDA)
    assert use_bf16(RuntimeConfig(precision="bf16"), CPU)
    assert not use_channels_last(RuntimeConfig(channels_last=False), CUDA)
    assert use_channels_last(RuntimeConfig(channels_last=True), CPU)


def losses(model: FaceModel, context, device: torch.device = CPU) -> dict[str, torch.Tensor]:
    """Every task's loss on the same 16 faces on `device`, the auxiliaries drawing from
    seed 0 (test_gpu.py runs it on CUDA)."""
    raw = faces(16).to(device)
    clean = augment(raw, "eval", out_size=48)
    aux = AuxBatch(raw, clean, torch.Generator().manual_seed(0), 1.0, 48)
    batch = {"image": raw, "expression": (torch.arange(16) % 8).to(device)}
    with context:
        return model(clean, batch, aux)


def all_tasks_model() -> FaceModel:
    """small_cnn (width 8, seed 0) with the expression head and all four auxiliaries."""
    cfg = build_config({"data": {"image_size": 48}, "tasks": {"loss_weights": ALL_AUX}})
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", 1, width=8)
    return FaceModel(backbone, build_tasks(cfg, FACE_INFO, backbone.feature_dim)).eval()


def test_bf16_autocast_losses_are_within_rounding_of_fp32_on_cpu():
    model = all_tasks_model()
    fp32 = losses(model, autocast(RuntimeConfig(precision="fp32"), CPU))
    bf16 = losses(model, autocast(RuntimeConfig(precision="bf16"), CPU))
    assert set(fp32) == set(bf16) == {"expression", *ALL_AUX}
    for name, value in fp32.items():
        assert bf16[name].dtype == torch.float32  # heads return float32 losses either way
        assert torch.isfinite(bf16[name])
        # bf16 keeps 8 bits of mantissa: a few layers deep, a loss moves by well under 1%.
        assert bf16[name].item() == pytest.approx(value.item(), rel=0.01, abs=0.005), name
    assert any(bf16[name].item() != fp32[name].item() for name in fp32)  # bf16 really ran
