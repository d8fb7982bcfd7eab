"""Compute at equal budget: arms that load an earlier stage's checkpoint carry that stage's
cost in the report's rows; a cost either side lacks gives None, never a partial sum."""

import pytest

from hmtl.orchestration.study.budget import fed_arms, with_fed_costs
from hmtl.orchestration.study.report.build import Design, build_report
from hmtl.orchestration.study.spec import load_study


def _row(arm, seed, value, seconds, images=100.0):
    return {
        "arm": arm,
        "cell": arm,
        "factors": {},
        "seed": seed,
        "value": value,
        "cost/device_seconds": seconds,
        "cost/images_seen": images,
        "wall_s": 1.0,
        "trial_id": f"{arm}-{seed}",
        "run_id": None,
    }


def test_shipped_study_feeds_the_finetune_and_probe_arms_from_pretrain():
    stage = load_study("hmtl_vs_pretraining").stage_list[1]
    arms = list(stage.raw["arms"])
    assert fed_arms(stage.raw, arms) == {"finetune": "pretrain", "probe": "pretrain"}


def test_stage_wide_pretrained_reference_feeds_every_arm():
    raw = {"overrides": {"model.pretrained": "${pre.best_checkpoint}"}, "arms": {"a": {}}}
    assert fed_arms(raw, ["a", "b"]) == {"a": "pre", "b": "pre"}
    assert fed_arms({"arms": {"a": {"model.pretrained": "/weights.pt"}}}, ["a"]) == {}


def test_fed_rows_add_the_feeding_stage_cost_and_others_are_untouched():
    rows = [_row("scratch", 0, 0.5, 10.0), _row("finetune", 0, 0.6, 4.0)]
    upstream = {"pre": {"cost/device_seconds": 30.0, "cost/images_seen": 1000.0}}
    out = with_fed_costs(rows, {"finetune": "pre"}, upstream)
    assert out[0] == rows[0]
    assert out[1]["cost/device_seconds"] == 34.0 and out[1]["cost/images_seen"] == 1100.0
    assert out[1]["wall_s"] == 1.0 and rows[1]["cost/device_seconds"] == 4.0  # not in place


@pytest.mark.parametrize("mine, theirs", [(None, 30.0), (4.0, None)])
def test_a_missing_cost_on_either_side_gives_none(mine, theirs):
    upstream = {"pre": {"cost/device_seconds": theirs, "cost/images_seen": 1.0}}
    (out,) = with_fed_costs([_row("finetune", 0, 0.6, mine)], {"finetune": "pre"}, upstream)
    assert out["cost/device_seconds"] is None


def test_report_compares_at_equal_budget_and_says_so(tmp_path):
    rows = [_row("scratch", s, 0.5 + s / 100, 10.0) for s in range(3)]
    rows += [_row("finetune", s, 0.6 + s / 100, 10.0) for s in range(3)]
    rows = with_fed_costs(rows, {"finetune": "pre"}, {"pre": {"cost/device_seconds": 10.0}})
    design = Design("test/accuracy", "max", "scratch", [], ["scratch", "finetune"])
    design_fed = Design(**{**design.__dict__, "fed_by": {"finetune": "pre"}})
    report = build_report(rows, design_fed, tmp_path)
    assert "finetune (+ pre)" in report.markdown
    assert "2.00× the compute" in report.markdown  # (10 + 10) / 10: pre-training counted
