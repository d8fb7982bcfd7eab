"""Studies on local Ray with SQLite MLflow: a tiny grid end to end (rows, tags, nesting,
report), and a study killed in its second stage, then resumed."""

import json
from pathlib import Path

import kill
import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from hmtl.orchestration.cli.main import main
from hmtl.orchestration.study.engine import resume_study, run_study
from hmtl.orchestration.study.manifest import STUDY_MANIFEST
from hmtl.orchestration.study.results import grid_rows
from hmtl.orchestration.study.smoke import smoke_study
from hmtl.orchestration.study.spec import load_study, shipped_studies
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.orchestration.tracking.tags import PARENT_TAG, ROLE_TAG

pytestmark = pytest.mark.integration


def _study_file(tmp_path: Path, stages: list, epochs: int = 1) -> Path:
    base = {
        "data": {
            "image_size": 48,
            "batch_size": 32,
            "cache_dir": str(tmp_path / "datasets"),
            "synthetic": {"num_samples": 320, "num_identities": 20},
            "label_fraction": 0.5,
        },
        "model": {"width": 8},
        "tasks": {"aux": {"inpainting": {"masks": "rectangles"}}},
        "schedule": {"epochs": epochs, "warmup_epochs": 0.0},
        "runtime": {"device": "cpu", "num_threads": 1},
    }
    raw = {"name": "it-study", "metric": "test/accuracy", "base": base, "stages": stages}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


GRID = {
    "name": "grid",
    "kind": "grid",
    "arms": {"baseline": {}, "inpainting": {"tasks.loss_weights.inpainting": 0.3}},
    "repeats": 2,
}


def _runs(client: MlflowClient, role: str):
    experiment = client.get_experiment_by_name("it-study")
    return client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = '{role}'")


# Seeds in rounds: 2 seeds, then a third while the comparison is undecided (at 2 pairs the
# first look's boundary is t = 12.7, so with a margin this small a third round is all but
# certain; the test holds either way).
SEQUENTIAL = {"min": 2, "max": 3, "step": 1, "decide": {"effect": 0.001}}


def test_grid_study_rows_tags_nesting_report_and_rounds(local_ray, tmp_path):
    storage = tmp_path / "runs"
    tracking = default_tracking_uri(str(storage))
    spec = load_study(_study_file(tmp_path, [{**GRID, "repeats": SEQUENTIAL}]))
    lines = []
    result = run_study(spec, str(storage), tracking, echo=lines.append)

    study_path = storage / "studies" / "it-study"
    manifest = json.loads((study_path / STUDY_MANIFEST).read_text())
    looks = manifest["rounds"]["grid"]
    rounds = len(looks)
    seeds = list(range(1 + rounds))  # 2 seeds, then one more per later round
    assert result.stopped_at is None and result.outputs["grid"]["trials"] == 2 * len(seeds)
    assert result.outputs["grid"]["saved_trials"] == 6 - 2 * len(seeds)
    assert [look["round"] for look in looks] == list(range(1, rounds + 1))
    decision = looks[-1]["decisions"]["inpainting"]["decision"]
    assert decision in ("above", "below", "equivalent") or rounds == 2
    assert any("saved" in line for line in lines)
    rows = grid_rows(spec, study_path.joinpath("sweeps", "grid").as_posix(), [])
    assert sorted((r["arm"], r["seed"]) for r in rows) == [
        (arm, s) for arm in ("baseline", "inpainting") for s in seeds
    ]
    assert {r["round"] for r in rows} == set(range(1, rounds + 1))
    assert all(0.0 <= r["value"] <= 1.0 and r["wall_s"] > 0 for r in rows)

    client = MlflowClient(tracking)
    (study_run,) = _runs(client, "study")
    stage_runs = _runs(client, "sweep")  # one per round, each under the study run
    trials = _runs(client, "trial")
    assert len(stage_runs) == rounds
    assert {r.data.tags[PARENT_TAG] for r in stage_runs} == {study_run.info.run_id}
    assert result.outputs["grid"]["run_id"] in {r.info.run_id for r in stage_runs}
    assert {t.data.tags[PARENT_TAG] for t in trials} <= {r.info.run_id for r in stage_runs}
    tagged = sorted(
        (t.data.tags["hmtl.arm"], t.data.tags["hmtl.seed"], t.data.tags["hmtl.cell"])
        for t in trials
    )
    assert tagged == [(a, str(s), a) for a in ("baseline", "inpainting") for s in seeds]
    assert {t.data.tags["hmtl.study"] for t in trials} == {"it-study"}
    assert {t.data.params["runtime.seed"] for t in trials} == set(map(str, seeds))
    assert {t.data.params["data.split_seed"] for t in trials} == {"0"}  # paired: one split
    logged = [a.path for a in client.list_artifacts(study_run.info.run_id, "report/grid")]
    assert "report/grid/report.md" in logged and study_run.info.status == "FINISHED"
    assert "report/grid/differences.png" in logged
    assert "inpainting" in result.markdown and "## Sequential decisions" in result.markdown
    assert "Holm" in result.markdown
    # The answer on the study's run: description, Δ, interval, adjusted p, the decision.
    answer = client.get_run(study_run.info.run_id).data
    verdict = {"above": "better", "below": "worse"}.get(decision, decision)
    assert answer.tags["hmtl.decision.grid.inpainting"] == verdict
    assert {"grid/inpainting/delta", "grid/inpainting/p_adjusted"} <= set(answer.metrics)
    assert answer.metrics["grid/saved_trials"] == 6 - 2 * len(seeds)
    assert "inpainting" in answer.tags["mlflow.note.content"]

    # The report is rebuilt from storage; a finished study resumes without running a trial.
    report = CliRunner().invoke(main, ["report", str(study_path)])
    assert report.exit_code == 0, report.output
    n = len(seeds)
    assert f"| inpainting | {n} | 0 | {n} |" in report.output  # arm, trials, failed, n
    again = resume_study(str(study_path), echo=lambda line: None)
    assert again.outputs == result.outputs and len(_runs(client, "trial")) == 2 * n

    # Killed after its last round but before the look was recorded: resumed, the round's
    # stored trials give the same look, and no trial runs again.
    manifest["rounds"]["grid"] = looks[:-1]
    del manifest["outputs"]["grid"]
    (study_path / STUDY_MANIFEST).write_text(json.dumps(manifest))
    again = resume_study(str(study_path), echo=lambda line: None)
    resumed = json.loads((study_path / STUDY_MANIFEST).read_text())["rounds"]["grid"]
    assert resumed == looks and again.outputs["grid"]["trials"] == 2 * n
    assert len(_runs(client, "trial")) == 2 * n


@pytest.mark.slow
def test_study_killed_in_stage_two_resumes_without_redoing_stage_one(local_ray, tmp_path):
    stages = [
        {"name": "pre", "kind": "train", "overrides": {"optim.lr": 0.002}},
        {**GRID, "arms": {"baseline": {}, "tuned": "${pre.best_config}"}},
    ]
    path = _study_file(tmp_path, stages, epochs=3)
    storage = tmp_path / "runs"
    study_path = storage / "studies" / "it-study"
    grid = study_path / "sweeps" / "grid"
    address = local_ray.get_runtime_context().gcs_address
    proc = kill.start("study", str(path), "--storage", str(storage), "--address", address)

    def stage_two_checkpointed() -> bool:
        started = [d for d in grid.glob("trial-*") if list(d.glob("checkpoint_*"))]
        states = "".join(f.read_text() for f in grid.glob("experiment_state-*.json"))
        return bool(started) and started[0].name.removeprefix("trial-") in states

    kill.kill_when(proc, stage_two_checkpointed, "a stage-2 checkpoint Tune knows of")
    manifest = json.loads((study_path / STUDY_MANIFEST).read_text())
    assert list(manifest["outputs"]) == ["pre"]  # stage 1 recorded, stage 2 not
    pre = study_path / "sweeps" / "pre"
    pre_checkpoints = sorted(p.name for p in pre.glob("trial-*/checkpoint_*"))

    result = resume_study(str(study_path), address=address, echo=lambda line: None)

    assert result.stopped_at is None and result.outputs["pre"] == manifest["outputs"]["pre"]
    assert sorted(p.name for p in pre.glob("trial-*/checkpoint_*")) == pre_checkpoints
    assert len(list(grid.glob("trial-*"))) == 4
    assert all(len(list(d.glob("checkpoint_*"))) == 3 for d in grid.glob("trial-*"))
    client = MlflowClient(default_tracking_uri(str(storage)))
    trials = _runs(client, "trial")
    assert sorted(t.data.tags["hmtl.stage"] for t in trials) == ["grid"] * 4 + ["pre"]
    for run in trials:  # every trial once: one run each, every epoch logged once
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert sorted(steps) == [1, 2, 3] and run.info.status == "FINISHED"
    tuned = [t for t in trials if t.data.tags.get("hmtl.arm") == "tuned"]
    assert len(tuned) == 2 and {t.data.params["optim.lr"] for t in tuned} == {"0.002"}
    assert len(_runs(client, "study")) == 1 and len(_runs(client, "sweep")) == 2


# hmtl_vs_pretraining runs in smoke mode in test_study_pretraining.py, omni_quickstart in
# test_omni_study.py, with their own checks; omni_fer's smoke is omni_quickstart's pipeline
# (same stages and arms on the same smoke base), left out to keep the suite's time.
OWN_SMOKE_TESTS = {"hmtl_vs_pretraining", "omni_quickstart", "omni_fer"}


@pytest.fixture(scope="module")
def smoke_storage(tmp_path_factory):
    """One storage folder for every shipped study's smoke run (each study has its own name
    and folder in it): one tracking database and one set of drawn faces for all of them."""
    return tmp_path_factory.mktemp("smoke")


@pytest.mark.parametrize("name", sorted(set(shipped_studies()) - OWN_SMOKE_TESTS))
def test_every_shipped_study_runs_in_smoke_mode(local_ray, smoke_storage, tmp_path, name):
    storage = smoke_storage
    spec = smoke_study(load_study(name), storage / "smoke")
    tracking = default_tracking_uri(str(storage))
    result = run_study(spec, str(storage), tracking, echo=print)
    assert result.stopped_at is None and result.outputs
    assert "## Stage" in result.markdown
    # A stage whose seeds decide takes its look (smoke: one round of 2 seeds) and its
    # decisions reach the report and the study's run.
    manifest = json.loads(Path(result.path, STUDY_MANIFEST).read_text())
    for stage, looks in manifest.get("rounds", {}).items():
        assert [look["round"] for look in looks] == [1] and looks[0]["decisions"]
        assert "## Sequential decisions" in result.markdown
        tags = MlflowClient(tracking).get_run(result.run_id).data.tags
        assert any(key.startswith(f"hmtl.decision.{stage}.") for key in tags)
    # A grid over label fractions leaves the labelled rows of each on the study's run.
    for stage in spec.stage_list:
        fractions = (stage.raw.get("factors") or {}).get("data.label_fraction")
        if fractions:
            text = MlflowClient(tracking).download_artifacts(
                result.run_id, f"label_subsets/{stage.name}.json", str(tmp_path)
            )
            saved = json.loads(Path(text).read_text())["fractions"]
            assert sorted(map(float, saved)) == sorted(fractions)


def test_sweep_stage_with_confirm_reruns_its_best_configs(local_ray, tmp_path):
    space = {
        "num_samples": 2,
        "scheduler": None,
        "search": {"sampler": "random", "seed": 0},
        "space": {"optim.lr": "loguniform(1e-3, 1e-2)"},
    }
    stages = [
        {"name": "search", "kind": "sweep", "space": space, "confirm": {"top_k": 2, "repeats": 1}}
    ]
    spec = load_study(_study_file(tmp_path, stages))
    storage = tmp_path / "runs"
    tracking = default_tracking_uri(str(storage))
    result = run_study(spec, str(storage), tracking, echo=lambda line: None)

    assert result.stopped_at is None
    top = result.outputs["search"]["top_configs"]
    assert len(top) == 2 and all(set(c) == {"optim.lr"} for c in top)
    confirm = result.outputs["search-confirm"]
    assert confirm["best_config"] in top and confirm["best_cell"] in ("top1", "top2")
    client = MlflowClient(tracking)
    reruns = [t for t in _runs(client, "trial") if t.data.tags["hmtl.stage"] == "search-confirm"]
    assert sorted(float(t.data.params["optim.lr"]) for t in reruns) == sorted(
        c["optim.lr"] for c in top
    )
    assert {t.data.params["runtime.seed"] for t in reruns} == {"1000"}  # a fresh seed
    assert "## Stage search-confirm" in result.markdown
