"""Distillation: a bar of iterations on a terminal, the loss lines everywhere else."""

import io
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from hmtl.orchestration.distill import publish
from hmtl.trainables.distill import DistillSettings


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def fake_distill(images, labels, settings, log):
    """What `distill` tells its caller (a loss at iterations 0 and 2 of 3), without torch:
    the matching itself is tested in tests/unit/trainables/distill/."""
    for it, loss in ((0, 3.0), (2, 1.0)):
        log(it, loss)
    return SimpleNamespace(
        images=images[:2], labels=np.array([0, 1]), losses=[3.0, 2.0, 1.0], init_rows=np.arange(2)
    )


@pytest.mark.parametrize("terminal", [True, False])
def test_a_bar_on_a_terminal_loss_lines_elsewhere(tmp_path, monkeypatch, terminal):
    monkeypatch.setattr(publish, "distill", fake_distill)
    images = np.zeros((8, 48, 48, 1), np.uint8)
    labels = np.repeat([0, 1], 4)
    settings = DistillSettings(images_per_class=1, iterations=3)
    err = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    lines = []
    card = {"fingerprint": "f" * 64}
    publish.distil_and_publish("src", images, labels, card, settings, tmp_path, "d", lines.append)
    iteration_lines = [line for line in lines if line.startswith("  iteration")]
    if terminal:
        assert iteration_lines == []
        drawn = err.getvalue()
        assert "distill" in drawn and "3/3" in drawn and "loss 1.000" in drawn
    else:
        assert iteration_lines == [
            "  iteration      0  loss 3.000",
            "  iteration      2  loss 1.000",
        ]
        assert err.getvalue() == ""
