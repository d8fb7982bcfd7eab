import pytest
import torch

from hmtl.trainables.config import ScheduleConfig
from hmtl.trainables.metrics import classification_metrics, confusion_matrix
from hmtl.trainables.optim import lr_factor
from hmtl.trainables.tasks.expression import class_weights


def test_confusion_matrix_counts():
    pred = torch.tensor([0, 1, 1, 2, 2, 2])
    true = torch.tensor([0, 1, 2, 2, 2, 0])
    cm = confusion_matrix(pred, true, 3)
    assert cm.tolist() == [[1, 0, 1], [0, 1, 0], [0, 1, 2]]


def test_metrics_against_hand_computation():
    cm = torch.tensor([[8, 2, 0], [1, 1, 0], [0, 0, 0]])  # class 2 absent from targets
    m = classification_metrics(cm, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(9 / 12)
    assert m["balanced_accuracy"] == pytest.approx((0.8 + 0.5) / 2)
    f1_a = 2 * (8 / 9) * 0.8 / (8 / 9 + 0.8)
    f1_b = 2 * (1 / 3) * 0.5 / (1 / 3 + 0.5)
    assert m["macro_f1"] == pytest.approx((f1_a + f1_b) / 2)
    assert m["accuracy/a"] == pytest.approx(0.8)
    assert "accuracy/c" not in m


def test_class_weights_inverse_frequency():
    w = class_weights((100, 50, 0, 25))
    assert w.tolist() == [1.0, 2.0, 0.0, 4.0]


def test_schedule_warmup_cosine_and_step():
    cosine = ScheduleConfig(epochs=10, warmup_epochs=1, kind="cosine", min_lr_ratio=0.1)
    assert lr_factor(cosine, 0, 10) == pytest.approx(0.1)
    assert lr_factor(cosine, 9, 10) == pytest.approx(1.0)
    assert lr_factor(cosine, 10, 10) == pytest.approx(1.0)
    assert lr_factor(cosine, 100, 10) == pytest.approx(0.1)
    step = ScheduleConfig(epochs=10, warmup_epochs=0, kind="step", step_size=3, gamma=0.5)
    assert [lr_factor(step, e * 10, 10) for e in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]
