"""`hmtl distill` end to end: a tiny run publishes a prepared dataset with its provenance that
`data.extra_sources` trains on (tracked in MLflow); the matching loss goes down."""

import json

import numpy as np
import pytest
from mining_helpers import labelled_set

from hmtl.trainables.data.prepared import read_prepared
from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.distill import DistillSettings, distill

pytestmark = pytest.mark.integration

TINY = ["--iterations", "3", "--width", "4", "--real-batch", "4"]


@pytest.fixture
def labelled(tmp_path):
    return labelled_set(tmp_path / "data", n=80)


def test_publishes_a_trainable_dataset_with_provenance(
    tmp_path, labelled, tiny_config, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # MLflow's SQLite store puts artifacts under ./mlruns
    from click.testing import CliRunner

    from hmtl.orchestration.cli.main import main
    from hmtl.trainables.data.dataset import load_splits

    out = tmp_path / "out"
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["distill", str(labelled), "--images-per-class", "2", "--out", str(out), *TINY]
    result = CliRunner().invoke(main, [*args, "--tracking-uri", tracking])
    assert result.exit_code == 0, result.output
    (folder,) = [p for p in (out / "distilled").iterdir()]
    card = json.loads((folder / "card.json").read_text())
    source = json.loads((labelled / "card.json").read_text())
    prov = card["distill"]
    assert prov["source_fingerprint"] == source["fingerprint"]
    assert prov["settings"]["images_per_class"] == 2 and prov["settings"]["iterations"] == 3
    assert prov["settings"]["seed"] == 0 and "ConvNet-3 width 4" in prov["settings"]["network"]
    present = sorted(
        set(source["counts"]["all"]) - {k for k, v in source["counts"]["all"].items() if v == 0}
    )
    data = read_prepared(folder)
    assert len(data.images) == 2 * len(present) == card["num_rows"]
    assert (data.split == "train").all() and np.bincount(data.labels["expression"]).max() == 2
    splits = load_splits(tiny_config(f"data.extra_sources=[{folder}]").data)
    (entry,) = splits.info.card["extra_sources"]
    assert entry["rows"] == len(data.images) and entry["fingerprint"] == card["fingerprint"]
    assert not list((out / "distilled").glob(".tmp-*"))
    run = _logged_run(tracking)
    assert run.data.params["distill.iterations"] == "3" and run.data.params["distill.lr"] == "1.0"
    assert run.data.tags["hmtl.dataset_fingerprint"] == card["fingerprint"]
    assert run.data.tags["hmtl.distill_source_fingerprint"] == source["fingerprint"]
    assert run.info.status == "FINISHED"


def _logged_run(tracking: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("hmtl-distill")
    (run,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, "distill/loss")
    assert [m.step for m in history] == [0, 1, 2]
    return run


def test_matching_loss_goes_down():
    faces = render_faces(64, size=48, channels=1, seed=0, num_identities=10)
    settings = DistillSettings(images_per_class=1, iterations=20, width=8, real_batch=8, augment=())
    result = distill(faces.images, faces.expression, settings)
    assert np.mean(result.losses[-5:]) < 0.7 * np.mean(result.losses[:5])
    assert result.images.dtype == np.uint8 and result.images.shape[1:] == (48, 48, 1)
