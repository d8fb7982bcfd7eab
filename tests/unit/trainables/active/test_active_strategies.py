"""Query strategies on crafted cases where the right answer is known, and every registered
strategy through a real tiny model (distinct picks, exactly the budget, seeded)."""

import numpy as np
import pytest
import torch

from hmtl.trainables.active.badge import kmeans_pp
from hmtl.trainables.active.bald import score as bald_score
from hmtl.trainables.active.base import PoolContext, top
from hmtl.trainables.active.config import StrategySettings
from hmtl.trainables.active.coreset import kcenter_greedy, nearest_distance
from hmtl.trainables.active.deepfool import deepfool_norms
from hmtl.trainables.active.entropy import entropy
from hmtl.trainables.active.glister import glister_greedy
from hmtl.trainables.active.least_confidence import least_confidence
from hmtl.trainables.active.margin import negated_margin
from hmtl.trainables.active.registry import strategies
from hmtl.trainables.active.scoring import eval_inputs, features_of, head, pool_outputs
from hmtl.trainables.augment import augment
from hmtl.trainables.data.dataset import load_splits
from hmtl.trainables.models import build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.tasks import build_tasks


def test_uncertainty_scores_rank_the_boundary_rows_first():
    p = torch.tensor([[0.98, 0.01, 0.01], [0.5, 0.49, 0.01], [0.34, 0.33, 0.33], [0.7, 0.3, 0.0]])
    # Row 1 has the smallest margin, row 2 the flattest distribution and lowest top class.
    assert top(negated_margin(p), 2).tolist() == [1, 2]
    assert top(entropy(p), 1).tolist() == [2]
    assert top(least_confidence(p), 1).tolist() == [2]
    assert torch.allclose(negated_margin(p), torch.tensor([-0.97, -0.01, -0.01, -0.4]))


def test_margin_picks_the_rows_nearest_a_linear_boundary():
    x = torch.linspace(-3, 3, 61)[:, None]  # 1-d inputs, boundary at 0.4
    logits = torch.cat([x - 0.4, -(x - 0.4)], dim=1)
    picked = top(negated_margin(logits.softmax(1)), 4)
    assert float(x[picked[0]]) == pytest.approx(0.4)  # on the boundary: queried first
    assert (x[picked] - 0.4).abs().max() <= 0.2 + 1e-6


def test_coreset_picks_the_far_cluster():
    g = torch.Generator().manual_seed(0)
    near = torch.randn(50, 8, generator=g) * 0.1
    far = torch.randn(5, 8, generator=g) * 0.1 + 10.0
    pool = torch.cat([near, far])
    labelled = torch.randn(20, 8, generator=g) * 0.1  # the labelled set covers the near cluster
    picked = kcenter_greedy(pool, labelled, budget=1, chunk=7)
    assert picked.tolist()[0] >= 50
    # Two picks: the far cluster first, then the next-furthest point, never the same row twice.
    two = kcenter_greedy(pool, labelled, budget=2, chunk=7)
    assert len(set(two.tolist())) == 2


def test_coreset_chunking_does_not_change_distances():
    g = torch.Generator().manual_seed(1)
    x, c = torch.randn(37, 5, generator=g), torch.randn(23, 5, generator=g)
    whole = torch.cdist(x, c).min(1).values
    assert torch.allclose(nearest_distance(x, c, chunk=4), whole)


def test_badge_picks_are_diverse():
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(3) * 5
    h = torch.cat([c + 0.01 * torch.randn(20, 3, generator=g) for c in centres])
    a = torch.full((60, 4), 0.5)  # equally uncertain everywhere: only the features differ
    picked = kmeans_pp(a, h, budget=3, generator=np.random.default_rng(0))
    assert sorted(int(i) // 20 for i in picked) == [0, 1, 2]
    again = kmeans_pp(a, h, budget=3, generator=np.random.default_rng(0))
    assert picked.tolist() == again.tolist()


def test_badge_distances_match_the_materialised_embedding():
    from hmtl.trainables.active.scoring import outer_sq_dist

    g = torch.Generator().manual_seed(2)
    a, h = torch.randn(9, 4, generator=g), torch.randn(9, 6, generator=g)
    full = (a[:, :, None] * h[:, None, :]).flatten(1)
    expect = (full - full[3]).pow(2).sum(1)
    assert torch.allclose(outer_sq_dist(a, h, a[3], h[3]), expect, atol=1e-4)


def test_glister_penalty_spreads_picks_over_clusters():
    g = torch.Generator().manual_seed(0)
    # Two clusters of pool gradients; cluster 0 aligns better with the validation gradient.
    a = torch.cat(
        [torch.tensor([[-0.9, 0.9]]).repeat(10, 1), torch.tensor([[-0.5, 0.5]]).repeat(10, 1)]
    )
    h = torch.ones(20, 3) + 0.001 * torch.randn(20, 3, generator=g)
    val_logits = torch.tensor([[0.0, 3.0]]).repeat(30, 1)  # validation rows all mispredicted
    val_feats = torch.ones(30, 3)
    val_labels = torch.zeros(30, dtype=torch.long)
    greedy = glister_greedy(a, h, val_logits, val_feats, val_labels, budget=2, lam=0.0, lr=1e-6)
    assert all(int(i) < 10 for i in greedy)  # no penalty: the best-aligned cluster twice
    diverse = glister_greedy(a, h, val_logits, val_feats, val_labels, budget=2, lam=10.0)
    assert sorted(int(i) // 10 for i in diverse) == [0, 1]


def test_deepfool_measures_the_distance_to_a_linear_boundary():
    w = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # boundary x0 = 0; class 0 where x0 > 0

    def forward(x):
        return x @ w.T

    x = torch.tensor([[0.1, 0.0], [2.0, 1.0], [-0.5, 3.0]])
    norms = deepfool_norms(forward, x, max_iter=50, overshoot=0.02)
    expect = (1.02 * (x[:, 0].abs() + 1e-4 / 2)) ** 2
    assert torch.allclose(norms, expect, rtol=1e-3)
    assert top(-norms, 1).tolist() == [0]


@pytest.fixture
def pool_ctx(tiny_config):
    """A real tiny model over synthetic faces: 100 labelled rows, a pool of 60."""

    def make(**settings):
        cfg = tiny_config()
        splits = load_splits(cfg.data)
        torch.manual_seed(0)
        backbone = build_backbone("small_cnn", 1, 8)
        model = FaceModel(backbone, build_tasks(cfg, splits.info, backbone.feature_dim))
        return PoolContext(
            model=model,
            data=splits.train,
            pool=torch.arange(100, 160),
            labelled=torch.arange(0, 100),
            image_size=48,
            batch_size=64,
            settings=StrategySettings.model_validate(settings),
            generator=np.random.default_rng(0),
            seed=0,
        )

    return make


@pytest.mark.parametrize("name", sorted(strategies()))
def test_every_strategy_picks_exactly_the_budget_distinct_rows(pool_ctx, name):
    strategy = strategies()[name]
    ctx = pool_ctx(deepfool={"max_iter": 3})
    picked = strategy.select(ctx, 12)
    assert len(picked) == 12 and len(set(picked.tolist())) == 12
    assert int(picked.min()) >= 0 and int(picked.max()) < len(ctx.pool)
    again = strategy.select(pool_ctx(deepfool={"max_iter": 3}), 12)
    assert picked.tolist() == again.tolist()  # seeded: the same picks from the same state


def test_bald_without_dropout_degenerates_and_never_touches_batch_norm(pool_ctx):
    ctx = pool_ctx(bald={"dropout": 0.0, "passes": 4})
    stats = {k: v.clone() for k, v in ctx.model.state_dict().items() if "running" in k}
    off = bald_score(ctx)
    assert torch.allclose(off, torch.zeros_like(off), atol=1e-6)  # identical passes: no information
    on = bald_score(pool_ctx(bald={"dropout": 0.5, "passes": 4}))
    assert (on > 1e-4).float().mean() > 0.5 and on.std() > 0
    after = {k: v for k, v in ctx.model.state_dict().items() if "running" in k}
    assert all(torch.equal(stats[k], after[k]) for k in stats)


def test_pool_scoring_uses_the_eval_transform_only(pool_ctx):
    ctx = pool_ctx()
    rows = ctx.pool[:20]
    logits, _ = pool_outputs(ctx, rows)
    again, _ = pool_outputs(ctx, rows)
    assert torch.equal(logits, again)  # nothing random between two passes
    images = augment(ctx.data.images[rows], "eval", out_size=48)
    assert torch.equal(eval_inputs(ctx.data, rows, 48), images)
    ctx.model.eval()
    with torch.no_grad():
        expect = head(ctx.model)(features_of(ctx.model, images))
    assert torch.allclose(logits, expect, atol=1e-5)
    weak = augment(ctx.data.images[rows], "weak", out_size=48, generator=torch.Generator())
    with torch.no_grad():
        augmented = head(ctx.model)(features_of(ctx.model, weak))
    assert not torch.allclose(logits, augmented, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(strategies()))
def test_every_strategy_selects_on_the_gpu(pool_ctx, name):
    ctx = pool_ctx(deepfool={"max_iter": 3})
    device = torch.device("cuda")
    ctx.model.to(device)
    ctx.data = ctx.data.to(device)
    picked = strategies()[name].select(ctx, 12)
    assert len(set(picked.cpu().tolist())) == 12
