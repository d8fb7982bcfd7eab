"""A search space with ASHA and twelve trial rows stopped at its rungs, for the rung tests
(tests/unit/orchestration/sweep/test_rungs.py, tests/integration/sweep/test_rung_importances.py)."""

from __future__ import annotations

from hmtl.orchestration.sweep.space import SearchSpace, validate_space
from hmtl.orchestration.sweep.status import TrialRow


def rung_space() -> SearchSpace:
    return validate_space(
        {
            "name": "rungs",
            "num_samples": 12,
            "scheduler": {"type": "asha", "max_epochs": 10, "grace_period": 2},
            "base": {"schedule": {"epochs": 10}},
            "space": {"optim.lr": "loguniform(1e-4, 1e-2)", "model.dropout": "uniform(0, 0.5)"},
        }
    )


def rung_rows() -> list[TrialRow]:
    """12 trials: 11 stopped at rung 2 or 4, one complete; lr drives the metric."""
    rows = []
    for i in range(12):
        lr, stop = 10 ** -(2 + i / 6), 10 if i == 0 else (4 if i < 4 else 2)
        history = {e: 0.2 + 0.02 * e - lr * 10 for e in range(1, stop + 1)}
        params = {"optim.lr": lr, "model.dropout": 0.05 * (i % 3)}
        rows.append(TrialRow(f"t{i}", "TERMINATED", stop, None, params, history))
    return rows
