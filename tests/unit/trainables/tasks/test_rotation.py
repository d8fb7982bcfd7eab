"""Rotation task: labels exact by construction (checked against torch.rot90), head shapes,
seeding, and a loss that falls when the task trains alone."""

from __future__ import annotations

import pytest
import torch
from helpers import FACE_INFO, clean_aux, faces, small_cnn, train_aux_alone

from hmtl.trainables.config import build_config
from hmtl.trainables.tasks.rotation import RotationTask, build
from hmtl.trainables.tasks.tiles import from_tiles, rotate, to_tiles


def _turn_back(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Undo the turns item by item with torch.rot90: a reference independent of `rotate`."""
    items, turns = x.reshape(-1, *x.shape[-3:]), k.reshape(-1).tolist()
    back = [torch.rot90(item, -t, dims=(-2, -1)) for item, t in zip(items, turns, strict=True)]
    return torch.stack(back).view_as(x)


def test_rotate_matches_rot90_for_every_turn() -> None:
    x = torch.rand(4, 3, 2, 7, 7)
    k = torch.arange(12).view(4, 3) % 4
    turned = rotate(x, k)
    for m in range(4):
        for p in range(3):
            assert torch.equal(turned[m, p], torch.rot90(x[m, p], int(k[m, p]), dims=(-2, -1)))


@pytest.mark.parametrize("size", [48, 50])
@pytest.mark.parametrize("channels", [1, 3])
def test_whole_turn_back_restores_exactly(channels: int, size: int) -> None:
    clean = torch.rand(8, channels, size, size)
    images, targets = RotationTask(8).make_input(clean_aux(clean))
    k = targets["rotation"]
    assert images.shape == clean.shape and k.shape == (8,) and len(k.unique()) > 1
    back = _turn_back(images, k)
    assert torch.equal(back, clean)


@pytest.mark.parametrize("size", [48, 50])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("grid", [2, 3])
def test_tile_turn_back_restores_exactly(grid: int, channels: int, size: int) -> None:
    clean = torch.rand(4, channels, size, size)
    images, targets = RotationTask(8, "tiles", grid).make_input(clean_aux(clean))
    k = targets["rotation"]
    assert images.shape == clean.shape and k.shape == (4, grid * grid)
    assert not torch.equal(images, clean)
    back = _turn_back(to_tiles(images, grid), k)
    assert torch.equal(from_tiles(back, images), clean)


@pytest.mark.parametrize(
    ("form", "grid", "shape"),
    [("whole", 3, (5, 4)), ("tiles", 3, (5, 9, 4)), ("tiles", 2, (5, 4, 4))],
)
def test_logits_shapes_and_finite_loss(form: str, grid: int, shape: tuple[int, ...]) -> None:
    task = RotationTask(16, form, grid)
    images, targets = task.make_input(clean_aux(torch.rand(5, 1, 48, 48)))
    features = torch.randn(5, 16)
    assert task(features).shape == shape
    losses = task.loss(features, torch.randn(5, 16, 3, 3), targets, images)
    assert set(losses) == {"rotation"}
    assert losses["rotation"].ndim == 0 and torch.isfinite(losses["rotation"])
    assert 0.0 <= task.metrics(features, targets)["accuracy"] <= 1.0


@pytest.mark.parametrize("form", ["whole", "tiles"])
def test_same_seed_same_input(form: str) -> None:
    task, clean = RotationTask(8, form), torch.rand(8, 1, 48, 48)
    a, target_a = task.make_input(clean_aux(clean, seed=0))
    b, target_b = task.make_input(clean_aux(clean, seed=0))
    c, _ = task.make_input(clean_aux(clean, seed=1))
    assert torch.equal(a, b) and torch.equal(target_a["rotation"], target_b["rotation"])
    assert not torch.equal(a, c)


@pytest.mark.parametrize(("form", "grid"), [("whole", 3), ("tiles", 2)])
def test_loss_falls_when_trained_alone(form: str, grid: int) -> None:
    """Tiles on a 2 x 2 grid: 3 x 3 tiles need ~150 steps to move off chance here."""
    cfg = build_config(
        {"data": {"image_size": 48}, "tasks": {"aux": {"rotation": {"form": form, "grid": grid}}}}
    )
    backbone = small_cnn()
    task = build(cfg, FACE_INFO, backbone.feature_dim)
    clean = faces(64).float() / 255
    losses = train_aux_alone(task, backbone, clean, clean, steps=20, lr=1e-2)
    assert sum(losses[-4:]) / 4 < 0.9 * losses[0]


@pytest.mark.gpu
@pytest.mark.parametrize("form", ["whole", "tiles"])
def test_cuda_input_matches_cpu(form: str) -> None:
    task, clean = RotationTask(8, form), torch.rand(4, 3, 50, 50)
    cpu_images, cpu_targets = task.make_input(clean_aux(clean))
    gpu_images, gpu_targets = task.cuda().make_input(clean_aux(clean.cuda()))
    assert gpu_images.is_cuda and torch.equal(gpu_images.cpu(), cpu_images)
    assert torch.equal(gpu_targets["rotation"].cpu(), cpu_targets["rotation"])
