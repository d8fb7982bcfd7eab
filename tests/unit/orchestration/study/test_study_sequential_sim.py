"""The sequential design's error rates, shown by simulation (no training): simulated paired
differences go through the decision code a study uses (orchestration/study/decide/), under
the null and under real effects, against the naive procedure of re-testing at 5% after every
round. benchmarks/sequential_sim.py prints the full table (BENCHMARKS.md)."""

import pytest

from hmtl.orchestration.study.decide.power import seeds_needed
from hmtl.orchestration.study.decide.rules import make_design, plan_looks
from hmtl.orchestration.study.decide.simulate import false_codes, rate_ci, run

STUDIES = 20_000
DESIGN = make_design(plan_looks(3, 12, 3), 0.05, 0.5)  # effects in sds of the differences


def test_false_decisions_under_the_null_stay_at_alpha_and_the_naive_rate_is_inflated():
    wrong = false_codes(0.0, DESIGN.effect)
    sequential = run(DESIGN, 0.0, STUDIES, seed=1).rate(*wrong)
    naive = run(DESIGN, 0.0, STUDIES, seed=1, naive=True).rate(*wrong)
    assert sequential <= DESIGN.alpha and rate_ci(sequential, STUDIES)[0] <= DESIGN.alpha
    assert rate_ci(naive, STUDIES)[0] > DESIGN.alpha and naive > 2 * sequential


@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_under_an_effect_wrong_decisions_stay_below_alpha_and_seeds_beat_a_fixed_design(delta):
    outcome = run(DESIGN, delta, STUDIES, seed=2)
    assert outcome.rate(*false_codes(delta, DESIGN.effect)) <= DESIGN.alpha
    found = outcome.rate(1)  # ABOVE: the effect found
    fixed = seeds_needed(delta, 1.0, DESIGN.alpha, min(found, 0.999))
    if delta >= 1.0:  # where the design has real power, it needs fewer seeds on average
        assert outcome.seeds.mean() < fixed
