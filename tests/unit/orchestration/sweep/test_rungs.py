"""Trials stopped by ASHA are compared at a common rung: rung arithmetic matches Ray's
ASHA, and the report's importances and metric-vs-parameter plots use every trial there."""

import optuna
import pytest
from matplotlib.figure import Figure
from rung_helpers import rung_rows, rung_space

from hmtl.orchestration.sweep.report_plots import Rung, plot_rung_importances, plot_versus
from hmtl.orchestration.sweep.rungs import asha_rungs, common_rung, values_at

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    ("grace", "max_epochs", "factor", "expected"),
    [(2, 10, 2, [2, 4, 8, 10]), (1, 3, 2, [1, 2, 3]), (1, 9, 3, [1, 3, 9]), (5, 5, 2, [5])],
)
def test_rungs_are_ashas_milestones(grace, max_epochs, factor, expected):
    from ray.tune.schedulers.async_hyperband import _Bracket

    assert asha_rungs(grace, max_epochs, factor) == expected
    bracket = _Bracket(grace, max_epochs, factor, s=0)
    assert sorted({m for m, _ in bracket._rungs} | {max_epochs}) == expected


def test_the_common_rung_is_the_grace_period_when_asha_stopped_most():
    histories = {r.trial_id: r.history for r in rung_rows()}
    assert common_rung(histories, [2, 4, 8, 10]) == 2
    assert len(values_at(histories, 2)) == 12 and len(values_at(histories, 4)) == 4
    assert common_rung({"a": {1: 0.1, 2: 0.2}, "b": {1: 0.3, 2: 0.1}}, [1, 2]) == 2
    assert common_rung({"a": {}}, [2]) is None and common_rung({}, []) is None


def test_without_a_common_rung_the_plot_says_so():
    ax = Figure().add_subplot()
    plot_rung_importances(ax, rung_rows()[:1], rung_space(), Rung(2, [2, 4], True))
    assert ax.texts[0].get_text().startswith("not enough trials at a common rung")


def test_metric_against_a_parameter_draws_each_rung():
    ax = Figure().add_subplot()
    plot_versus(
        ax, rung_rows(), "optim.lr", True, "val/balanced_accuracy", Rung(2, [2, 4, 8, 10], True)
    )
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [
        "epoch 2: 12 trials",
        "epoch 4: 4 trials",
        "epoch 8: 1 trial",
        "epoch 10: 1 trial",
    ]
    assert "at ASHA rungs" in ax.get_title()
