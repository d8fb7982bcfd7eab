"""The report's importances at a common rung use every trial there and say which (Optuna's
importance evaluator: about 2 s to warm up, so not in the unit tier)."""

import optuna
import pytest
from matplotlib.figure import Figure

from hmtl.orchestration.sweep.report_plots import Rung, plot_rung_importances
from hmtl.orchestration.sweep.space import validate_space
from hmtl.orchestration.sweep.status import TrialRow

pytestmark = pytest.mark.integration

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space():
    return validate_space(
        {
            "name": "rungs",
            "num_samples": 12,
            "scheduler": {"type": "asha", "max_epochs": 10, "grace_period": 2},
            "base": {"schedule": {"epochs": 10}},
            "space": {"optim.lr": "loguniform(1e-4, 1e-2)", "model.dropout": "uniform(0, 0.5)"},
        }
    )


def _rows():
    """12 trials: 11 stopped at rung 2 or 4, one complete; lr drives the metric."""
    rows = []
    for i in range(12):
        lr, stop = 10 ** -(2 + i / 6), 10 if i == 0 else (4 if i < 4 else 2)
        history = {e: 0.2 + 0.02 * e - lr * 10 for e in range(1, stop + 1)}
        params = {"optim.lr": lr, "model.dropout": 0.05 * (i % 3)}
        rows.append(TrialRow(f"t{i}", "TERMINATED", stop, None, params, history))
    return rows


def test_importances_use_every_trial_at_the_rung_and_say_which():
    ax = Figure().add_subplot()
    plot_rung_importances(ax, _rows(), _space(), Rung(2, [2, 4, 8, 10], True))
    assert not ax.texts and len(ax.patches) == 2  # bars for lr and dropout
    title = ax.get_title()
    assert "12 trials\nval/balanced_accuracy at ASHA rung at epoch 2 (the grace period)" in title
    assert ax.get_yticklabels()[-1].get_text() == "optim.lr"  # the most important on top
