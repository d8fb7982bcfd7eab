"""Kill `hmtl active` in the middle of a cycle and resume it: same labelled sets, same metrics."""

import json

import kill
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from hmtl.orchestration.cli.main import main
from hmtl.trainables.active.state import load_state

pytestmark = pytest.mark.slow

TIMES = ("al/train_seconds", "al/select_seconds")


def _config(tmp_path):
    tree = {
        "strategy": "margin",
        "cycles": 4,
        "reset": "warm",
        "train": {
            "data": {
                "cache_dir": str(tmp_path / "datasets"),
                "image_size": 48,
                "batch_size": 32,
                "synthetic": {"num_samples": 640, "num_identities": 40},
            },
            "model": {"width": 8},
            "schedule": {"epochs": 3, "warmup_epochs": 0.5},
            "runtime": {"device": "cpu", "num_threads": 1, "seed": 1},
        },
    }
    path = tmp_path / "active.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _metrics(folder):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMES} for row in rows]


def test_sigkill_mid_cycle_then_resume_matches_an_uninterrupted_run(tmp_path):
    config = _config(tmp_path)
    whole = tmp_path / "whole"
    result = CliRunner().invoke(main, ["active", str(config), "--out", str(whole)])
    assert result.exit_code == 0, result.output

    cut = tmp_path / "cut"
    proc = kill.start("active", str(config), "--out", str(cut))
    # Cycle 1 done: cycle 2 is training.
    kill.kill_when(proc, (cut / "checkpoint_000001").exists, "cycle 1's checkpoint", poll=0.05)
    assert not (cut / "checkpoint_000002").exists()  # killed inside cycle 2

    result = CliRunner().invoke(main, ["active", str(config), "--out", str(cut), "--resume"])
    assert result.exit_code == 0, result.output
    assert _metrics(cut) == _metrics(whole)
    final_cut, _ = load_state(cut / "checkpoint_000003")
    final_whole, _ = load_state(whole / "checkpoint_000003")
    assert np.array_equal(final_cut.labelled_map, final_whole.labelled_map)
