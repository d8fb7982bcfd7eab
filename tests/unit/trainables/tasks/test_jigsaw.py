"""Jigsaw task: labels exact by construction, the permutation set, head shapes, seeding, and a
loss that falls when the task trains alone."""

from __future__ import annotations

import pytest
import torch
from helpers import FACE_INFO, clean_aux, faces, small_cnn, train_aux_alone

from hmtl.trainables.config import build_config
from hmtl.trainables.tasks.jigsaw import JigsawTask, build, hamming_permutations, min_hamming
from hmtl.trainables.tasks.tiles import from_tiles, permute_tiles, to_tiles


def _unshuffle(images: torch.Tensor, perm: torch.Tensor, grid: int) -> torch.Tensor:
    return from_tiles(permute_tiles(to_tiles(images, grid), perm.argsort(dim=1)), images)


@pytest.mark.parametrize("size", [48, 50])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("grid", [2, 3])
def test_hmtl_target_unshuffles_exactly(grid: int, channels: int, size: int) -> None:
    clean = torch.rand(6, channels, size, size)
    images, targets = JigsawTask(8, grid).make_input(clean_aux(clean))
    assert images.shape == clean.shape and targets["jigsaw"].shape == (6, grid * grid)
    assert not torch.equal(images, clean)
    assert torch.equal(_unshuffle(images, targets["jigsaw"], grid), clean)


def test_target_names_the_tile_at_each_position() -> None:
    """Tiles painted with their own index: the pixel at position p reads target[:, p]."""
    ids = torch.arange(9.0).view(1, 1, 3, 3) / 8
    clean = ids.repeat_interleave(16, 2).repeat_interleave(16, 3).expand(4, 1, 48, 48)
    images, targets = JigsawTask(8, 3).make_input(clean_aux(clean))
    seen = (images[:, 0, 8::16, 8::16] * 8).round().long().reshape(4, 9)
    assert torch.equal(seen, targets["jigsaw"])


@pytest.mark.parametrize("size", [48, 50])
@pytest.mark.parametrize("grid", [2, 3])
def test_classic_target_unshuffles_exactly(grid: int, size: int) -> None:
    clean = torch.rand(6, 3, size, size)
    task = JigsawTask(8, grid, "classic", permutations=10)
    images, targets = task.make_input(clean_aux(clean))
    assert targets["jigsaw"].shape == (6,)
    perm = task.permutation_set[targets["jigsaw"]]
    assert torch.equal(_unshuffle(images, perm, grid), clean)


def test_permutation_set_is_seeded_distinct_and_far_apart() -> None:
    perms = hamming_permutations(9, 100, seed=0)
    assert perms.shape == (100, 9)
    assert torch.equal(perms.sort(dim=1).values, torch.arange(9).expand(100, 9))
    assert len(torch.unique(perms, dim=0)) == 100
    assert torch.equal(perms, hamming_permutations(9, 100, seed=0))
    assert not torch.equal(perms, hamming_permutations(9, 100, seed=1))
    # Greedy max-min reaches 6 here; 100 uniformly drawn permutations typically give 2-4.
    assert min_hamming(perms) >= 5


def test_two_by_two_set_is_clamped_to_all_24() -> None:
    cfg = build_config({"tasks": {"aux": {"jigsaw": {"form": "classic", "grid": 2}}}})
    task = build(cfg, FACE_INFO, 16)
    assert task.permutation_set.shape == (24, 4)
    assert len(torch.unique(task.permutation_set, dim=0)) == 24
    assert min_hamming(task.permutation_set) == 2


@pytest.mark.parametrize(
    ("form", "grid", "shape"),
    [
        ("hmtl", 3, (5, 9, 9)),
        ("hmtl", 2, (5, 4, 4)),
        ("classic", 3, (5, 100)),
        ("classic", 2, (5, 24)),
    ],
)
def test_logits_shapes_and_finite_loss(form: str, grid: int, shape: tuple[int, ...]) -> None:
    task = JigsawTask(16, grid, form, permutations=100)
    images, targets = task.make_input(clean_aux(torch.rand(5, 1, 48, 48)))
    features = torch.randn(5, 16)
    assert task(features).shape == shape
    losses = task.loss(features, torch.randn(5, 16, 3, 3), targets, images)
    assert set(losses) == {"jigsaw"}
    assert losses["jigsaw"].ndim == 0 and torch.isfinite(losses["jigsaw"])
    assert 0.0 <= task.metrics(features, targets)["accuracy"] <= 1.0


@pytest.mark.parametrize("form", ["hmtl", "classic"])
def test_same_seed_same_input(form: str) -> None:
    task, clean = JigsawTask(8, 3, form), torch.rand(8, 1, 48, 48)
    a, target_a = task.make_input(clean_aux(clean, seed=0))
    b, target_b = task.make_input(clean_aux(clean, seed=0))
    c, _ = task.make_input(clean_aux(clean, seed=1))
    assert torch.equal(a, b) and torch.equal(target_a["jigsaw"], target_b["jigsaw"])
    assert not torch.equal(a, c)


@pytest.mark.parametrize("form", ["hmtl", "classic"])
def test_loss_falls_when_trained_alone(form: str) -> None:
    """A 2 x 2 grid (and 8 classic permutations): on this tiny CNN, 3 x 3 puzzles need ~150
    steps to move off chance, and the full 24-permutation set sometimes more than 20."""
    section = {"form": form, "grid": 2, "permutations": 8}
    cfg = build_config({"data": {"image_size": 48}, "tasks": {"aux": {"jigsaw": section}}})
    backbone = small_cnn()
    task = build(cfg, FACE_INFO, backbone.feature_dim)
    clean = faces(64).float() / 255
    losses = train_aux_alone(task, backbone, clean, clean, steps=20, lr=1e-2)
    assert sum(losses[-4:]) / 4 < 0.9 * losses[0]


@pytest.mark.gpu
@pytest.mark.parametrize("form", ["hmtl", "classic"])
def test_cuda_input_matches_cpu(form: str) -> None:
    task, clean = JigsawTask(8, 3, form), torch.rand(4, 3, 50, 50)
    cpu_images, cpu_targets = task.make_input(clean_aux(clean))
    gpu_images, gpu_targets = task.cuda().make_input(clean_aux(clean.cuda()))
    assert gpu_images.is_cuda and torch.equal(gpu_images.cpu(), cpu_images)
    assert torch.equal(gpu_targets["jigsaw"].cpu(), cpu_targets["jigsaw"])
