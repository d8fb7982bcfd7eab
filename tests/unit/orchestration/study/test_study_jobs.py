"""Study stages that are jobs (mine, distill): their options are refused in one line naming the
file, the stage and the key, before Ray starts; the engine runs them on the driver in their
own MLflow run, records their outputs and runs an unfinished one again on resume."""

import json
from pathlib import Path

import pytest
import ray
import yaml
from helpers import refused
from mining_helpers import labelled_set, pool_set, primitive_checkpoint
from mlflow.tracking import MlflowClient

from hmtl.orchestration.study.checks import StudyError
from hmtl.orchestration.study.engine import resume_study, run_study
from hmtl.orchestration.study.manifest import STUDY_MANIFEST
from hmtl.orchestration.study.spec import load_study
from hmtl.orchestration.tracking.tags import PARENT_TAG, ROLE_TAG
from hmtl.trainables.data.synthetic import render_faces

MINE = {"name": "mine", "kind": "mine", "model": "ckpt", "pool": "synthetic:100"}
DISTILL = {"name": "distill", "kind": "distill", "source": "${mine.dataset}", "images_per_class": 1}


def write(tmp_path, *stages, base=None):
    raw = {"name": "omni", "base": base or {"runtime": {"device": "cpu"}}, "stages": list(stages)}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "stages, needle",
    [
        ([{**MINE, "colour": 1}], "stages[0] (mine).colour: unknown key (valid keys of a mine"),
        ([{**MINE, "min_similarity": 2}], "stages[0] (mine).min_similarity: Input should be"),
        ([{k: v for k, v in MINE.items() if k != "model"}], "stages[0] (mine).model: Field"),
        ([{**MINE, "engine": "spark"}], "stages[0] (mine).engine: Input should be 'ray' or"),
        ([{**MINE, "overrides": {"optim.lr": 0.1}}], "(mine).overrides: a mine stage trains"),
        (
            [MINE, {**DISTILL, "augment": ["blur"]}],
            "(distill).augment: unknown ops ['blur']; choose",
        ),
        ([MINE, {**DISTILL, "images_per_class": 0}], "(distill).images_per_class: Input should"),
        ([MINE, {**DISTILL, "source": "${mine.datasets}"}], "'datasets' is not a stage output"),
        ([DISTILL], "${mine.dataset}: no earlier stage 'mine'"),
    ],
)
def test_bad_job_options_are_one_line_naming_the_stage_and_key(tmp_path, stages, needle):
    path = write(tmp_path, *stages)
    with pytest.raises(StudyError) as err:
        load_study(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and needle in message


def test_missing_inputs_are_refused_before_ray_and_leave_nothing(tmp_path):
    storage = tmp_path / "runs"
    path = write(tmp_path, {**MINE, "pool": str(tmp_path / "no-pool")})
    refused(["study", str(path), "--storage", str(storage)], "stages[0] (mine): pool: ")
    source = {**DISTILL, "source": str(labelled_set(tmp_path / "data", n=16))}
    path = write(tmp_path, {**source, "images_per_class": 9})
    line = refused(["study", str(path), "--storage", str(storage)], "stages[0] (distill): source")
    assert "has only" in line
    assert not storage.exists() and not ray.is_initialized()


@pytest.mark.integration  # ~10 s on the loaded 2 cores (MLflow's SQLite store); no Ray
def test_job_stages_run_on_the_driver_record_outputs_and_rerun_on_resume(tmp_path):
    model = primitive_checkpoint(tmp_path / "ckpt")
    labelled = labelled_set(tmp_path / "data", n=120)
    pool = pool_set(tmp_path / "data", render_faces(60, size=48, channels=1, seed=1).images)
    # An untrained primitive is sure of nothing: no thresholds, a quota of 5 per class.
    loose = {"min_similarity": None, "min_confidence": None, "agree": False, "per_class": 5}
    mine = {**MINE, "model": str(model), "pool": str(pool), "labelled": str(labelled), **loose}
    tiny = {"iterations": 2, "width": 4, "real_batch": 4}
    path = write(tmp_path, {**mine, "engine": "local"}, {**DISTILL, **tiny})
    storage = tmp_path / "runs"
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"

    result = run_study(load_study(path), str(storage), tracking, echo=lambda line: None)

    assert result.stopped_at is None
    folder = storage / "studies" / "omni"
    assert not (folder / "sweeps").exists()  # jobs only: no sweep (Ray may be up for others)
    manifest = json.loads((folder / STUDY_MANIFEST).read_text())
    mined, distilled = manifest["outputs"]["mine"], manifest["outputs"]["distill"]
    assert mined["dataset"].startswith(str(folder / "datasets" / "mine"))
    kept = json.loads(Path(mined["dataset"], "card.json").read_text())["mining"]["counts"]
    per_class = list(kept.values())[-1]  # after the last filter, the quota
    assert 0 < max(per_class.values()) <= 5 and mined["rows"] == sum(per_class.values())
    card = json.loads(Path(distilled["dataset"], "card.json").read_text())
    assert card["distill"]["source"] == mined["dataset"]
    assert distilled["rows"] == sum(n > 0 for n in per_class.values())  # one image a class
    client = MlflowClient(tracking)
    for out in (mined, distilled):
        run = client.get_run(out["run_id"])
        assert run.info.status == "FINISHED" and run.data.tags[ROLE_TAG] == "job"
        assert run.data.tags[PARENT_TAG] == result.run_id
    assert "| distill | distill |" in result.markdown  # the stage table, with its costs

    # Killed before distill recorded its outputs: resume runs it again into the same run,
    # reusing the identical published dataset; mine is not run again.
    del manifest["outputs"]["distill"]
    (folder / STUDY_MANIFEST).write_text(json.dumps(manifest))
    lines = []
    again = resume_study(str(folder), echo=lines.append)
    assert again.outputs["distill"]["dataset"] == distilled["dataset"]
    assert again.outputs["distill"]["run_id"] == distilled["run_id"]
    assert again.outputs["mine"] == mined
    assert any(line.startswith("stage mine: finished earlier, reused") for line in lines)
    assert len(list((folder / "datasets" / "distill").iterdir())) == 1
