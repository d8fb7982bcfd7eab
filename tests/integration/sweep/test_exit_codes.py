"""`hmtl sweep` and `hmtl resume` exit 3 with the exact resume command when trials error."""

import shlex

import pytest
import yaml
from click.testing import CliRunner

from hmtl.orchestration.cli.main import main

pytestmark = pytest.mark.integration


def _space_with_broken_dataset(tmp_path):
    """A space whose trials all fail at their first step: `data.source` is an existing folder
    (so preflight lets it through) that holds no prepared dataset."""
    empty = tmp_path / "not-a-dataset"
    empty.mkdir()
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

    resumed = CliRunner().invoke(main, shlex.split(command)[1:])
    assert resumed.exit_code == 3, resumed.output
    assert resumed.output.strip().splitlines()[-1].strip() == command
