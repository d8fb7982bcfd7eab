"""`build_report` on a real (tiny) sweep: figures, trial table, artifacts on the parent run."""

import csv
import re
from pathlib import Path

import boto3
import optuna
import pytest
from helpers import tiny_space
from matplotlib.figure import Figure
from matplotlib.image import imread
from mlflow.tracking import MlflowClient

from hmtl.orchestration.sweep.report import build_report
from hmtl.orchestration.sweep.report_plots import Rung, plot_importances, plot_rung_importances
from hmtl.orchestration.sweep.run import run_sweep, sweep_path
from hmtl.orchestration.sweep.space import SpaceError
from hmtl.orchestration.sweep.status import best_row, trial_rows
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.orchestration.tracking.tags import ROLE_TAG, SWEEP_TAG

pytestmark = [pytest.mark.integration]


def _space(tmp_path, **overrides):
    return tiny_space(
        tmp_path,
        name="it-report",
        num_samples=4,
        scheduler={"type": "asha", "max_epochs": 2, "grace_period": 1},
        space={
            "optim.lr": "loguniform(1e-4, 1e-2)",
            "tasks.loss_weights.rotation": "uniform(0.0, 1.0)",
            "augmentation.level": "choice(none, weak, strong)",
        },
        **overrides,
    )


SEARCHED = ["optim.lr", "tasks.loss_weights.rotation", "augmentation.level"]
FIGURES = [
    "optimization_history.png",
    "param_importances.png",
    "metric_vs_optim.lr.png",
    "metric_vs_tasks.loss_weights.rotation.png",
    "augmentation_levels.png",
]


def test_report_of_a_real_sweep(local_ray, s3_server, tmp_path, monkeypatch):
    tracking = default_tracking_uri(str(tmp_path))
    run_sweep(_space(tmp_path), str(tmp_path), tracking, verbose=0)
    path = sweep_path(str(tmp_path), "it-report")

    report = build_report(path, out=tmp_path / "report")

    names = [*FIGURES, "trials.csv", "trials.md"]
    assert [f.name for f in report.files] == names
    assert sorted(p.name for p in report.folder.iterdir()) == sorted(names)  # no partials
    for file in report.files:
        assert file.stat().st_size > 0
    for name in FIGURES:
        image = imread(report.folder / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100

    with open(report.folder / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert {"trial", "tune_state", "optuna_state", "epochs", "val/balanced_accuracy"} <= set(
        rows[0]
    )
    assert all(row[key] != "" for row in rows for key in SEARCHED)
    assert {row["optuna_state"] for row in rows} <= {"COMPLETE", "PRUNED"}
    assert {row["augmentation.level"] for row in rows} <= {"none", "weak", "strong"}

    table = (report.folder / "trials.md").read_text().splitlines()
    body = [line for line in table if line.startswith("| ") and "trial" not in line]
    assert len(body) == 4
    best = max(rows, key=lambda row: float(row["val/balanced_accuracy"]))
    assert body[0].startswith(f"| {best['trial']} |")  # best first

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("it-report")
    (parent,) = client.search_runs(
        [experiment.experiment_id],
        f"tags.`{ROLE_TAG}` = 'sweep' and tags.`{SWEEP_TAG}` = 'it-report'",
    )
    assert report.parent_run_id == parent.info.run_id
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert logged == {f"report/{name}" for name in names}

    # Default folder under the working directory; no tracking database, no logging (and
    # none created).
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "elsewhere" / "mlflow.db"
    again = build_report(path, tracking_uri=f"sqlite:///{missing}")
    assert again.folder == tmp_path / "hmtl-runs" / "reports" / "it-report"
    assert again.parent_run_id is None and not missing.exists()
    assert len(again.files) == len(names)

    # The same sweep copied to S3: read through the store's filesystem, same table.
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint)
    for file in Path(path).rglob("*"):
        if file.is_file():
            key = f"copy/sweeps/it-report/{file.relative_to(path).as_posix()}"
            s3.upload_file(str(file), s3_server.bucket, key)
    remote = build_report(s3_server.uri("copy/sweeps/it-report"), out=tmp_path / "from-s3")
    assert (remote.folder / "trials.csv").read_text() == (report.folder / "trials.csv").read_text()
    assert remote.parent_run_id == parent.info.run_id


def test_not_a_sweep_folder_is_one_line(tmp_path):
    folder = tmp_path / "nothing-here"
    folder.mkdir()
    with pytest.raises(SpaceError, match=re.escape(str(folder))) as err:
        build_report(str(folder), out=tmp_path / "out")
    assert "not a sweep folder" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("objectives", [1, 2])
@pytest.mark.parametrize("complete", [1, 3])
def test_importances_draw_or_say_why(objectives, complete):
    metrics = ["val/balanced_accuracy", "train/loss"][:objectives]
    space = _space(Path("/nonexistent"), metric=metrics, mode=["max", "min"][:objectives])
    study = optuna.create_study(directions=["maximize", "minimize"][:objectives])
    for i in range(complete):
        params = {"optim.lr": 10 ** -(2 + i), "tasks.loss_weights.rotation": i / 3}
        params["augmentation.level"] = "weak"
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=space.distributions(),
                values=[float(i), float(-i)][:objectives],
            )
        )
    ax = Figure().add_subplot()
    plot_importances(ax, study, space)
    notes = [t.get_text() for t in ax.texts]
    if complete == 1:
        assert notes and notes[0].startswith("not enough trials")
    else:
        assert not notes and len(ax.patches) == 2  # lr and rotation vary; the level does not


def test_a_sweep_asha_mostly_pruned_has_a_report_and_summary_at_its_end(local_ray, tmp_path):
    # One trial at a time; each later one carries a heavier jigsaw weight, so its train/loss
    # at the first rung is worse than the median so far and ASHA stops it there: 3 of 4.
    weights = [0, 10, 20, 50]
    space = tiny_space(
        tmp_path,
        epochs=3,
        name="it-pruned",
        num_samples=4,
        max_concurrent_trials=1,
        metric="train/loss",
        mode="min",
        register_model="it-pruned-best",
        scheduler={"type": "asha", "max_epochs": 3, "grace_period": 1, "reduction_factor": 2},
        search={
            "sampler": "tpe",
            "seed": 0,
            "points_to_evaluate": [
                {"tasks.loss_weights.jigsaw": w, "optim.lr": 1e-3 * (i + 1)}
                for i, w in enumerate(weights)
            ],
        },
        space={
            "tasks.loss_weights.jigsaw": "choice(0, 10, 20, 50)",
            "optim.lr": "uniform(1e-3, 5e-3)",
        },
    )
    tracking = default_tracking_uri(str(tmp_path))
    result = run_sweep(space, str(tmp_path), tracking, verbose=0)
    path = sweep_path(str(tmp_path), "it-pruned")
    rows, metric, mode = trial_rows(path)
    assert sorted(r.epoch for r in rows) == [1, 1, 1, 3]

    # Importances over all 4 trials at ASHA's first rung, not "2 complete ones needed".
    ax = Figure().add_subplot()
    plot_rung_importances(ax, rows, space, Rung(1, [1, 2, 3], True))
    assert not ax.texts and len(ax.patches) == 2
    assert "4 trials\ntrain/loss at ASHA rung at epoch 1 (the grace period)" in ax.get_title()

    # The parent run has the answer without `hmtl report`: the same best as the summary.
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("it-pruned")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (parent,) = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'sweep'")
    data = parent.data
    assert data.metrics["trials/stopped_early"] == 3 and data.metrics["trials/complete"] == 1
    assert data.metrics["epochs_spent"] == 6 == result.epochs_run
    assert data.tags["hmtl.best_trial"] == result.best_trial == best_row(rows, mode).trial_id
    assert data.metrics["best/train/loss"] == pytest.approx(result.best_metrics[metric])
    assert data.tags["hmtl.best_epoch"] == str(result.best_epoch)
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/param_importances.png" in logged and "report/trials.csv" in logged

    # Every trial run has its dataset and its model; the best one is registered.
    trials = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert len(trials) == 4
    for run in trials:
        assert len(run.inputs.dataset_inputs) == 1 and len(run.outputs.model_outputs) == 1
    (version,) = client.search_model_versions("name = 'it-pruned-best'")
    best_run = next(r for r in trials if r.data.tags["hmtl.trial_id"] == result.best_trial)
    assert version.run_id == best_run.info.run_id
