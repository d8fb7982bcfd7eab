"""`--json`: one JSON object on stdout, human text on stderr; `status` of a study folder;
`--set` on `sweep` and `study`, checked as in the files."""

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from helpers import refused

from hmtl.orchestration.cli.main import main
from hmtl.orchestration.cli.output import Output
from hmtl.orchestration.cli.sweep import end, with_overrides
from hmtl.orchestration.study.manifest import STUDY_MANIFEST
from hmtl.orchestration.sweep.space import load_space


def result(errors: int = 0, best: str | None = "t1") -> SimpleNamespace:
    return SimpleNamespace(
        name="q",
        path="hmtl-runs/sweeps/q",
        trials=2,
        errors=errors,
        best_trial=best,
        best_metrics={"val/accuracy": 0.5},
        best_epoch=3,
        best_params={"optim.lr": 0.001},
        best_checkpoint="hmtl-runs/sweeps/q/trial-t1/checkpoint_000003",
        undelivered=0,
        spool=None,
        optuna_storage=None,
        optuna_study=None,
    )


def test_json_summary_is_one_object_on_stdout_and_the_text_on_stderr(capsys):
    end(Output(True), result(), "hmtl-runs/sweeps/q", "val/accuracy", None, "sqlite:///x.db")
    captured = capsys.readouterr()
    (line,) = captured.out.splitlines()
    summary = json.loads(line)
    assert summary["schema"] == "hmtl.sweep/1" and summary["exit_code"] == 0
    assert summary["best"] == {
        "trial": "t1",
        "value": 0.5,
        "epoch": 3,
        "params": {"optim.lr": 0.001},
        "checkpoint": "hmtl-runs/sweeps/q/trial-t1/checkpoint_000003",
    }
    assert "best trial    t1" in captured.err


def test_json_of_a_sweep_with_errors_carries_the_resume_command_and_exits_3(capsys):
    with pytest.raises(SystemExit) as exit_:
        end(Output(True), result(errors=1), "runs/sweeps/q", "val/accuracy", "auto", "http://m")
    summary = json.loads(capsys.readouterr().out)
    assert exit_.value.code == summary["exit_code"] == 3
    assert summary["resume_command"] == "hmtl resume runs/sweeps/q --address auto"


def test_without_json_the_summary_is_text_on_stdout(capsys):
    end(Output(False), result(), "hmtl-runs/sweeps/q", "val/accuracy", None, "sqlite:///x.db")
    captured = capsys.readouterr()
    assert "best trial    t1" in captured.out and captured.err == "" and "{" not in captured.out


def study_folder(tmp_path):
    folder = tmp_path / "studies" / "s"
    folder.mkdir(parents=True)
    stages = [{"name": "pre", "kind": "train"}, {"name": "grid", "kind": "grid"}]
    manifest = {
        "study": {"name": "s", "stages": stages},
        "outputs": {"pre": {"best_checkpoint": "ck", "trials": 1, "path": "p"}},
    }
    (folder / STUDY_MANIFEST).write_text(json.dumps(manifest))
    return folder


def test_status_of_a_study_lists_its_stages(tmp_path):
    folder = study_folder(tmp_path)
    text = CliRunner().invoke(main, ["status", str(folder)])
    assert text.exit_code == 0, text.output
    assert "pre" in text.output and "finished" in text.output and "pending" in text.output
    assert f"hmtl resume {folder}" in text.output
    done = CliRunner().invoke(main, ["status", str(folder), "--json"])
    status = json.loads(done.stdout)
    assert status["schema"] == "hmtl.study-status/1"
    assert [s["state"] for s in status["stages"]] == ["finished", "pending"]


def test_status_of_neither_says_so(tmp_path):
    refused(["status", str(tmp_path)], "not a sweep or study folder")


def test_set_reaches_the_base_config_and_searched_keys_are_refused():
    space = load_space("quickstart")
    changed = with_overrides(space, ("optim.weight_decay=0.01",))
    assert changed.base_tree()["optim"]["weight_decay"] == 0.01
    assert changed.space == space.space
    refused(["sweep", "quickstart", "--set", "optim.lr=0.1"], "--set optim.lr: searched by")
    refused(["sweep", "quickstart", "--set", "optim.nope=1"], "--set: unknown key 'optim.nope'")
    refused(["study", "quickstart_study", "--set", "schedule.epochs=x"], "--set: schedule.epochs")
    # validated as the file's base is: ASHA's max_epochs must fit the base's epochs
    refused(["sweep", "quickstart", "--set", "schedule.epochs=3"], "scheduler.max_epochs: 10")


def test_a_study_summary_in_json(capsys):
    from hmtl.orchestration.cli.study import finish_study

    ended = SimpleNamespace(
        name="s",
        path="hmtl-runs/studies/s",
        outputs={"pre": {"trials": 2, "best_checkpoint": "ck"}},
        errors=1,
        stopped_at="pre",
        markdown="",
        files=[],
        run_id="r1",
    )
    with pytest.raises(SystemExit) as exit_:
        finish_study(ended, None, Output(True))
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert exit_.value.code == summary["exit_code"] == 3
    assert summary["schema"] == "hmtl.study/1" and summary["stopped_at"] == "pre"
    assert summary["resume_command"] == "hmtl resume hmtl-runs/studies/s"
    assert "continue the study with" in captured.err
