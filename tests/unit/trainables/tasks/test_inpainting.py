"""In-painting: masks, the filled input, the masked L1, decoder shapes, training alone."""

from __future__ import annotations

import pytest
import torch
from helpers import FACE_INFO, faces, small_cnn, train_aux_alone

from hmtl.trainables.augment import augment
from hmtl.trainables.config import build_config
from hmtl.trainables.tasks import REGISTRY, AuxBatch
from hmtl.trainables.tasks.inpainting import (
    FILL,
    REGIONS,
    Decoder,
    RandomFeatures,
    box_mask,
    draw_boxes,
    masked_l1,
)


def _task(channels: int = 1, feature_dim: int = 16, **settings):
    tree = {
        "data": {"image_size": 48, "channels": channels},
        "tasks": {"aux": {"inpainting": settings}},
    }
    return REGISTRY["inpainting"].build(build_config(tree), FACE_INFO, feature_dim)


def _aux(n: int = 6, channels: int = 1, size: int = 48, seed: int = 0) -> AuxBatch:
    raw = torch.randint(
        0,
        256,
        (n, channels, size, size),
        dtype=torch.uint8,
        generator=torch.Generator().manual_seed(99),
    )
    gen = torch.Generator().manual_seed(seed)
    return AuxBatch(raw, augment(raw, "weak", generator=gen), gen, 1.0, size)


@pytest.mark.parametrize("size", [48, 112])
def test_rectangles_cover_a_plausible_share(size):
    boxes = draw_boxes(256, size, "rectangles", 0.25, torch.Generator().manual_seed(0))
    sides = torch.cat([boxes[..., 1] - boxes[..., 0], boxes[..., 3] - boxes[..., 2]], dim=1)
    first = sides[:, [0, 2]]  # the first box is always present
    assert first.min() >= round(size / 8) and sides.max() <= round(0.25 * size)
    assert boxes.min() >= 0 and boxes.max() <= size
    share = box_mask(boxes, size).float().mean(dim=(1, 2, 3))
    assert share.min() >= 0.01 and share.max() <= 0.4
    two = (boxes[:, 1, 1] > boxes[:, 1, 0]).float().mean()
    assert 0.3 < two < 0.7  # the second box about half the time


def test_regions_lie_where_specified():
    size, jitter = 64, 0.04 * 64 + 1
    mask = box_mask(draw_boxes(128, size, "regions", 0.25, torch.Generator().manual_seed(1)), size)
    rows, cols = mask[:, 0].any(dim=2), mask[:, 0].any(dim=1)
    seen = set()
    for r, c in zip(rows, cols, strict=True):
        r_idx, c_idx = r.nonzero().flatten(), c.nonzero().flatten()
        top, bottom, left, right = r_idx[0], r_idx[-1] + 1, c_idx[0], c_idx[-1] + 1
        for name, (t, b, lft, rgt) in REGIONS.items():
            want = torch.tensor([t, b, lft, rgt]) * size
            if (torch.stack([top, bottom, left, right]) - want).abs().max() <= jitter:
                seen.add(name)
                break
        else:
            raise AssertionError(f"mask box {top, bottom, left, right} is neither eyes nor mouth")
    assert seen == {"eyes", "mouth"}


def test_both_picks_rectangles_or_regions_per_sample():
    draws = {
        m: draw_boxes(200, 48, m, 0.25, torch.Generator().manual_seed(2))
        for m in ("rectangles", "regions", "both")
    }
    is_rect = (draws["both"] == draws["rectangles"]).flatten(1).all(1)
    is_region = (draws["both"] == draws["regions"]).flatten(1).all(1)
    assert (is_rect | is_region).all() and is_rect.any() and is_region.any()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("masks", ["rectangles", "regions", "both"])
def test_input_is_clean_image_with_filled_hole(channels, masks):
    aux = _aux(channels=channels, size=64)
    images, targets = _task(channels, masks=masks).make_input(aux)
    mask = targets["mask"]
    assert images.shape == aux.clean.shape and mask.shape == (6, 1, 64, 64)
    assert mask.dtype == torch.bool and mask.flatten(1).any(1).all()
    hole = mask.expand_as(images)
    assert (images[hole] == FILL).all() and torch.equal(images[~hole], aux.clean[~hole])
    assert torch.equal(targets["target"], aux.clean)


def test_same_seed_same_input_and_different_seeds_differ():
    task = _task(masks="both")
    a, ta = task.make_input(_aux(seed=5))
    b, tb = task.make_input(_aux(seed=5))
    c, tc = task.make_input(_aux(seed=6))
    assert torch.equal(a, b) and torch.equal(ta["mask"], tb["mask"])
    assert not torch.equal(ta["mask"], tc["mask"]) and not torch.equal(a, c)


def test_masked_l1_counts_only_the_hole():
    target = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(3, 1, 16, 16, dtype=torch.bool)
    mask[:, :, 4:8, 2:10] = True
    assert masked_l1(target, target, mask) == 0
    outside = torch.where(mask, target, 1 - target)  # wrong everywhere but the hole
    assert masked_l1(outside, target, mask) == 0
    shifted = torch.where(mask, target + 0.25, target)
    assert masked_l1(shifted, target, mask) == pytest.approx(0.25, abs=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("side", "size"), [(3, 48), (4, 64), (7, 112), (2, 48), (14, 224)])
def test_decoder_output_shape(channels, side, size):
    decoder = Decoder(32, channels)
    out = decoder(torch.randn(2, 32, side, side), size)
    assert out.shape == (2, channels, size, size) and out.min() >= 0 and out.max() <= 1


def test_perceptual_term_is_separate_frozen_and_zero_for_a_perfect_fill():
    fmap = torch.randn(6, 16, 3, 3)
    plain = _task()
    assert plain.perceptual is None
    assert set(plain.loss(None, fmap, plain.make_input(_aux())[1], None)) == {"inpainting"}
    task = _task(perceptual_weight=0.5)
    _, targets = task.make_input(_aux())
    losses = task.loss(None, fmap, targets, None)
    assert set(losses) == {"inpainting", "inpainting/perceptual"}
    assert losses["inpainting/perceptual"] > 0
    losses["inpainting/perceptual"].backward()
    assert all(p.grad is None and not p.requires_grad for p in task.perceptual.parameters())
    assert task.decoder.body[-1].weight.grad is not None
    perfect = task._perceptual(targets["target"], targets["target"], targets["mask"])
    assert perfect == 0


def test_random_features_are_fixed_and_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = RandomFeatures(3), RandomFeatures(3)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_loss_falls_when_trained_alone():
    raw, backbone = faces(32), small_cnn()
    task = _task(feature_dim=backbone.feature_dim)

    def clean(generator: torch.Generator) -> torch.Tensor:
        return augment(raw, "none", generator=generator)

    losses = train_aux_alone(task, backbone, raw, clean, steps=20, lr=3e-3)
    assert sum(losses[-4:]) / 4 < 0.9 * sum(losses[:4]) / 4, losses


def _autocast_loss(task, aux, device: str):
    images, targets = task.make_input(aux)
    fmap = torch.randn(len(images), 16, 3, 3, device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        return images, targets, task.loss(None, fmap.to(torch.bfloat16), targets, images)


def test_losses_are_float32_under_bf16_autocast():
    _, _, losses = _autocast_loss(_task(perceptual_weight=1.0), _aux(), "cpu")
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


@pytest.mark.gpu
def test_runs_on_cuda_with_the_masks_drawn_on_the_cpu():
    task, cpu_aux = _task(masks="both", perceptual_weight=1.0), _aux(seed=4)
    gen = torch.Generator()
    gen.set_state(cpu_aux.generator.get_state())
    aux = AuxBatch(cpu_aux.raw.cuda(), cpu_aux.clean.cuda(), gen, 1.0, 48)
    images, targets, losses = _autocast_loss(task.cuda(), aux, "cuda")
    assert images.is_cuda and all(v.dtype == torch.float32 for v in losses.values())
    _, cpu_targets = task.cpu().make_input(cpu_aux)
    assert torch.equal(targets["mask"].cpu(), cpu_targets["mask"])
