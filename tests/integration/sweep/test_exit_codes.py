"""`hmtl sweep` and `hmtl resume` exit 3 with the exact resume command when trials error."""

import json
import shlex

import optuna
import pytest
import yaml
from click.testing import CliRunner

from hmtl.orchestration.cli.main import main


@pytest.fixture(scope="module", autouse=True)
def _optuna_mirror_on(optuna_mirror):
    """This file checks the sweep's Optuna database: the mirror is on for it."""


pytestmark = pytest.mark.integration


def _space_with_broken_dataset(tmp_path):
    """A space whose trials all fail at their first step: `data.source` is an existing folder
    with a card (so preflight lets it through) that describes no prepared dataset."""
    empty = tmp_path / "not-a-dataset"
    empty.mkdir()
    (empty / "card.json").write_text("{}")
    space = {
        "name": "it-errored",
        "num_samples": 1,
        "scheduler": None,
        "search": {"sampler": "random", "seed": 0},
        "base": {
            "data": {"source": str(empty), "image_size": 48, "batch_size": 64},
            "model": {"width": 8},
            "schedule": {"epochs": 1},
            "runtime": {"device": "cpu", "num_threads": 1},
        },
        "space": {"optim.lr": "loguniform(1e-4, 1e-2)"},
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def test_errored_sweep_and_its_resume_exit_3_with_the_resume_command(local_ray, tmp_path):
    storage = tmp_path / "runs"
    sweep = CliRunner().invoke(
        main, ["sweep", str(_space_with_broken_dataset(tmp_path)), "--storage", str(storage)]
    )
    assert sweep.exit_code == 3, sweep.output
    assert "1 trials, 1 errored" in sweep.output
    command = sweep.output.strip().splitlines()[-1].strip()
    sweep_uri = str(storage / "sweeps" / "it-errored")
    assert shlex.split(command) == ["hmtl", "resume", sweep_uri]

    # The failed trial is in the Optuna database the summary names, as FAIL, once.
    database = f"sqlite:///{storage.resolve() / 'optuna.db'}"
    assert f"optuna-dashboard {database}   (study it-errored)" in sweep.output
    resumed = CliRunner().invoke(main, [*shlex.split(command)[1:], "--json"])
    assert resumed.exit_code == 3, resumed.output
    assert resumed.output.strip().splitlines()[-1].strip() == command
    # --json: one object on stdout (docs/cli.md), the rest (Tune's table too) on stderr.
    (line,) = resumed.stdout.strip().splitlines()
    summary = json.loads(line)
    assert summary["schema"] == "hmtl.sweep/1" and summary["exit_code"] == 3
    assert summary["errored"] == 1 and summary["resume_command"] == command
    assert f"optuna-dashboard {database}" in resumed.output
    (failed,) = optuna.load_study(study_name="it-errored", storage=database).trials
    assert failed.state == optuna.trial.TrialState.FAIL and failed.values is None
