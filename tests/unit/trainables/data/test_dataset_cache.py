"""The per-process dataset cache: decoded once, read-only, bounded, least recently used out."""

import json

import numpy as np
import pytest
import torch

from hmtl.trainables.config import DataConfig
from hmtl.trainables.data.cache import DATASETS, DatasetCache, nbytes
from hmtl.trainables.data.dataset import load_splits
from hmtl.trainables.data.prepared import DatasetError, read_prepared, write_prepared


def _dataset(root, name, n=64, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)
    labels = {"expression": np.arange(n) % 8, "identity": np.arange(n) // 4}
    return write_prepared(root, name, "synthetic", images, labels)


def test_second_read_is_a_hit_with_the_same_contents(tmp_path):
    cache = DatasetCache(max_bytes=2**20)
    folder = _dataset(tmp_path, "a")
    first = cache.read(folder)
    again = cache.read(folder)
    assert (cache.misses, cache.hits) == (1, 1)
    np.testing.assert_array_equal(again.images, read_prepared(folder).images)
    assert np.shares_memory(first.images, again.images)  # not decoded twice


def test_cached_arrays_refuse_writes_and_cannot_be_made_writable(tmp_path):
    cache = DatasetCache(max_bytes=2**20)
    got = cache.read(_dataset(tmp_path, "a"))
    with pytest.raises(ValueError, match="read-only"):
        got.images[0, 0, 0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        got.labels["expression"][:] = 0
    with pytest.raises(ValueError):
        got.images.flags.writeable = True
    got.card["fingerprint"] = "changed"  # each reader gets its own card
    assert cache.read(_dataset(tmp_path, "a")).card["fingerprint"] != "changed"


def test_least_recently_used_leaves_first_and_oversized_is_not_kept(tmp_path):
    folders = [_dataset(tmp_path, name, seed=i) for i, name in enumerate("abc")]
    one = nbytes(read_prepared(folders[0]))
    cache = DatasetCache(max_bytes=2 * one)
    fingerprints = [f.name for f in folders]
    cache.read(folders[0])
    cache.read(folders[1])
    cache.read(folders[0])  # a is now the most recently used
    cache.read(folders[2])
    assert fingerprints[0] in cache and fingerprints[2] in cache
    assert fingerprints[1] not in cache and len(cache) == 2
    small = DatasetCache(max_bytes=one - 1)
    small.read(folders[0])
    assert len(small) == 0


def test_unreadable_card_is_reported_by_the_reader(tmp_path):
    folder = _dataset(tmp_path, "a")
    (folder / "card.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        DatasetCache(max_bytes=2**20).read(folder)


def test_splits_are_private_copies_of_the_cached_data(tmp_path):
    folder = _dataset(tmp_path, "a", n=200)
    cfg = DataConfig(source=str(folder), image_size=48)
    first = load_splits(cfg)
    before = first.train.images.clone()
    first.train.images.zero_()  # what a careless trial could do to its own tensors
    first.train.labels["expression"].fill_(0)
    second = load_splits(cfg)
    assert json.loads((folder / "card.json").read_text())["fingerprint"] in DATASETS
    assert torch.equal(second.train.images, before)
    assert int(second.train.labels["expression"].max()) == 7
