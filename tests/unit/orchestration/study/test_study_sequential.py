"""The statistics of studies that decide (orchestration/study/decide/): boundaries against
published values and an independent multivariate-normal computation, intervals and
decisions, power, multiplicity and variance components against scipy and by hand."""

import math

import numpy as np
import pytest
from scipy import stats

from hmtl.orchestration.study.decide.look import look, settled, unit_differences
from hmtl.orchestration.study.decide.multiplicity import adjust, interval_alpha
from hmtl.orchestration.study.decide.power import detectable_effect, power, seeds_needed
from hmtl.orchestration.study.decide.rules import (
    ABOVE,
    BELOW,
    EQUIVALENT,
    UNDECIDED,
    adjusted_interval,
    decide,
    make_design,
    plan_looks,
)
from hmtl.orchestration.study.decide.spending import boundaries, spent, t_boundaries
from hmtl.orchestration.study.decide.variance import by_subset, components


def test_obrien_fleming_and_pocock_boundaries_match_published_tables():
    # Two-sided alpha 0.05, equally spaced looks (Jennison and Turnbull 2000, table 7.6;
    # the same values as R's ldbounds).
    assert boundaries([0.25, 0.5, 0.75, 1], 0.05) == pytest.approx(
        [4.3326, 2.9631, 2.3590, 2.0141], abs=2e-4
    )
    assert boundaries([0.2, 0.4, 0.6, 0.8, 1], 0.05, "pocock") == pytest.approx(
        [2.4380, 2.4268, 2.4101, 2.3966, 2.3860], abs=2e-4
    )
    assert boundaries([1], 0.05) == pytest.approx([stats.norm.isf(0.025)])


def test_boundaries_spend_alpha_by_an_independent_multivariate_normal_computation():
    t = np.array([3, 6, 9]) / 9
    c = np.asarray(boundaries(list(t), 0.05))
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))  # corr(Z_i, Z_j)
    inside = stats.multivariate_normal(np.zeros(3), cov).cdf(c, lower_limit=-c, rng=0)
    assert 1 - inside == pytest.approx(0.05, abs=2e-4)
    assert spent(1.0, 0.05) == pytest.approx(0.05) and spent(0.5, 0.05) < 0.01


def test_t_boundaries_are_exact_at_the_first_look_and_wider_than_z_after():
    looks = (3, 6, 9)
    t = t_boundaries(looks, 0.05)
    first = 2 * (1 - stats.norm.cdf(boundaries([1 / 3, 2 / 3, 1], 0.05)[0]))
    assert t[0] == pytest.approx(stats.t.isf(spent(1 / 3, 0.05) / 2, 2))
    assert first == pytest.approx(spent(1 / 3, 0.05))
    z = boundaries([1 / 3, 2 / 3, 1], 0.05)
    assert all(b > a for a, b in zip(z, t, strict=True))
    assert t_boundaries((12,), 0.05) == [pytest.approx(stats.t.isf(0.025, 11))]


def test_a_design_plans_its_looks_and_splits_alpha_between_comparisons():
    assert plan_looks(3, 12, 3) == (3, 6, 9, 12) and plan_looks(3, 10, 3) == (3, 6, 9, 10)
    one, seven = (
        make_design((3, 6, 9), 0.05, 0.01),
        make_design((3, 6, 9), 0.05, 0.01, "obrien_fleming", 7),
    )
    assert all(b > a for a, b in zip(one.t, seven.t, strict=True))
    with pytest.raises(ValueError, match="increase"):
        make_design((3, 3), 0.05, 0.01)


def test_adjusted_interval_and_decisions():
    design = make_design((3, 6, 9), 0.05, 0.01)
    low, high = adjusted_interval(0.02, 0.01, 6, 1, design)
    half = design.t[1] * 0.01 / math.sqrt(6)
    assert (low, high) == (pytest.approx(0.02 - half), pytest.approx(0.02 + half))
    codes = decide([0.001, -0.3, -0.005, -0.02], [0.3, -0.001, 0.004, 0.02], 0.01)
    assert list(codes) == [ABOVE, BELOW, EQUIVALENT, UNDECIDED]


def test_a_look_decides_what_it_can_and_keeps_earlier_decisions():
    design = make_design((3, 6), 0.05, 0.01)
    diffs = {
        "clear": {0: 0.05, 1: 0.02, 2: 0.08, 3: 0.05, 4: 0.04, 5: 0.06},
        "noise": {0: 0.03, 1: -0.04, 2: 0.01, 3: -0.02, 4: 0.05, 5: -0.03},
        "few": {0: 0.01},
        "same": {0: 0.0, 1: 0.0, 2: 0.0},  # no spread: no interval, undecided
    }
    first = look(design, {k: dict(list(v.items())[:3]) for k, v in diffs.items()}, None, 1)
    assert first["clear"]["decision"] == "undecided" and first["few"]["n"] == 1
    assert first["same"]["decision"] == "undecided" and first["same"]["low"] is None
    second = look(design, diffs, first, 2)
    assert second["clear"]["decision"] == "above" and second["clear"]["look"] == 2
    assert second["noise"]["decision"] == "undecided" and not settled(second)
    earlier = {**first, "clear": {**second["clear"], "look": 1}}
    assert look(design, diffs, earlier, 2)["clear"] is earlier["clear"]


def test_units_average_the_repeats_of_one_subset_and_need_them_all():
    cell = {0: 1.0, 1: 2.0, 2: 3.0, 3: 5.0, 4: 7.0}
    base = {0: 0.0, 1: 0.0, 2: 0.0, 3: 1.0, 4: 1.0, 5: 1.0}
    assert unit_differences(cell, base, 0, 2) == {0: 1.5, 1: 3.5}  # seed 4 alone: left out
    assert unit_differences(cell, base, 0, 1) == {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 6.0}


def test_power_matches_the_noncentral_t_and_inverts():
    # A one-sample t-test of d = 1 needs 10 pairs for 80% power (Cohen 1988, table 2.4.1).
    assert seeds_needed(1.0, 1.0) == 10
    assert power(10, 1.0, 1.0) == pytest.approx(0.8031, abs=1e-3)
    effect = detectable_effect(10, 0.02)
    assert power(10, effect, 0.02) == pytest.approx(0.8, abs=1e-6)
    assert seeds_needed(effect, 0.02) == 10 and math.isnan(detectable_effect(1, 0.02))


def test_holm_and_benjamini_hochberg_adjust_like_their_definitions():
    p = [0.01, 0.04, None, 0.03, 0.2]
    holm = adjust(p, "holm")
    assert holm[2] is None
    assert holm[0] == pytest.approx(0.04) and holm[3] == pytest.approx(0.09)
    assert holm[1] == pytest.approx(0.09) and holm[4] == pytest.approx(0.2)
    bh = adjust(p, "bh")
    expected = stats.false_discovery_control([0.01, 0.04, 0.03, 0.2])
    assert [bh[i] for i in (0, 1, 3, 4)] == pytest.approx(list(expected))
    assert interval_alpha(holm, "holm") == pytest.approx(0.05 / 4)
    assert interval_alpha(bh, "bh") == pytest.approx(0.05 / 4)  # one BH rejection
    with pytest.raises(ValueError, match="multiplicity"):
        adjust([0.1], "sidak")


def test_variance_components_recover_a_planted_two_level_design():
    rng = np.random.default_rng(3)
    subsets, inits = 400, 3
    values = rng.normal(0, 0.02, subsets)[:, None] + rng.normal(0, 0.01, (subsets, inits))
    by_seed = {s: float(v) for s, v in enumerate(values.ravel())}
    c = components(by_subset(by_seed, 0, inits))
    assert (c.subsets, c.inits) == (subsets, inits)
    assert c.sd_subset == pytest.approx(0.02, rel=0.1) and c.sd_init == pytest.approx(0.01, rel=0.1)
    assert c.share_subset == pytest.approx(0.8, abs=0.05)
    assert components({0: [1.0], 1: [2.0]}) is None  # one init per subset: not separable
