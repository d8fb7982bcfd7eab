import json

import numpy as np
import pytest

from hmtl.trainables.config import DataConfig
from hmtl.trainables.data.dataset import assign_splits, load_splits
from hmtl.trainables.data.prepared import DatasetError, find_prepared, read_prepared, write_prepared


def _faces(n=50, size=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    labels = {
        "expression": np.arange(n) % 8,
        "yaw": rng.normal(size=n).astype(np.float32),
        "identity": np.arange(n) // 5,
    }
    return images, labels


def test_round_trip_keeps_pixels_and_labels(tmp_path):
    images, labels = _faces()
    folder = write_prepared(tmp_path, "toy", "synthetic", images, labels, rows_per_shard=16)
    assert folder.name == json.loads((folder / "card.json").read_text())["fingerprint"]
    got = read_prepared(folder)
    np.testing.assert_array_equal(got.images, images)
    np.testing.assert_array_equal(got.labels["expression"], labels["expression"])
    np.testing.assert_allclose(got.labels["yaw"], labels["yaw"])
    assert got.card["num_rows"] == 50 and got.card["optional_labels"] == ["identity", "yaw"]
    assert len(got.card["shards"]) == 4
    assert got.card["counts"]["all"]["neutral"] == 7


def test_fingerprint_stable_and_independent_of_sharding(tmp_path):
    images, labels = _faces()
    a = write_prepared(tmp_path / "a", "toy", "synthetic", images, labels, rows_per_shard=7)
    b = write_prepared(tmp_path / "b", "toy", "synthetic", images, labels, rows_per_shard=50)
    assert a.name == b.name
    images[0, 0, 0, 0] ^= 1
    c = write_prepared(tmp_path / "c", "toy", "synthetic", images, labels)
    assert c.name != a.name


def test_same_data_twice_is_kept_once(tmp_path):
    images, labels = _faces()
    first = write_prepared(tmp_path, "toy", "synthetic", images, labels)
    second = write_prepared(tmp_path, "toy", "synthetic", images, labels)
    assert first == second
    assert [p.name for p in (tmp_path / "toy").iterdir()] == [first.name]


def test_failed_write_leaves_nothing(tmp_path):
    images, labels = _faces()
    labels["yaw"] = labels["yaw"][:10]  # wrong length: fails mid-write
    with pytest.raises(Exception):  # noqa: B017 - any failure must clean up
        write_prepared(tmp_path, "toy", "synthetic", images, labels, rows_per_shard=16)
    assert list((tmp_path / "toy").iterdir()) == []
    assert find_prepared(tmp_path, "toy") is None


def test_bad_folders_give_one_line_naming_the_file(tmp_path):
    with pytest.raises(DatasetError, match="card.json: no dataset card"):
        read_prepared(tmp_path)
    images, labels = _faces()
    folder = write_prepared(tmp_path, "toy", "synthetic", images, labels)
    card = json.loads((folder / "card.json").read_text())
    card["image_size"] = 9
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(DatasetError, match="row 0 has 64 image bytes, expected 81"):
        read_prepared(folder)
    (folder / card["shards"][0]).write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match="part-00000.parquet: unreadable shard"):
        read_prepared(folder)


def test_stratified_splits_and_label_fraction(tmp_path):
    images, labels = _faces(n=400)
    folder = write_prepared(tmp_path, "toy", "synthetic", images, labels)
    cfg = DataConfig(
        source=str(folder),
        val_fraction=0.1,
        test_fraction=0.2,
        label_fraction=0.5,
        image_size=48,
        classes=7,
    )
    split = assign_splits(read_prepared(folder), cfg)
    y = labels["expression"]
    for cls in range(8):
        rows = split[y == cls]
        assert (rows == "val").sum() == 5 and (rows == "test").sum() == 10
        assert (rows == "train").sum() == 17 and (rows == "unlabelled").sum() == 18
    splits = load_splits(cfg)
    assert int(splits.train.labels["expression"].max()) == 6  # contempt dropped for 7 classes
    assert splits.train.images.shape[1:] == (1, 8, 8)
    assert splits.info.class_counts == (17,) * 7
    assert np.array_equal(split, assign_splits(read_prepared(folder), cfg))
