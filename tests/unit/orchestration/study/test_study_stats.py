"""The study report's arithmetic, checked against scipy.stats and against planted effects."""

import math
import random
from itertools import product

import numpy as np
import pytest
from scipy import stats

from hmtl.orchestration.study.report.stats import (
    RESAMPLES,
    compare,
    design_kind,
    direction,
    factorial_effects,
    group_cells,
    leave_one_out_drops,
    one_sample,
    paired_difference,
    summarize,
)

AUX = ["jigsaw", "inpainting", "rotation"]


def factorial_arms(aux=AUX) -> dict[str, dict[str, bool]]:
    """The factorial shorthand's arms: `none`, `jigsaw`, `inpainting`, `jigsaw+inpainting`..."""
    arms = {}
    for bits in product([False, True], repeat=len(aux)):
        on = dict(zip(aux, bits[::-1], strict=True))  # the first auxiliary varies fastest
        arms["+".join(a for a in aux if on[a]) or "none"] = on
    return arms


def test_summary_matches_scipy_t_interval():
    values = [0.61, 0.58, 0.65, 0.60, 0.63]
    s = summarize(values)
    low, high = stats.t.interval(0.95, len(values) - 1, np.mean(values), stats.sem(values))
    assert s.n == 5
    assert s.mean == pytest.approx(np.mean(values))
    assert s.sd == pytest.approx(np.std(values, ddof=1))
    assert (s.low, s.high) == (pytest.approx(low), pytest.approx(high))


def test_one_value_has_a_mean_but_no_interval_and_none_has_nothing():
    assert summarize([0.7]) == summarize([0.7]).__class__(1, 0.7, None, None, None)
    assert summarize([]).mean is None
    single = one_sample({3: 0.1})
    assert single.t.n == 1 and single.t.low is None and single.p is None


def test_paired_difference_uses_only_shared_seeds_and_matches_ttest_rel():
    arm = {0: 0.71, 1: 0.64, 2: 0.69, 3: 0.75}
    base = {0: 0.66, 1: 0.62, 2: 0.61, 4: 0.50}  # seed 3 and 4 have no partner
    d = paired_difference(arm, base)
    a, b = [0.71, 0.64, 0.69], [0.66, 0.62, 0.61]
    diffs = np.subtract(a, b)
    low, high = stats.t.interval(0.95, 2, diffs.mean(), stats.sem(diffs))
    assert d.seeds == [0, 1, 2]
    assert d.t.mean == pytest.approx(diffs.mean())
    assert (d.t.low, d.t.high) == (pytest.approx(low), pytest.approx(high))
    assert d.p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert d.boot_low is None  # 3 pairs: under the bootstrap's minimum


def test_bootstrap_from_five_pairs_is_seeded_and_agrees_with_an_independent_resampling():
    rng = random.Random(1)
    diffs = {s: 0.02 + rng.gauss(0, 0.01) for s in range(8)}
    first, again = one_sample(diffs), one_sample(diffs)
    assert (first.boot_low, first.boot_high) == (again.boot_low, again.boot_high)
    values = np.array([diffs[s] for s in sorted(diffs)])
    direct = stats.bootstrap(
        (values,), np.mean, n_resamples=RESAMPLES, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval
    assert (first.boot_low, first.boot_high) == (pytest.approx(direct.low), direct.high)
    # Plain numpy, another stream: the same percentile interval up to resampling noise.
    means = values[np.random.default_rng(7).integers(0, 8, (20_000, 8))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    spread = values.std(ddof=1) / math.sqrt(8)
    assert abs(first.boot_low - low) < 0.1 * spread and abs(first.boot_high - high) < 0.1 * spread
    assert one_sample({s: diffs[s] for s in range(4)}).boot_low is None


def test_a_constant_difference_has_no_p_value():
    d = one_sample({0: 0.1, 1: 0.1, 2: 0.1})
    assert d.p is None and d.t.low == pytest.approx(0.1) and d.t.excludes_zero()


def test_factorial_recovers_planted_effects_despite_large_seed_noise():
    """y = 0.5 + seed offset (sd 0.05) + 0.04 jigsaw + 0.02 inpainting + 0.03 jigsaw·rotation
    + noise (sd 0.002). With 0/1 coding the main effect of jigsaw is 0.04 + 0.03/2, rotation's
    0.03/2, and the jigsaw×rotation contrast 0.03/2; the other interactions are 0."""
    rng = random.Random(0)
    arms = factorial_arms()
    offsets = {s: rng.gauss(0, 0.05) for s in range(4)}
    by_arm = {
        arm: {
            s: 0.5
            + offsets[s]
            + 0.04 * on["jigsaw"]
            + 0.02 * on["inpainting"]
            + 0.03 * on["jigsaw"] * on["rotation"]
            + rng.gauss(0, 0.002)
            for s in offsets
        }
        for arm, on in arms.items()
    }
    effects = factorial_effects(by_arm, arms, AUX)
    planted = {
        "jigsaw": 0.055,
        "inpainting": 0.02,
        "rotation": 0.015,
        "jigsaw×inpainting": 0.0,
        "jigsaw×rotation": 0.015,
        "inpainting×rotation": 0.0,
    }
    assert list(effects) == list(planted)
    for name, value in planted.items():
        e = effects[name]
        assert e.t.n == 4 and e.t.low <= value <= e.t.high, name
        assert e.t.excludes_zero() == (value != 0), name
    # The per-seed contrast, by hand, against scipy's one-sample t-test.
    per_seed = [
        np.mean([by_arm[a][s] for a, on in arms.items() if on["jigsaw"]])
        - np.mean([by_arm[a][s] for a, on in arms.items() if not on["jigsaw"]])
        for s in range(4)
    ]
    assert effects["jigsaw"].t.mean == pytest.approx(np.mean(per_seed))
    assert effects["jigsaw"].p == pytest.approx(stats.ttest_1samp(per_seed, 0).pvalue)


def test_factorial_uses_only_seeds_that_finished_every_arm():
    arms = factorial_arms(["a", "b"])
    by_arm = {arm: {s: float(s + on["a"]) for s in range(3)} for arm, on in arms.items()}
    del by_arm["a+b"][2]
    effects = factorial_effects(by_arm, arms, ["a", "b"])
    assert effects["a"].seeds == [0, 1] and effects["a"].t.mean == pytest.approx(1.0)
    assert effects["a×b"].t.mean == pytest.approx(0.0)


def test_leave_one_out_drop_is_all_minus_the_arm_without_each():
    arms = {"all": {"a": True, "b": True}, "all-a": {"a": False, "b": True}}
    arms["all-b"] = {"a": True, "b": False}
    gain = {"a": 0.03, "b": 0.0}
    by_arm = {
        arm: {s: 0.5 + s / 10 + sum(gain[x] for x in on if on[x]) + 1e-3 * s**2 for s in range(3)}
        for arm, on in arms.items()
    }
    drops = leave_one_out_drops(by_arm, arms, ["a", "b"])
    assert drops["a"].t.mean == pytest.approx(0.03) and drops["b"].t.mean == pytest.approx(0.0)
    assert design_kind(arms, ["a", "b"]) == "leave_one_out"
    assert design_kind(factorial_arms(["a", "b"]), ["a", "b"]) == "factorial"
    assert design_kind({"all": {"a": True, "b": True}}, ["a", "b"]) is None


def test_direction_follows_the_mode():
    assert direction(0.1, "max") == "better" and direction(0.1, "min") == "worse"
    assert direction(-0.1, "min") == "better" and direction(None, "max") == "-"


def row(arm, seed, value, lf=0.2, cost=10.0):
    return {
        "arm": arm,
        "cell": f"{arm}/lf={lf}",
        "factors": {"data.label_fraction": lf},
        "seed": seed,
        "value": value,
        "cost/device_seconds": cost,
        "cost/images_seen": 100.0,
        "wall_s": 2.0,
        "trial_id": f"{arm}-{lf}-{seed}",
        "run_id": None,
    }


def test_cells_are_ordered_by_level_then_arm_and_keep_failed_trials():
    rows = [
        row(a, s, 0.5 + s / 100, lf) for lf in (1.0, 0.05, 0.2) for a in ("b", "a") for s in (0, 1)
    ]
    rows.append(row("a", 2, None, 0.2))
    cells = group_cells(rows, ["a", "b"], ["data.label_fraction"])
    assert [(c.levels[0], c.arm) for c in cells] == [
        (lf, a) for lf in (0.05, 0.2, 1.0) for a in ("a", "b")
    ]
    failed = cells[2]
    assert len(failed.trials) == 3 and len(failed.failed) == 1 and failed.summary.n == 2
    differences, effects = compare(cells, "a", {}, [])
    assert [d.name for d in differences] == ["b"] * 3 and effects == []


def test_a_seed_twice_in_a_cell_or_an_unknown_arm_is_refused():
    with pytest.raises(ValueError, match="seed 0 appears twice"):
        group_cells([row("a", 0, 0.5), row("a", 0, None)], ["a"], ["data.label_fraction"])
    with pytest.raises(ValueError, match="arm 'c' is not in the design"):
        group_cells([row("c", 0, 0.5)], ["a"], ["data.label_fraction"])
