"""The labelled subsets a label-fraction grid records are the rows training reads: per
fraction, the same rows `load_splits` keeps labelled, whatever the arm or seed."""

import json

import numpy as np
import pytest
import torch

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.study.engine import stage_space
from hmtl.orchestration.study.smoke import smoke_study
from hmtl.orchestration.study.spec import load_study
from hmtl.orchestration.study.subsets import label_subsets, record_label_subsets
from hmtl.trainables.data.cache import DATASETS
from hmtl.trainables.data.dataset import load_splits, resolve_source


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """The smoke label-efficiency grid (its faces drawn once for the module's tests)."""
    scratch = tmp_path_factory.mktemp("label-efficiency")
    spec = smoke_study(load_study("label_efficiency"), scratch)
    outputs = {"pretrain": {"best_checkpoint": str(scratch / "ckpt")}}
    return stage_space(spec, spec.stage_list[1], outputs)


def test_subsets_are_the_rows_training_keeps_labelled(space, tmp_path):
    subsets = label_subsets(space, str(tmp_path))
    fractions = sorted({p.overrides["data.label_fraction"] for p in space.trials})
    assert sorted(map(float, subsets["fractions"])) == fractions
    for index in (0, len(space.trials) - 1):  # two arms, two fractions, two seeds
        data = space.trial_config({"trial": index}).data
        rows = subsets["fractions"][str(data.label_fraction)]["rows"]
        prepared = DATASETS.read(resolve_source(data))
        images = torch.from_numpy(prepared.images[rows]).permute(0, 3, 1, 2)
        train = load_splits(data).train
        assert len(rows) == len(train) and torch.equal(images, train.images)
    assert subsets["fingerprint"] == prepared.card["fingerprint"]


def test_record_writes_the_subsets_once_per_stage_and_skips_full_label_grids(space, tmp_path):
    store = Store.open(str(tmp_path / "study"))
    name = record_label_subsets(space, store, None, None, str(tmp_path))
    saved = json.loads(store.read_text(name))
    small = np.array(saved["fractions"]["0.01"]["rows"])
    assert name == "label_subsets/compare.json" and len(small) == len(set(small)) > 0
    full = space.model_copy(
        update={"trials": [p.model_copy(update={"overrides": {}}) for p in space.trials]}
    )
    assert label_subsets(full, str(tmp_path)) is None
