"""The `active` stage kind: its trials (strategy x start x seed, each running the loop), its
refusals before Ray, its smoke trim, and its report's arithmetic (checked against numpy and
scipy, not against the functions it reuses)."""

import numpy as np
import pytest
import yaml
from helpers import refused
from scipy import stats

from hmtl.orchestration.study.checks import StudyError
from hmtl.orchestration.study.engine import stage_space
from hmtl.orchestration.study.report.active import build_lines, metric_key
from hmtl.orchestration.study.smoke import smoke_study
from hmtl.orchestration.study.spec import validate_study
from hmtl.orchestration.sweep.space import SpaceError, validate_space

BASE = {"runtime": {"device": "cpu"}, "data": {"synthetic": {"num_samples": 200}}}


def active(**keys):
    return {"name": "al", "kind": "active", "strategies": ["random", "margin"], **keys}


def study(*stages, **top):
    return {"name": "s", "metric": "test/accuracy", "base": BASE, "stages": list(stages), **top}


def test_trials_cross_strategies_and_starts_by_seed_and_run_the_loop():
    starts = {"scratch": {}, "warm": {"reset": "warm", "train.optim.lr": 0.01}}
    spec = validate_study(study(active(starts=starts, repeats=2, loop={"cycles": 3})))
    space = stage_space(spec, spec.stage_list[0], {})
    assert space.runs == "active" and space.num_samples == 8
    seen = [(p.loop["seed"], p.tags["hmtl.start"], p.loop["strategy"]) for p in space.trials]
    assert seen == [(s, st, a) for s in (0, 1) for st in starts for a in ("random", "margin")]
    warm = space.trials[3]
    assert warm.overrides == {"optim.lr": 0.01} and warm.loop["reset"] == "warm"
    assert warm.loop["cycles"] == 3 and warm.tags["hmtl.arm"] == "margin"
    assert warm.tags["hmtl.cell"] == "margin|start=warm" and warm.tags["hmtl.seed"] == "0"
    assert space.trial_config({"trial": 3}).optim.lr == 0.01


@pytest.mark.parametrize(
    "stage, top, needle",
    [
        (active(strategies=["random", "magic"]), {}, "unknown strategy 'magic'"),
        (active(strategies=["margin"]), {}, "baseline: 'random' is not among the strategies"),
        (active(loop={"seed": 3}), {}, "'seed' is set by the stage"),
        (active(loop={"cycles": 30}), {}, "labels more than the whole pool"),
        (active(starts={"x": {"train.optim.lr": -1.0}}), {}, "starts.x: makes an invalid config"),
        (active(), {"metric": "test/knn_accuracy"}, "not reported per cycle"),
        (
            active(),
            {"resources": {"workers_per_trial": 2}},
            "an active-learning run trains on one worker",
        ),
    ],
)
def test_bad_active_stages_are_refused_in_one_line(stage, top, needle):
    with pytest.raises(StudyError) as err:
        validate_study(study(stage, **top))
    assert needle in str(err.value) and "stages[0] (al)" in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_refuses_a_bad_active_stage_before_ray(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study(active(strategies=["random", "magic"]))))
    refused(["study", str(path), "--storage", str(tmp_path / "runs")], "unknown strategy")
    assert not (tmp_path / "runs").exists()


def test_smoke_keeps_every_strategy_with_two_seeds_and_two_cycles(tmp_path):
    spec = validate_study(study(active(repeats=3, loop={"cycles": 5, "budget_fraction": 0.1})))
    space = stage_space(smoke_study(spec, tmp_path), smoke_study(spec, tmp_path).stage_list[0], {})
    assert space.num_samples == 4 and {p.loop["cycles"] for p in space.trials} == {2}


def _rows(values):
    rows = []
    for (strategy, seed), curve in values.items():
        for cycle, value in enumerate(curve):
            rows.append(
                {
                    "start": "scratch",
                    "strategy": strategy,
                    "seed": seed,
                    "cycle": cycle,
                    "labelled_fraction": 0.1 + 0.05 * cycle,
                    "value": float(value),
                    "finished": True,
                    "trial_id": f"{strategy}-{seed}",
                }
            )
    return rows


def test_report_curves_areas_and_paired_differences_match_numpy_and_scipy():
    rng = np.random.default_rng(0)
    values = {(a, s): rng.uniform(0.2, 0.8, 4) for a in ("random", "margin") for s in range(3)}
    rows = _rows(values)
    rows.append({**rows[0], "trial_id": "x", "seed": 9, "finished": False, "value": 1.0})
    lines = {ln.strategy: ln for ln in build_lines(rows, "random")}
    xs = [0.1 + 0.05 * c for c in range(4)]
    auc = {k: np.trapezoid(v, xs) / (xs[-1] - xs[0]) for k, v in values.items()}

    margin = lines["margin"]
    assert margin.fractions == pytest.approx(xs)
    at_2 = [values[("margin", s)][2] for s in range(3)]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(at_2), scale=stats.sem(at_2))
    assert (margin.points[2].low, margin.points[2].high) == pytest.approx((low, high))
    assert margin.auc_by_seed == pytest.approx({s: auc[("margin", s)] for s in range(3)})
    mine, base = [auc[("margin", s)] for s in range(3)], [auc[("random", s)] for s in range(3)]
    assert margin.auc.mean == pytest.approx(np.mean(mine))
    assert margin.versus_baseline.t.mean == pytest.approx(np.mean(mine) - np.mean(base))
    assert margin.versus_baseline.p == pytest.approx(stats.ttest_rel(mine, base).pvalue)
    assert lines["random"].versus_baseline is None
    assert lines["random"].auc.n == 3  # the unfinished run is left out
    assert metric_key("test/balanced_accuracy") == "al/test_balanced_accuracy"


def test_a_space_of_active_trials_refuses_several_workers():
    raw = {"name": "x", "num_samples": 1, "scheduler": None, "base": BASE, "space": {}}
    raw.update(runs="active", trials=[{"loop": {"strategy": "margin"}}])
    assert validate_space(raw).trial_loop({"trial": 0}) == {"strategy": "margin"}
    with pytest.raises(SpaceError, match="an active trial runs on one worker"):
        validate_space({**raw, "resources": {"workers_per_trial": 2}})
