"""Semi-supervised HMTL: label-withheld rows feed the auxiliaries, never the main loss."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from hmtl.trainables.data.dataset import load_splits
from hmtl.trainables.data.faces import FaceData
from hmtl.trainables.sampling import epoch_rows
from hmtl.trainables.session import LocalSession
from hmtl.trainables.train import train


def test_main_rows_stay_labelled_and_aux_rows_reach_the_withheld_ones():
    labelled, pool = 100, 400  # pool = 100 labelled rows, then 300 withheld ones
    for rank in (0, 1):
        rows = epoch_rows(labelled, 16, torch.Generator().manual_seed(5), rank, 2, pool)
        assert rows.main.shape == rows.aux.shape == (3, 16)  # 50 rows per rank: 3 steps
        assert int(rows.main.max()) < labelled  # the main loss never indexes a withheld row
        assert int(rows.aux.max()) >= labelled  # the auxiliaries do
        assert len(set(rows.aux.flatten().tolist())) == 48  # without replacement
    a = epoch_rows(labelled, 16, torch.Generator().manual_seed(5), 0, 2, pool)
    b = epoch_rows(labelled, 16, torch.Generator().manual_seed(5), 1, 2, pool)
    assert not set(a.aux.flatten().tolist()) & set(b.aux.flatten().tolist())  # ranks disjoint
    assert epoch_rows(labelled, 16, torch.Generator().manual_seed(5)).aux is None


def test_withheld_rows_come_back_unlabelled_and_can_be_dropped(tiny_config):
    full = load_splits(tiny_config().data)
    half = load_splits(tiny_config("data.label_fraction=0.5").data)
    assert len(half.train) + len(half.unlabelled) == len(full.train)
    assert len(half.unlabelled) == pytest.approx(len(full.train) / 2, abs=8)
    assert bool((half.unlabelled.labels["expression"] == -1).all())
    assert bool((half.train.labels["expression"] >= 0).all())
    off = load_splits(tiny_config("data.label_fraction=0.5", "data.unlabelled_to_aux=false").data)
    assert off.unlabelled is None and len(off.train) == len(half.train)


def test_semi_supervised_run_trains_main_on_labelled_rows_only(tiny_config, tmp_path):
    # Withheld rows carry expression -1, which cross-entropy refuses outright: a run that
    # finishes has never put one into the main loss.
    with pytest.raises((IndexError, RuntimeError)):
        F.cross_entropy(torch.zeros(2, 8), torch.tensor([0, -1]))
    cfg = tiny_config("data.label_fraction=0.3", "tasks.loss_weights.rotation=0.5")
    result = train(cfg, LocalSession(tmp_path, log=None))
    m = result.metrics
    assert torch.isfinite(torch.tensor(m["train/loss/expression"]))
    assert m["train/loss/rotation"] > 0 and "val/accuracy" in m


def test_the_auxiliaries_pool_holds_the_training_images_once(tiny_config, tmp_path):
    cfg = tiny_config("data.label_fraction=0.3", "tasks.loss_weights.rotation=0.5")
    splits = load_splits(cfg.data)
    n = len(splits.train)
    pool = splits.aux_images
    assert pool.data_ptr() == splits.train.images.data_ptr()  # views, not copies
    assert splits.unlabelled.images.data_ptr() == pool[n:].data_ptr()
    # The same run from hand-built Splits (the pool concatenated, a second copy) ends alike.
    copied = dataclasses.replace(
        splits,
        train=FaceData(splits.train.images.clone(), splits.train.labels),
        unlabelled=FaceData(splits.unlabelled.images.clone(), splits.unlabelled.labels),
        aux_images=None,
    )
    shared = train(cfg, LocalSession(tmp_path / "a", log=None), splits=splits).metrics
    again = train(cfg, LocalSession(tmp_path / "b", log=None), splits=copied).metrics
    assert shared["train/loss/rotation"] == again["train/loss/rotation"]
    assert shared["val/accuracy"] == again["val/accuracy"]
