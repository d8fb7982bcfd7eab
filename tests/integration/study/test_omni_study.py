"""`omni_quickstart` in smoke mode on local Ray with SQLite MLflow: primitive -> mine
(in-process) -> distill -> a grid of {labelled, + mined, + distilled}. Checks the datasets
published under the study folder, the stages' outputs and MLflow runs, the grid trials'
extra-source tags, and a report with the three arms and their costs (~55 s on 2 cores)."""

import csv
import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hmtl.orchestration.study.engine import run_study
from hmtl.orchestration.study.manifest import STUDY_MANIFEST
from hmtl.orchestration.study.smoke import smoke_study
from hmtl.orchestration.study.spec import load_study, validate_study
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.orchestration.tracking.tags import PARENT_TAG, ROLE_TAG

pytestmark = pytest.mark.integration


def test_omni_quickstart_mines_distils_and_compares_three_arms_with_costs(local_ray, tmp_path):
    storage = tmp_path / "runs"
    smoke = smoke_study(load_study("omni_quickstart"), storage / "smoke")
    # Embedding in-process: Ray Data's start costs ~40 s on the loaded 2 cores, and the
    # study's Ray Data path is `hmtl mine`'s (tests/integration/mining/test_mine.py runs it).
    raw = smoke.model_dump(mode="json", exclude={"source"})
    raw["stages"] = [{**s, "engine": "local"} if s["kind"] == "mine" else s for s in raw["stages"]]
    spec = validate_study(raw, smoke.source)
    tracking = default_tracking_uri(str(storage))
    result = run_study(spec, str(storage), tracking, echo=print)

    assert result.stopped_at is None
    folder = storage / "studies" / spec.name
    mined, distilled = result.outputs["mine"], result.outputs["distill"]
    # Published under the study folder, one folder per stage, atomically (a card, no temp).
    cards = {}
    for stage, out in (("mine", mined), ("distill", distilled)):
        path = Path(out["dataset"])
        assert path.parent == folder / "datasets" / stage
        assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
        cards[stage] = json.loads((path / "card.json").read_text())
        assert cards[stage]["num_rows"] == out["rows"] > 0
        assert out["cost/device_seconds"] > 0 and out["time/wall_seconds"] > 0
    primitive = result.outputs["primitive"]["best_checkpoint"]
    assert cards["mine"]["mining"]["model"]["checkpoint"] == primitive
    assert cards["mine"]["mining"]["pool"]["num_rows"] == 1000  # the smoke pool
    assert cards["distill"]["distill"]["source_fingerprint"] == cards["mine"]["fingerprint"]
    kept = list(cards["mine"]["mining"]["counts"].values())[-1]  # after the per-class quota
    assert max(kept.values()) <= 20  # the smoke quota
    assert cards["distill"]["num_rows"] == sum(n > 0 for n in kept.values())  # 1 a class
    manifest = json.loads((folder / STUDY_MANIFEST).read_text())
    assert manifest["outputs"]["distill"]["dataset"] == distilled["dataset"]

    client = MlflowClient(tracking)
    study_run = client.get_run(result.run_id)
    for stage, out in (("mine", mined), ("distill", distilled)):
        run = client.get_run(out["run_id"])
        tags = run.data.tags
        assert tags["hmtl.study"] == spec.name and tags["hmtl.stage"] == stage
        assert tags[PARENT_TAG] == study_run.info.run_id and tags[ROLE_TAG] == "job"
        assert tags["hmtl.dataset_fingerprint"] == cards[stage]["fingerprint"]
        assert run.info.status == "FINISHED"
        assert run.data.metrics["cost/device_seconds"] == pytest.approx(out["cost/device_seconds"])
    assert client.get_run(mined["run_id"]).data.params["mine.per_class"] == "20"
    assert client.get_run(distilled["run_id"]).data.params["distill.images_per_class"] == "1"
    experiment = client.get_experiment_by_name(spec.name).experiment_id
    trials = client.search_runs([experiment], f"tags.`{ROLE_TAG}` = 'trial'")
    arms = {}
    for run in trials:
        if run.data.tags["hmtl.stage"] == "compare":
            arms.setdefault(run.data.tags["hmtl.arm"], []).append(run.data.tags)
    assert {arm: len(runs) for arm, runs in arms.items()} == {
        "labelled": 2,
        "mined": 2,
        "distilled": 2,
    }
    for arm, stage in (("mined", "mine"), ("distilled", "distill")):
        fingerprints = {t.get("hmtl.extra_fingerprints") for t in arms[arm]}
        assert fingerprints == {cards[stage]["fingerprint"]}
    assert all("hmtl.extra_fingerprints" not in t for t in arms["labelled"])

    # The report: a stage table with the jobs' costs, and every arm with its cost per trial.
    assert "## Stages" in result.markdown
    stage_lines = [line for line in result.markdown.splitlines() if line.startswith("| mine |")]
    assert f"{mined['cost/device_seconds']:.4g}" in stage_lines[0]
    with (folder / "report" / "compare" / "cells.csv").open() as f:
        cells = {row["arm"]: row for row in csv.DictReader(f)}
    assert list(cells) == ["labelled", "mined", "distilled"]
    for row in cells.values():
        assert row["n"] == "2" and row["ci_low"] and float(row["cost/device_seconds"]) > 0
