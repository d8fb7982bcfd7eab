"""A stage whose seeds decide, without Ray: its `repeats:` keys, the trials of each round,
the plan of the next round from the looks so far, the smoke trim, and the report of a stage
that decided (sequential table, Holm family, power, variance sources, forest plot)."""

import csv

import pytest
import yaml
from test_study_stats import row

from hmtl.orchestration.study.checks import StudyError
from hmtl.orchestration.study.engine import stage_options
from hmtl.orchestration.study.kinds import KINDS
from hmtl.orchestration.study.report.build import Design, build_report
from hmtl.orchestration.study.sequential import next_round, saved_trials, stage_design
from hmtl.orchestration.study.smoke import smoke_study
from hmtl.orchestration.study.spec import load_study, validate_study

BASE = {"runtime": {"device": "cpu"}, "data": {"split_seed": 5}}
DECIDE = {"effect": 0.01}


def spec(repeats, arms=("baseline", "a", "b"), **stage):
    grid = {"name": "g", "kind": "grid", "arms": {a: {} for a in arms}, "repeats": repeats}
    return validate_study({"name": "s", "base": BASE, "stages": [{**grid, **stage}]})


@pytest.mark.parametrize(
    "repeats, needle",
    [
        ({"min": 3, "max": 9, "stepx": 3}, ".repeats.stepx: unknown key (valid keys here: decide"),
        ({"min": 9, "max": 3, "decide": DECIDE}, ".repeats: min: 9 is more than max (3)"),
        ({"max": 6, "decide": {"effect": 0.01, "alfa": 1}}, ".repeats.decide.alfa: unknown key"),
        ({"max": 6, "decide": {"effect": 0}}, ".repeats.decide.effect: Input should be greater"),
        ({"max": 6, "vary": ["data.split_seed"]}, "every repeat varies runtime.seed"),
        ({"max": 6, "inits_per_subset": 2}, "inits_per_subset: needs data.split_seed in vary"),
        (
            {"max": 5, "vary": ["runtime.seed", "data.split_seed"], "inits_per_subset": 2},
            "max: 5 is not a multiple of inits_per_subset (2)",
        ),
        (0, ".repeats: expected at least 1 seed"),
    ],
)
def test_bad_repeats_are_one_line_naming_the_key(tmp_path, repeats, needle):
    raw = {"name": "s", "base": BASE, "stages": [{"name": "g", "kind": "grid", "repeats": repeats}]}
    raw["stages"][0]["arms"] = {"baseline": {}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(StudyError) as err:
        load_study(path)
    assert "\n" not in str(err.value) and needle in str(err.value)


def test_rounds_run_the_undecided_cells_and_their_baseline_on_the_next_seeds():
    study = spec({"min": 3, "max": 9, "step": 3, "decide": DECIDE})
    stage = study.stage_list[0]
    assert stage.options.repeats.looks() == (3, 6, 9)
    assert stage_design(study, stage).comparisons == 2  # a and b against baseline
    first = next_round(study, stage, [])
    assert first == (range(0, 3), {"baseline", "a", "b"})
    undecided = {"a": {"decision": "undecided"}, "b": {"decision": "above"}}
    looks = [{"round": 1, "trials": 9, "decisions": undecided}]
    assert next_round(study, stage, looks) == (range(3, 6), {"a", "baseline"})
    options, overrides = stage_options(study, stage, {})
    repeats, cells = next_round(study, stage, looks)
    space = KINDS["grid"].space(study, stage, options, overrides, repeats, cells, "g.r2")
    assert space.name == "g.r2"
    assert [(p.tags["hmtl.arm"], p.overrides["runtime.seed"]) for p in space.trials] == [
        (arm, seed) for seed in (3, 4, 5) for arm in ("baseline", "a")
    ]
    looks.append({"round": 2, "trials": 6, "decisions": {**undecided, "a": {"decision": "below"}}})
    assert next_round(study, stage, looks) is None  # all decided
    assert saved_trials(study, stage, looks) == (15, 27)
    last = [*looks[:1], {"round": 2, "trials": 6, "decisions": undecided}]
    last.append({"round": 3, "trials": 6, "decisions": undecided})
    assert next_round(study, stage, last) is None  # the last look was taken


def test_repeats_can_draw_the_labelled_subset_shared_by_arms_and_inits():
    study = spec({"max": 4, "vary": ["runtime.seed", "data.split_seed"], "inits_per_subset": 2})
    stage = study.stage_list[0]
    options, overrides = stage_options(study, stage, {})
    space = KINDS["grid"].space(study, stage, options, overrides)
    keys = {(p.overrides["runtime.seed"], p.overrides["data.split_seed"]) for p in space.trials}
    assert keys == {(0, 5), (1, 5), (2, 6), (3, 6)}  # the base's subset 5, then 6
    design = KINDS["grid"].design(study, stage)
    assert (design.per_subset, design.first_seed) == (2, 0)
    assert KINDS["grid"].design(spec(3), spec(3).stage_list[0]).per_subset == 0


def test_smoke_keeps_a_deciding_stage_deciding_in_one_round(tmp_path):
    study = spec({"min": 3, "max": 9, "step": 3, "decide": DECIDE})
    smoke = smoke_study(study, tmp_path).stage_list[0].options.repeats
    assert smoke.looks() == (2,) and smoke.decide == study.stage_list[0].options.repeats.decide
    assert smoke_study(spec(5), tmp_path).stage_list[0].options.repeats.looks() == (2,)


def test_the_report_of_a_stage_that_decided(tmp_path):
    gains = {"baseline": 0.0, "a": 0.05, "b": 0.0}
    rows = [
        row(arm, s, 0.5 + gains[arm] + 0.01 * ((s * 7 + len(arm)) % 3), 0.2)
        for arm in gains
        for s in range(4)
    ]
    decisions = {
        "a|data.label_fraction=0.2": {
            "look": 1,
            "n": 4,
            "mean": 0.05,
            "sd": 0.01,
            "low": 0.03,
            "high": 0.07,
            "decision": "above",
        },
    }
    sequential = {
        "looks": [{"round": 1, "trials": 12, "decisions": decisions}],
        "design": {
            "looks": [4, 8],
            "alpha": 0.05,
            "effect": 0.01,
            "spending": "obrien_fleming",
            "comparisons": 2,
            "t": [9.9, 2.9],
        },
        "ran": 12,
        "fixed": 24,
    }
    design = Design(
        "test/accuracy",
        "max",
        "baseline",
        ["data.label_fraction"],
        list(gains),
        effect=0.01,
        sequential=sequential,
        per_subset=2,
    )
    report = build_report(rows, design, tmp_path)
    text = report.markdown
    assert "## Sequential decisions" in text and "12 trials run in 1 round(s)" in text
    assert "12 saved" in text and "O'Brien-Fleming" in text
    assert "| a\\|data.label_fraction=0.2 | 4: better | 4 | +0.05 | [0.03, 0.07] | better |" in text
    assert "p adjusted by Holm" in text and "seeds needed" in text
    assert "## Variance sources" in text and "sd subset" in text
    assert (tmp_path / "differences.png").read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "differences.csv") as f:
        table = {r["name"]: r for r in csv.DictReader(f)}
    assert table["a"]["decision"] == "above" and table["b"]["decision"] == ""
    assert float(table["a"]["p_holm"]) >= float(table["a"]["p_value"])
    headline = {h["cell"]: h for h in report.headline}
    assert headline["a|data.label_fraction=0.2"]["decision"] == "better"
    assert headline["b|data.label_fraction=0.2"]["decision"] in ("inconclusive", "better", "worse")
