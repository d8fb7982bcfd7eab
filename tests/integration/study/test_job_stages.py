"""Study stages that are jobs (mine, distill) run end to end: the engine runs them on the
driver in their own MLflow run (SQLite; no Ray), records their outputs and runs an
unfinished one again on resume."""

import json
from pathlib import Path

import pytest
from mining_helpers import DISTILL_STAGE as DISTILL
from mining_helpers import MINE_STAGE as MINE
from mining_helpers import (
    labelled_set,
    pool_set,
    primitive_checkpoint,
    write_study,
)
from mlflow.tracking import MlflowClient

from hmtl.orchestration.study.engine import resume_study, run_study
from hmtl.orchestration.study.manifest import STUDY_MANIFEST
from hmtl.orchestration.study.spec import load_study
from hmtl.orchestration.tracking.tags import PARENT_TAG, ROLE_TAG
from hmtl.trainables.data.synthetic import render_faces

pytestmark = pytest.mark.integration


def test_job_stages_run_on_the_driver_record_outputs_and_rerun_on_resume(tmp_path):
    model = primitive_checkpoint(tmp_path / "ckpt")
    labelled = labelled_set(tmp_path / "data", n=120)
    pool = pool_set(tmp_path / "data", render_faces(60, size=48, channels=1, seed=1).images)
    # An untrained primitive is sure of nothing: no thresholds, a quota of 5 per class.
    loose = {"min_similarity": None, "min_confidence": None, "agree": False, "per_class": 5}
    mine = {
        **MINE,
        "model": str(model),
        "pool": str(pool),
        "labelled": str(labelled),
        **loose,
    }
    tiny = {"iterations": 2, "width": 4, "real_batch": 4}
    path = write_study(tmp_path, {**mine, "engine": "local"}, {**DISTILL, **tiny})
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
