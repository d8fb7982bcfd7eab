"""prepare → published shards → read_prepared, with a fake reader standing in for a format."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from hmtl.orchestration.cli.main import main
from hmtl.trainables.config import DataConfig
from hmtl.trainables.data import readers
from hmtl.trainables.data.dataset import assign_splits
from hmtl.trainables.data.faces import FaceData, shard
from hmtl.trainables.data.prepare import conform_image, prepare
from hmtl.trainables.data.prepared import DatasetError, Prepared, read_prepared
from hmtl.trainables.data.readers.base import BadRow, Record, SourceError
from hmtl.trainables.data.storage import StorageError, filesystem_for, join, redact


class FakeReader:
    """Yields prepared-in-advance records (or raises an exception placed among them)."""

    name = "fake"

    def __init__(self, records):
        self.records = records

    def scan(self, source, options):
        for record in self.records:
            if isinstance(record, Exception):
                raise record
            yield record

    def count(self, source, options):
        return len(self.records)


def faces(n=20, shape=(8, 8), seed=0, split=True, identity=False, soft=False):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        labels = {"valence": float(rng.uniform(-1, 1)), "gender": i % 2}
        if identity:
            labels["identity"] = i // 4
        out.append(
            Record(
                image=rng.integers(0, 256, shape, dtype=np.uint8),
                expression=i % 8,
                split=("train", "test")[i % 2] if split else None,
                labels=labels,
                soft=rng.dirichlet(np.ones(8)).astype(np.float32) if soft else None,
                where=f"train.csv line {i + 2}",
            )
        )
    return out


@pytest.fixture
def use_reader(monkeypatch, tmp_path):
    (tmp_path / "src").mkdir()

    def install(records):
        monkeypatch.setattr(readers, "get_reader", lambda name: FakeReader(records))
        return tmp_path / "src"

    return install


def published(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("card.json"))


def leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob(".tmp-*"))


def test_round_trip_keeps_pixels_labels_and_split(use_reader, tmp_path):
    records = faces()
    src = use_reader(records)
    result = prepare("fer2013", src, tmp_path / "out", rows_per_shard=6, progress=False)
    assert not result.reused and result.bad_rows == 0
    assert result.uri == str(tmp_path / "out" / "fer2013" / result.card["fingerprint"])
    got = read_prepared(result.uri)
    np.testing.assert_array_equal(got.images[..., 0], np.stack([r.image for r in records]))
    np.testing.assert_array_equal(got.labels["expression"], [r.expression for r in records])
    np.testing.assert_allclose(got.labels["valence"], [r.labels["valence"] for r in records])
    np.testing.assert_array_equal(got.labels["gender"], [r.labels["gender"] for r in records])
    assert got.split.tolist() == [r.split for r in records]
    card = got.card
    assert card["source_format"] == "fer2013" and card["source"] == str(src)
    assert card["optional_labels"] == ["gender", "valence"] and not card["has_soft_labels"]
    assert card["num_rows"] == 20 and len(card["shards"]) == 4 and card["bad_rows"] == 0
    assert card["counts"]["train"]["neutral"] == 3 and card["counts"]["test"]["happy"] == 3
    assert "split_groups" not in card
    assert leftovers(tmp_path / "out") == []


def test_resize_crop_and_channels(use_reader, tmp_path):
    rgb = [Record(np.full((12, 16, 3), 200, np.uint8), 1, where=f"f{i}.jpg") for i in range(3)]
    for r in rgb:
        r.image[:, :2] = 0  # left and right bands fall outside the centre square
        r.image[:, -2:] = 0
    src = use_reader(rgb)
    got = read_prepared(prepare("kdef", src, tmp_path, size=6, channels=1, progress=False).uri)
    assert got.images.shape == (3, 6, 6, 1)
    assert (got.images == round(200 * (0.299 + 0.587 + 0.114))).all()  # luma, bands cropped
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    rgb3 = conform_image(grey, 8, 3)
    assert rgb3.shape == (8, 8, 3) and (rgb3 == grey[:, :, None]).all()
    small = conform_image(grey, 4, 1)
    want = np.asarray(Image.fromarray(grey).resize((4, 4), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(small[..., 0], want)


def test_mixed_sizes_need_an_explicit_size(use_reader, tmp_path):
    records = faces(4) + faces(1, shape=(10, 10))
    src = use_reader(records)
    with pytest.raises(SourceError, match=r"train.csv line 2: image size 10 differs .*--size"):
        prepare("fer2013", src, tmp_path, progress=False)
    assert published(tmp_path) == [] and leftovers(tmp_path) == []
    result = prepare("fer2013", src, tmp_path, size=8, progress=False)
    assert result.card["image_size"] == 8 and result.card["num_rows"] == 5


def test_fingerprint_is_stable_and_same_input_is_reused(use_reader, tmp_path):
    src = use_reader(faces())
    first = prepare("fer2013", src, tmp_path / "a", rows_per_shard=7, progress=False)
    other = prepare("fer2013", src, tmp_path / "b", rows_per_shard=50, progress=False)
    assert first.card["fingerprint"] == other.card["fingerprint"]
    before = sorted(p for p in (tmp_path / "a").rglob("*"))
    again = prepare("fer2013", src, tmp_path / "a", progress=False)
    assert again.reused and again.uri == first.uri and again.card == first.card
    assert sorted(p for p in (tmp_path / "a").rglob("*")) == before
    changed = faces()
    changed[3].image[0, 0] ^= 1
    src = use_reader(changed)
    assert (
        prepare("fer2013", src, tmp_path / "a", progress=False).card["fingerprint"]
        != (first.card["fingerprint"])
    )


def test_bad_row_stops_with_one_line_and_publishes_nothing(use_reader, tmp_path):
    records = faces(6)
    records[3] = Record(None, None, where="train.csv line 5", bad=BadRow("train.csv line 5", "x"))
    records[3].bad = BadRow("train.csv line 5", "2303 pixels, expected 2304")
    src = use_reader(records)
    with pytest.raises(BadRow) as err:
        prepare("fer2013", src, tmp_path, rows_per_shard=2, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("train.csv line 5: 2303 pixels, expected 2304 (stopped after 4 rows")
    assert "nothing published" in message and "--skip-bad" in message
    assert message.count("stopped after") == 1
    assert published(tmp_path) == [] and leftovers(tmp_path) == []

    src = use_reader([*faces(3), BadRow("train.csv line 9", "truncated file")])
    with pytest.raises(BadRow, match=r"line 9: truncated file \(stopped after 3 rows read"):
        prepare("fer2013", src, tmp_path, skip_bad=True, progress=False)
    assert published(tmp_path) == [] and leftovers(tmp_path) == []


def test_skip_bad_counts_bad_rows_in_the_card(use_reader, tmp_path):
    records = faces(8)
    records[1] = Record(None, None, bad=BadRow("train.csv line 3", "non-numeric pixels"))
    records[5] = Record(None, None, bad=BadRow("train.csv line 7", "non-numeric pixels"))
    records[6].image = np.zeros((8, 8, 4), np.uint8)  # not grey or RGB: bad as well
    src = use_reader(records)
    result = prepare("fer2013", src, tmp_path, skip_bad=True, progress=False)
    assert result.bad_rows == 3 and result.card["num_rows"] == 5
    assert result.card["bad_rows"] == 3
    assert result.card["bad_row_reasons"]["non-numeric pixels"] == 2
    assert read_prepared(result.uri).card == result.card


def test_soft_labels_round_trip(use_reader, tmp_path):
    records = faces(10, soft=True)
    records[4].soft = None  # a row without a distribution reads back as NaN
    src = use_reader(records)
    result = prepare("ferplus", src, tmp_path, rows_per_shard=4, progress=False)
    got = read_prepared(result.uri)
    assert result.card["has_soft_labels"]
    assert got.labels["soft"].shape == (10, 8) and got.labels["soft"].dtype == np.float32
    for i, r in enumerate(records):
        if r.soft is None:
            assert np.isnan(got.labels["soft"][i]).all()
        else:
            np.testing.assert_array_equal(got.labels["soft"][i], r.soft)


def test_identity_disjoint_splits(use_reader, tmp_path):
    rng = np.random.default_rng(1)
    ids = np.repeat(np.arange(60), rng.integers(3, 12, 60))
    y = rng.integers(0, 7, len(ids))
    prepared = Prepared(
        images=np.zeros((len(ids), 1, 1, 1), np.uint8),
        labels={"expression": y, "identity": ids},
        split=None,
        card={"split_groups": "identity"},
    )
    cfg = DataConfig(val_fraction=0.15, test_fraction=0.2, split_seed=3)
    split = assign_splits(prepared, cfg)
    assert set(split.tolist()) == {"train", "val", "test"}  # every row assigned
    for person in np.unique(ids):
        assert len(set(split[ids == person].tolist())) == 1
    for name, share in (("val", 0.15), ("test", 0.2)):
        assert abs((split == name).mean() - share) < 0.05
    assert np.array_equal(split, assign_splits(prepared, cfg))  # seeded
    # prepare marks identity sources so that training draws splits this way
    src = use_reader(faces(12, split=False, identity=True))
    assert prepare("kdef", src, tmp_path, progress=False).card["split_groups"] == "identity"


def test_shard_gives_equal_disjoint_rows():
    data = FaceData(torch.arange(10).view(10, 1, 1, 1), {"expression": torch.arange(10)})
    parts = [shard(data, r, 3) for r in range(3)]
    rows = [p.labels["expression"].tolist() for p in parts]
    assert rows == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


def test_unwritable_out_and_missing_source(use_reader, tmp_path):
    src = use_reader(faces(3))
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match=r"file: creating the dataset folder failed"):
        prepare("fer2013", src, tmp_path / "file", progress=False)
    with pytest.raises(SourceError, match="nope: no such file or folder"):
        prepare("fer2013", tmp_path / "nope", tmp_path / "out", progress=False)
    assert published(tmp_path) == []


class RecordingBar:
    """A progress bar that remembers what `prepare` told it."""

    def __init__(self, total):
        self.total, self.n, self.postfix, self.closed = total, 0, "", False

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, s="", refresh=True):
        self.postfix = s

    def close(self):
        self.closed = True


def test_progress_counts_the_source_and_advances_once_per_row(use_reader, tmp_path):
    records = faces(6)
    records[2] = Record(None, None, bad=BadRow("train.csv line 4", "non-numeric pixels"))
    bars = []

    def make(total):
        bars.append(RecordingBar(total))
        return bars[-1]

    prepare("fer2013", use_reader(records), tmp_path, skip_bad=True, progress=make)
    (bar,) = bars
    assert (bar.total, bar.n, bar.postfix, bar.closed) == (6, 6, "1 bad", True)


def test_storage_uris():
    fs, path = filesystem_for("s3://bucket/a/b?endpoint_override=http://127.0.0.1:9")
    # S3 behind the retrying handler (trainables/data/retrying.py)
    assert fs.type_name == "py::hmtl-s3" and path == "bucket/a/b"
    assert join("s3://b/p?endpoint_override=http://h:1", "n", "f") == (
        "s3://b/p/n/f?endpoint_override=http://h:1"
    )
    for uri in ("s3://KEY:SECRET@bucket/p", "s3://bucket/p?secret_key=SECRET"):
        with pytest.raises(StorageError) as err:
            filesystem_for(uri)
        assert "SECRET" not in str(err.value) and "credential" in str(err.value)
    assert "SECRET" not in redact("s3://bucket/p?secret_key=SECRET")
    with pytest.raises(StorageError, match="unsupported storage scheme"):
        filesystem_for("gs://bucket/p")


def test_read_refuses_a_folder_without_card(tmp_path):
    with pytest.raises(DatasetError, match="no dataset card"):
        read_prepared(tmp_path)


def test_cli_prepare_and_inspect(use_reader, tmp_path):
    src = use_reader(faces(16))
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["data", "prepare", "fer2013", str(src), "--out", str(out), "--name", "toy"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "published" in first.output and "16 rows, 8 px, 1 channel(s)" in first.output
    (folder,) = published(out)
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "already published" in again.output
    assert str(folder) in again.output

    pictures = tmp_path / "pics"
    shown = runner.invoke(main, ["data", "inspect", str(folder), "--out", str(pictures)])
    assert shown.exit_code == 0, shown.output
    assert "fingerprint" in shown.output and "neutral" in shown.output
    for png in ("contact_sheet.png", "class_histogram.png"):
        assert (pictures / png).read_bytes()[:4] == b"\x89PNG" and str(
            pictures / png
        ) in shown.output
    as_json = runner.invoke(
        main, ["data", "inspect", str(folder), "--json", "--out", str(pictures)]
    )
    assert json.loads(as_json.output.split("\ncontact sheet")[0])["num_rows"] == 16


def test_cli_bad_input_is_one_line_exit_2(use_reader, tmp_path):
    records = faces(4)
    records[2] = Record(None, None, bad=BadRow("train.csv line 4", "unknown label 9"))
    src = use_reader(records)
    runner = CliRunner()
    result = runner.invoke(main, ["data", "prepare", "fer2013", str(src), "--out", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hmtl: error: train.csv line 4: unknown label 9")
    missing = runner.invoke(main, ["data", "inspect", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no dataset card" in missing.output
    assert "Traceback" not in missing.output


def test_cli_prepares_a_real_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, folder, n in (("train", "Happy", 3), ("train", "angry", 2), ("test", "sad", 2)):
        (tmp_path / "faces" / split / folder).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "faces" / split / folder / f"{i}.png")
    (tmp_path / "faces" / "test" / "sad" / "broken.png").write_bytes(b"\x89PNG not really")
    runner = CliRunner()
    args = ["data", "prepare", "imagefolder", str(tmp_path / "faces"), "--out", str(tmp_path)]
    refused = runner.invoke(main, [*args, "--size", "8"])
    assert refused.exit_code == 2 and "test/sad/broken.png" in refused.output
    assert refused.output.count("\n") == 1 and published(tmp_path) == []
    done = runner.invoke(main, [*args, "--size", "8", "--channels", "1", "--skip-bad"])
    assert done.exit_code == 0, done.output
    assert "skipped 1 bad rows" in done.output
    (folder,) = published(tmp_path)
    got = read_prepared(folder)
    assert got.images.shape == (7, 8, 8, 1) and got.card["bad_rows"] == 1
    assert got.card["counts"]["train"]["happy"] == 3 and got.card["counts"]["test"]["sad"] == 2
