"""How `hmtl sweep` and `hmtl resume` end: exit codes and the printed resume command."""

import shlex
from types import SimpleNamespace

import pytest

from hmtl.orchestration.cli.sweep import ERRORED_EXIT, NO_METRIC_EXIT, finish


def ended(errors: int, best: str | None) -> SimpleNamespace:
    """The two fields of a SweepResult that decide the exit code."""
    return SimpleNamespace(errors=errors, best_trial=best)


def test_errored_trials_exit_3_with_a_resume_command_a_shell_can_run(capsys):
    sweep = "s3://bucket/runs/sweeps/q?endpoint_override=http://127.0.0.1:9000&region=eu"
    with pytest.raises(SystemExit) as exit_:
        finish(ended(2, "abc"), sweep, "10.0.0.5:6379")
    assert exit_.value.code == ERRORED_EXIT == 3
    out = capsys.readouterr().out
    assert "2 trial(s) errored" in out
    command = out.strip().splitlines()[-1].strip()
    assert shlex.split(command) == ["hmtl", "resume", sweep, "--address", "10.0.0.5:6379"]


def test_errors_win_over_a_missing_metric(capsys):
    with pytest.raises(SystemExit) as exit_:
        finish(ended(1, None), "hmtl-runs/sweeps/q", None)
    assert exit_.value.code == 3
    assert capsys.readouterr().out.strip().endswith("hmtl resume hmtl-runs/sweeps/q")


def test_no_trial_with_the_metric_exits_1_and_a_clean_sweep_returns(capsys):
    with pytest.raises(SystemExit) as exit_:
        finish(ended(0, None), "hmtl-runs/sweeps/q", None)
    assert exit_.value.code == NO_METRIC_EXIT == 1
    finish(ended(0, "abc"), "hmtl-runs/sweeps/q", None)  # exit 0: returns normally
    assert capsys.readouterr().out == ""
