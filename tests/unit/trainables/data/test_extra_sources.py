"""`data.extra_sources` / `data.extra_weight`: mined rows join training only, with a loss weight."""

import dataclasses

import numpy as np
import pytest
import torch
from helpers import FACE_INFO

from hmtl.trainables.config import ExpressionConfig
from hmtl.trainables.data.dataset import load_splits
from hmtl.trainables.data.prepared import DatasetError, write_prepared
from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.tasks.expression import ExpressionTask


@pytest.fixture
def mined(tmp_path):
    """A stand-in for `hmtl mine` output: 30 pseudo-labelled 48 px faces, split train."""
    faces = render_faces(30, size=48, channels=1, seed=7)
    split = np.full(30, "train", object)
    split[:4] = "val"  # rows outside train never join
    return write_prepared(
        tmp_path, "mined", "mined", faces.images, {"expression": faces.expression}, split=split
    )


def test_extra_rows_join_the_training_split_only(tiny_config, mined):
    plain = load_splits(tiny_config().data)
    cfg = tiny_config(f"data.extra_sources=[{mined}]", "data.extra_weight=0.3")
    splits = load_splits(cfg.data)
    assert len(splits.train) == len(plain.train) + 26
    assert len(splits.val) == len(plain.val) and len(splits.test) == len(plain.test)
    weight = splits.train.labels["weight"]
    assert weight[: len(plain.train)].eq(1).all() and torch.allclose(
        weight[-26:], torch.tensor(0.3)
    )
    assert splits.train.labels["identity"][-26:].eq(-1).all()  # a label the source lacks
    assert torch.isnan(splits.train.labels["yaw"][-26:]).all()
    (entry,) = splits.info.card["extra_sources"]
    assert entry["rows"] == 26 and len(entry["fingerprint"]) == 64
    assert "weight" not in plain.train.labels


def test_missing_or_mismatched_extra_source(tiny_config, tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_splits(tiny_config(f"data.extra_sources=[{tmp_path / 'nope'}]").data)
    faces = render_faces(8, size=64, channels=1, seed=7)
    big = write_prepared(tmp_path, "big", "mined", faces.images, {"expression": faces.expression})
    with pytest.raises(DatasetError, match="64 px images"):
        load_splits(tiny_config(f"data.extra_sources=[{big}]").data)


@pytest.mark.parametrize("class_weights", ["none", "inverse_frequency"])
def test_row_weights_scale_the_expression_loss(class_weights):
    info = dataclasses.replace(FACE_INFO, class_counts=(5, 1, 2, 3, 1, 1, 4, 2))
    task = ExpressionTask(16, info, ExpressionConfig(class_weights=class_weights))
    torch.manual_seed(0)
    features, y = torch.randn(12, 16), torch.randint(0, 8, (12,))
    plain = task.loss(features, {"expression": y})["expression"]
    ones = task.loss(features, {"expression": y, "weight": torch.ones(12)})["expression"]
    assert torch.allclose(plain, ones)
    half = torch.cat([torch.ones(6), torch.zeros(6)])  # the last six rows weigh nothing
    masked = task.loss(features, {"expression": y, "weight": half})["expression"]
    first = task.loss(features[:6], {"expression": y[:6]})["expression"]
    assert torch.allclose(masked, first)
