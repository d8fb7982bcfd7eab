"""`hmtl_vs_pretraining --smoke` end to end on local Ray: the pre-training stage is judged by
k-NN accuracy, its best checkpoint feeds the fine-tune and probe arms (lineage tags, and a
probe's frozen backbone is the pre-trained one), and the report holds every arm."""

import csv

import pytest
import torch
from mlflow.tracking import MlflowClient

from hmtl.orchestration.study.engine import run_study
from hmtl.orchestration.study.results import stage_space
from hmtl.orchestration.study.smoke import smoke_study
from hmtl.orchestration.study.spec import load_study
from hmtl.orchestration.sweep.status import trial_rows
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.orchestration.tracking.tags import FROM_TAG, ROLE_TAG, SHA_TAG
from hmtl.trainables.checkpoint import load_checkpoint

pytestmark = pytest.mark.integration

FED = {"finetune", "probe"}


def _backbone(folder: str) -> dict[str, torch.Tensor]:
    state = load_checkpoint(folder)["model"]
    return {k: v for k, v in state.items() if k.startswith("backbone.")}


def test_pretraining_feeds_the_finetune_and_probe_arms(local_ray, tmp_path):
    storage = tmp_path / "runs"
    tracking = default_tracking_uri(str(storage))
    spec = smoke_study(load_study("hmtl_vs_pretraining"), storage / "smoke")
    result = run_study(spec, str(storage), tracking, echo=lambda line: None)
    assert result.stopped_at is None

    pretrain = result.outputs["pretrain"]
    rows, metric, _ = trial_rows(pretrain["path"])
    assert metric == "val/knn_accuracy" and rows[0].peak.value == pretrain["best_value"]
    checkpoint = pretrain["best_checkpoint"]
    assert checkpoint == rows[0].peak.checkpoint

    experiment = MlflowClient(tracking).get_experiment_by_name(spec.name)
    trials = MlflowClient(tracking).search_runs(
        [experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial' and tags.`hmtl.stage` = 'compare'"
    )
    assert len(trials) == 16  # 4 arms x 2 augmentation levels x 2 seeds
    for run in trials:
        tags, params = run.data.tags, run.data.params
        if tags["hmtl.arm"] in FED:
            assert tags[FROM_TAG] == checkpoint == params["model.pretrained"]
            assert len(tags[SHA_TAG]) == 64
        else:
            assert FROM_TAG not in tags and params["model.pretrained"] == "None"

    # A linear probe trains its head only: its backbone is still the pre-trained one.
    grid, _, _ = trial_rows(result.outputs["compare"]["path"])
    points = stage_space(result.outputs["compare"]["path"]).trials
    probe = next(r for r in grid if points[int(r.params["trial"])].tags["hmtl.arm"] == "probe")
    pretrained, probed = _backbone(checkpoint), _backbone(probe.peak.checkpoint)
    assert pretrained.keys() == probed.keys() and pretrained
    assert all(torch.equal(pretrained[k], probed[k]) for k in pretrained)

    report = storage / "studies" / spec.name / "report" / "compare"
    with open(report / "cells.csv") as f:
        cells = list(csv.DictReader(f))
    assert {c["arm"] for c in cells} == {"scratch", "finetune", "probe", "hmtl"}
    assert all(int(c["n"]) == 2 for c in cells)
    assert "finetune (+ pretrain), probe (+ pretrain)" in result.markdown
