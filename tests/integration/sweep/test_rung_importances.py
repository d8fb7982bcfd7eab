"""The report's importances at a common rung use every trial there and say which (Optuna's
importance evaluator: about 2 s to warm up, so not in the unit tier)."""

import optuna
import pytest
from matplotlib.figure import Figure
from rung_helpers import rung_rows, rung_space

from hmtl.orchestration.sweep.report_plots import Rung, plot_rung_importances

pytestmark = pytest.mark.integration

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_importances_use_every_trial_at_the_rung_and_say_which():
    ax = Figure().add_subplot()
    plot_rung_importances(ax, rung_rows(), rung_space(), Rung(2, [2, 4, 8, 10], True))
    assert not ax.texts and len(ax.patches) == 2  # bars for lr and dropout
    title = ax.get_title()
    assert "12 trials\nval/balanced_accuracy at ASHA rung at epoch 2 (the grace period)" in title
    assert ax.get_yticklabels()[-1].get_text() == "optim.lr"  # the most important on top
