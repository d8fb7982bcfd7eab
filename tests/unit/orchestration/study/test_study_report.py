"""build_report: the files a study's report writes and what they say."""

import csv
import io

import pytest
from test_study_stats import factorial_arms, row

from hmtl.orchestration.study.report.build import Design, build_report

PNG = b"\x89PNG\r\n\x1a\n"
LF = "data.label_fraction"


def read_csv(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_factorial_report_writes_every_file_and_lists_the_failed_trial(tmp_path):
    aux = ["jigsaw", "inpainting"]
    arms = factorial_arms(aux)
    effect = {"none": 0.0, "jigsaw": 0.05, "inpainting": 0.01, "jigsaw+inpainting": 0.06}
    rows = [
        row(arm, s, 0.5 + effect[arm] + s / 50 + 0.001 * (s * len(arm) % 3), lf, 10.0 + len(arm))
        for lf in (0.2, 1.0)
        for arm in arms
        for s in range(3)
    ]
    rows[-1]["value"] = None  # jigsaw+inpainting, label fraction 1.0, seed 2
    design = Design("test/accuracy", "max", "none", [LF], list(arms), aux, arms)
    report = build_report(rows, design, tmp_path)

    names = [f.name for f in report.files]
    assert names == [
        "trials.csv",
        "cells.csv",
        "differences.csv",
        "effects.csv",
        "differences.png",
        f"metric-vs-{LF}.png",
        "metric-vs-cost.png",
        "report.md",
    ]
    for f in report.files:
        assert f.stat().st_size > 0
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == PNG
    assert (tmp_path / "report.md").read_text() == report.markdown
    assert not list(tmp_path.glob(".*partial*"))

    trials = read_csv(tmp_path / "trials.csv")
    assert len(trials) == 24 and [t["trial_id"] for t in trials if t["failed"] == "True"] == [
        "jigsaw+inpainting-1.0-2"
    ]
    cells = read_csv(tmp_path / "cells.csv")
    failed = next(c for c in cells if c["arm"] == "jigsaw+inpainting" and c[LF] == "1.0")
    assert (failed["trials"], failed["failed"], failed["n"]) == ("3", "1", "2")
    assert "24 trials: 23 finished, 1 failed" in report.markdown
    assert "| jigsaw+inpainting-1.0-2 | jigsaw+inpainting |" in report.markdown
    assert "| 2 | none | - |" in report.markdown  # seed, value, run of the failed trial

    diffs = read_csv(tmp_path / "differences.csv")
    jig = next(d for d in diffs if d["name"] == "jigsaw" and d[LF] == "0.2")
    assert float(jig["mean"]) == pytest.approx(0.05, abs=0.002)
    assert jig["excludes_zero"] == "True" and jig["pairs"] == "3"
    assert float(jig["cost_ratio"]) == pytest.approx(16 / 14)
    assert "for 1.14× the compute" in report.markdown
    assert "| jigsaw | 6 | 16 | 100 | 2 | 1.14× |" in report.markdown  # compute per arm
    short = next(d for d in diffs if d["name"] == "jigsaw+inpainting" and d[LF] == "1.0")
    assert (short["pairs"], short["unpaired_seeds"]) == ("2", "2")

    effects = read_csv(tmp_path / "effects.csv")
    assert [(e["kind"], e["name"]) for e in effects[:3]] == [
        ("main", "jigsaw"),
        ("main", "inpainting"),
        ("interaction", "jigsaw×inpainting"),
    ]
    # Planted: jigsaw +0.05, inpainting +0.01, both +0.06 → main effects 0.05 and 0.01.
    assert float(effects[0]["mean"]) == pytest.approx(0.05, abs=0.002)
    assert float(effects[1]["mean"]) == pytest.approx(0.01, abs=0.002)
    assert "## Auxiliary attribution: 2^2 factorial" in report.markdown


def test_one_seed_cells_missing_seeds_and_mode_min(tmp_path):
    rows = [row("scratch", 0, 0.9), row("scratch", 1, 0.8), row("hmtl", 0, 0.7)]
    design = Design("val/loss", "min", "scratch", [LF], ["scratch", "hmtl"], [], {})
    report = build_report(rows, design, tmp_path)
    cells = {c["arm"]: c for c in read_csv(tmp_path / "cells.csv")}
    assert cells["hmtl"]["n"] == "1" and cells["hmtl"]["sd"] == "" and cells["hmtl"]["ci_low"] == ""
    assert "n = 1: none" in report.markdown
    (diff,) = read_csv(tmp_path / "differences.csv")
    assert (diff["pairs"], diff["unpaired_seeds"], diff["ci_low"]) == ("1", "1", "")
    assert float(diff["mean"]) == pytest.approx(-0.2)
    assert "| 0.2 | hmtl | 1 | -0.2 | - | - | - | better | no | 1 |" in report.markdown
    assert not (tmp_path / "effects.csv").exists()
    assert "None." in report.markdown.split("## Failed trials")[1]


def test_two_categorical_and_numeric_factors_get_one_figure_each(tmp_path):
    rows = []
    for aug in ("weak", "none"):  # kept in file order; numbers sorted
        for lf in (1.0, 0.01):
            for arm, gain in (("scratch", 0.0), ("pretrained", 0.1)):
                for s in range(2):
                    r = row(arm, s, 0.4 + gain + lf / 5 + s / 100, lf)
                    r["factors"]["augmentation.level"] = aug
                    r["cell"] += f"/aug={aug}"
                    rows.append(r)
    design = Design(
        "test/accuracy", "max", "scratch", ["augmentation.level", LF], ["scratch", "pretrained"]
    )
    report = build_report(rows, design, tmp_path)
    pngs = [f.name for f in report.files if f.suffix == ".png"]
    assert pngs == [
        "differences.png",
        "metric-vs-augmentation.level.png",
        f"metric-vs-{LF}.png",
        "metric-vs-cost.png",
    ]
    assert all(f.read_bytes()[:8] == PNG for f in report.files if f.suffix == ".png")
    levels = [(c["augmentation.level"], c[LF]) for c in read_csv(tmp_path / "cells.csv")][::2]
    assert levels == [(a, lf) for a in ("weak", "none") for lf in ("0.01", "1.0")]


def test_a_baseline_without_finished_trials_leaves_nothing_to_pair(tmp_path):
    rows = [row("scratch", 0, None), row("scratch", 1, float("nan"))]
    rows += [row("hmtl", 0, 0.5), row("hmtl", 1, 0.6)]
    design = Design("test/accuracy", "max", "scratch", [LF], ["scratch", "hmtl"])
    report = build_report(rows, design, tmp_path)
    cells = {c["arm"]: c for c in read_csv(tmp_path / "cells.csv")}
    assert (cells["scratch"]["failed"], cells["scratch"]["n"], cells["scratch"]["mean"]) == (
        "2",
        "0",
        "",
    )
    (diff,) = read_csv(tmp_path / "differences.csv")
    assert (diff["pairs"], diff["unpaired_seeds"], diff["mean"]) == ("0", "0 1", "")
    assert "4 trials: 2 finished, 2 failed" in report.markdown
    assert "| scratch-0.2-1 | scratch | scratch/lf=0.2 | 1 | nan | - |" in report.markdown


def test_no_rows_still_give_a_report(tmp_path):
    design = Design("test/accuracy", "max", "scratch", [LF], ["scratch", "hmtl"])
    report = build_report([], design, tmp_path)
    assert "0 trials: 0 finished, 0 failed" in report.markdown
    assert all(f.stat().st_size > 0 for f in report.files)


def test_leave_one_out_and_no_factors(tmp_path):
    arms = {"all": {"a": True, "b": True}, "all-a": {"a": False, "b": True}}
    arms["all-b"] = {"a": True, "b": False}
    value = {"all": 0.7, "all-a": 0.6, "all-b": 0.7}
    rows = [{**row(arm, s, value[arm] + s / 20), "factors": {}} for arm in arms for s in range(3)]
    design = Design("test/accuracy", "max", "all", [], list(arms), ["a", "b"], arms)
    report = build_report(rows, design, tmp_path)
    assert "metric-by-arm.png" in [f.name for f in report.files]
    effects = {e["name"]: e for e in read_csv(tmp_path / "effects.csv")}
    assert effects["a"]["kind"] == "leave_one_out"
    assert float(effects["a"]["mean"]) == pytest.approx(0.1) and effects["a"]["p_value"] == ""
    assert "## Auxiliary attribution: leave one out" in report.markdown


def test_a_bad_design_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "report"
    with pytest.raises(ValueError, match="baseline 'x' is not one of the arms"):
        build_report([row("a", 0, 0.5)], Design("m", "max", "x", [LF], ["a"]), out)
    with pytest.raises(ValueError, match="mode must be max or min"):
        build_report([row("a", 0, 0.5)], Design("m", "up", "a", [LF], ["a"]), out)
    with pytest.raises(ValueError, match="seed 0 appears twice"):
        build_report(
            [row("a", 0, 0.5), row("a", 0, 0.6)], Design("m", "max", "a", [LF], ["a"]), out
        )
    assert not out.exists()
