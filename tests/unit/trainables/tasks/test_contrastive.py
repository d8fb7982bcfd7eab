"""Contrastive (SimCLR): NT-Xent against the textbook formula, views, projection, training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import FACE_INFO, faces, small_cnn, train_aux_alone

from hmtl.trainables.augment import normalize
from hmtl.trainables.config import build_config
from hmtl.trainables.tasks import REGISTRY, AuxBatch
from hmtl.trainables.tasks.contrastive import nt_xent, random_resized_crop


def _task(feature_dim: int = 16, channels: int = 1, **settings):
    tree = {
        "data": {"image_size": 48, "channels": channels},
        "tasks": {"aux": {"contrastive": settings}},
    }
    return REGISTRY["contrastive"].build(build_config(tree), FACE_INFO, feature_dim)


def _aux(raw: torch.Tensor, seed: int, size: int = 48) -> AuxBatch:
    clean = raw.float() / 255  # make_input ignores it: views come from the raw batch
    return AuxBatch(raw, clean, torch.Generator().manual_seed(seed), 1.0, size)


def _raw(n: int = 4, channels: int = 1, size: int = 56) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)


def _textbook(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """-log(exp(sim(i, pos) / tau) / sum_{k != i} exp(sim(i, k) / tau)), mean over 2N anchors."""
    z = torch.cat([z1, z2]).double()
    n2 = len(z)
    sim = [[float(F.cosine_similarity(z[i], z[k], dim=0)) for k in range(n2)] for i in range(n2)]
    total = 0.0
    for i in range(n2):
        pos = (i + n2 // 2) % n2
        denom = sum(math.exp(sim[i][k] / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(sim[i][pos] / tau) / denom)
    return total / n2


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_equals_the_textbook_formula(tau):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    assert float(nt_xent(z1, z2, tau)) == pytest.approx(_textbook(z1, z2, tau), abs=1e-6)


def test_identical_views_at_low_temperature_reach_the_minimum():
    z = torch.randn(8, 32, generator=torch.Generator().manual_seed(1))
    assert float(nt_xent(z, z, 0.05)) < 1e-3
    assert float(nt_xent(z, 3 * z, 0.05)) < 1e-3  # scale-free: embeddings are L2-normalised


def test_loss_falls_as_positives_align():
    g = torch.Generator().manual_seed(2)
    z1, noise = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    losses = [float(nt_xent(z1, z1 + s * noise, 0.2)) for s in (4.0, 1.0, 0.5, 0.1)]
    assert losses == sorted(losses, reverse=True) and losses[0] > losses[-1] + 1


@pytest.mark.parametrize("channels", [1, 3])
def test_views_are_two_augmentations_in_order(channels):
    raw = _raw(channels=channels)
    views, targets = _task(channels=channels).make_input(_aux(raw, seed=0))
    assert views.shape == (8, channels, 48, 48) and targets == {}
    assert views.dtype == torch.float32 and views.min() >= 0 and views.max() <= 1
    assert not torch.equal(views[:4], views[4:])  # the two views of a sample differ


def test_same_seed_same_views_and_different_seeds_differ():
    raw, task = _raw(), _task(view_level="weak")
    a, _ = task.make_input(_aux(raw, seed=3))
    b, _ = task.make_input(_aux(raw, seed=3))
    c, _ = task.make_input(_aux(raw, seed=4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_projection_shape_loss_and_top1():
    task = _task(feature_dim=32)
    z = task(torch.randn(10, 32))
    assert z.shape == (10, 128) and z.dtype == torch.float32
    assert set(task.loss(torch.randn(10, 32), None, {}, None)) == {"contrastive"}
    task.eval()
    same = torch.randn(5, 32).repeat(2, 1)  # views identical: each finds its partner
    assert task.metrics(same, None, {}) == {"contrastive/top1": 1.0}


def test_loss_falls_when_trained_alone():
    raw, backbone = faces(32), small_cnn()
    task = _task(feature_dim=backbone.feature_dim)
    # 30 steps: the random resized crop makes the pairs harder than the view level alone.
    losses = train_aux_alone(task, backbone, raw, raw.float() / 255, steps=30, lr=3e-3)
    assert sum(losses[-4:]) / 4 < 0.9 * sum(losses[:4]) / 4, losses


def test_loss_is_float32_under_bf16_autocast():
    task = _task(feature_dim=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = task.loss(torch.randn(10, 32).to(torch.bfloat16), None, {}, None)["contrastive"]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.gpu
def test_runs_on_cuda():
    raw, task = _raw().cuda(), _task(feature_dim=32).cuda()
    views, _ = task.make_input(_aux(raw, seed=0))
    assert views.is_cuda and views.shape == (8, 1, 48, 48)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = task.loss(torch.randn(8, 32, device="cuda"), None, {}, None)["contrastive"]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_random_resized_crop_is_seeded_and_keeps_the_shape():
    raw = _raw(channels=3)
    crops = random_resized_crop(raw, (0.2, 1.0), torch.Generator().manual_seed(0))
    again = random_resized_crop(raw, (0.2, 1.0), torch.Generator().manual_seed(0))
    assert crops.shape == raw.shape and crops.dtype == torch.uint8
    assert torch.equal(crops, again) and not torch.equal(crops, raw)
    # A constant image stays constant: the box never leaves the image (no border fill).
    flat = torch.full((4, 1, 56, 56), 200, dtype=torch.uint8)
    assert bool((random_resized_crop(flat, (0.08, 1.0), torch.Generator()) == 200).all())


def test_effssl_rotation_head_sees_both_views_turned_by_their_own_k():
    raw = _raw(n=32)
    task = _task(feature_dim=16, rotation_weight=0.1)
    inputs, targets = task.make_input(_aux(raw, seed=0))
    views, turned = inputs.chunk(2)
    k = targets["rotation"]
    assert inputs.shape == (128, 1, 48, 48) and k.shape == (64,)
    assert set(k.tolist()) == {0, 1, 2, 3}  # 0 included, as in EffSSL
    for i in range(64):
        assert torch.equal(turned[i], torch.rot90(views[i], int(k[i]), dims=(-2, -1)))
    plain, _ = _task(feature_dim=16).make_input(_aux(raw, seed=0))
    assert torch.equal(plain, views)  # the contrastive views are the unturned ones


def test_effssl_loss_is_the_weighted_sum_of_the_two_cross_entropies():
    task = _task(feature_dim=16, rotation_weight=0.1)
    features = torch.randn(16, 16, generator=torch.Generator().manual_seed(0))
    k = torch.tensor([0, 1, 2, 3] * 2)
    with torch.no_grad():
        parts = task.loss(features, None, {"rotation": k}, None)
    assert set(parts) == {"contrastive", "contrastive/rotation"}
    with torch.no_grad():
        logits = task.rotation_head(features[8:])
    ce = F.cross_entropy(logits[:4], k[:4]) + F.cross_entropy(logits[4:], k[4:])
    assert float(parts["contrastive/rotation"]) == pytest.approx(0.1 * float(ce), rel=1e-5)
    with torch.no_grad():
        z1, z2 = task(features[:8]).chunk(2)
    assert float(parts["contrastive"]) == pytest.approx(float(nt_xent(z1, z2, 0.2)), rel=1e-5)
    assert 0.0 <= float(task.step_metrics["rotation_accuracy"]) <= 1.0


def test_effssl_rotation_loss_falls():
    raw, backbone = faces(16), small_cnn()
    # Mild views (weak level, crops of >= 60% of the area) so 20 steps show the fall: on
    # strong views with 20% crops the turn of a cheek-sized crop takes many more steps.
    task = _task(
        feature_dim=backbone.feature_dim,
        rotation_weight=0.1,
        view_level="weak",
        crop_scale=[0.6, 1.0],
    )
    opt = torch.optim.AdamW([*backbone.parameters(), *task.parameters()], lr=3e-3)
    generator, rotation = torch.Generator().manual_seed(0), []
    for _ in range(20):
        images, targets = task.make_input(AuxBatch(raw, raw.float() / 255, generator, 1.0, 48))
        pooled = F.adaptive_avg_pool2d(backbone.forward_features(normalize(images)), 1).flatten(1)
        # The rotation term alone: NT-Xent's gradient would blur what this test looks at.
        loss = task.loss(pooled, None, targets, images)["contrastive/rotation"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        rotation.append(loss.item())
    # Chance is 0.1 * 2 ln 4 = 0.277 (two views); upright faces make the turn learnable.
    assert rotation[0] == pytest.approx(0.277, abs=0.05)
    assert sum(rotation[-5:]) / 5 < 0.8 * sum(rotation[:5]) / 5, rotation
