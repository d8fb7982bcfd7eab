"""Folder-of-images readers (KDEF, CK+, image folders) on tiny fixtures written here."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hmtl.trainables.data.prepared import EXPRESSIONS
from hmtl.trainables.data.readers import get_reader
from hmtl.trainables.data.readers.base import ReaderOptions, SourceError
from hmtl.trainables.data.readers.kdef import parse_name

OPTIONS = ReaderOptions()


def _write(path: Path, pixels: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(pixels).save(path, format=fmt)
    return pixels


def _pixels(seed: int, rgb: bool = False, size: int = 8) -> np.ndarray:
    shape = (size, size, 3) if rgb else (size, size)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _truncate(path: Path, pixels: np.ndarray) -> None:
    """Write an image, then keep only the first half of its bytes."""
    _write(path, pixels)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _scan(fmt: str, source: Path) -> list:
    reader = get_reader(fmt)
    records = list(reader.scan(source, OPTIONS))
    assert reader.count(source, OPTIONS) == len(records)
    return records


def _idx(name: str) -> int:
    return EXPRESSIONS.index(name)


# --- KDEF ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "expression", "gender", "identity", "yaw"),
    [
        ("AF01ANS", "anger", 0, 0, 0.0),  # one-letter straight angle
        ("AF35HAFL", "happy", 0, 34, -90.0),
        ("BF02NEHL", "neutral", 0, 1, -45.0),
        ("AM01SUHR", "surprise", 1, 35, 45.0),
        ("BM35AFFR", "fear", 1, 69, 90.0),
        ("am10dis", "disgust", 1, 44, 0.0),
        ("AF03SAS", "sad", 0, 2, 0.0),
    ],
)
def test_kdef_name_parses_every_part(stem, expression, gender, identity, yaw):
    got_expression, labels = parse_name(stem)
    assert got_expression == _idx(expression)
    assert labels == {"gender": gender, "identity": identity, "yaw": yaw}


@pytest.mark.parametrize(
    ("stem", "reason"),
    [
        ("CF01ANS", "session"),
        ("AX01ANS", "sex"),
        ("AF36ANS", "identity"),
        ("AF01XXS", "expression"),
        ("AF01ANQL", "angle"),
        ("AF01AN", "too short"),
    ],
)
def test_kdef_bad_name_says_why(stem, reason):
    with pytest.raises(ValueError, match=reason):
        parse_name(stem)


def test_kdef_scan_labels_bad_rows_and_count(tmp_path):
    root = tmp_path / "KDEF"
    _write(root / "AF01" / "AF01ANS.JPG", _pixels(0, rgb=True))
    _write(root / "BM35" / "BM35SUFR.jpg", _pixels(1, rgb=True))
    _write(root / "AF01" / "AF01XXFL.JPG", _pixels(2, rgb=True))  # bad expression code
    _truncate(root / "AM02" / "AM02HAHL.JPG", _pixels(3, rgb=True, size=64))
    _write(root / "__MACOSX" / "AF01" / "._AF01ANS.JPG", _pixels(4))  # archive debris
    (root / "notes.txt").write_text("not an image")

    records = _scan("kdef", root)
    assert [r.where for r in records] == [
        "AF01/AF01ANS.JPG",
        "AF01/AF01XXFL.JPG",
        "AM02/AM02HAHL.JPG",
        "BM35/BM35SUFR.jpg",
    ]
    good, bad_name, truncated, male = records
    assert good.bad is None and good.split is None and good.expression == _idx("anger")
    assert good.image.dtype == np.uint8 and good.image.shape == (8, 8, 3)
    assert good.labels == {"gender": 0, "identity": 0, "yaw": 0.0}
    assert male.expression == _idx("surprise")
    assert male.labels == {"gender": 1, "identity": 69, "yaw": 90.0}
    assert bad_name.image is None and "AF01XXFL.JPG" in str(bad_name.bad)
    assert "expression 'XX'" in bad_name.bad.reason
    assert truncated.image is None and truncated.bad.where == "AM02/AM02HAHL.JPG"
    assert "truncated" in truncated.bad.reason


def test_kdef_without_images_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no .jpg"):
        _scan("kdef", tmp_path)


# --- CK+ ----------------------------------------------------------------------------


def _ck_sequence(root, subject, seq, frames, label=None, rgb=False):
    """Write frames 1..frames of a sequence; the last one labelled with `label` text."""
    folder = root / "cohn-kanade-images" / subject / seq
    pixels = [
        _write(folder / f"{subject}_{seq}_{i:08d}.png", _pixels(i, rgb))
        for i in range(1, frames + 1)
    ]
    if label is not None:
        emotion = root / "Emotion" / subject / seq / f"{subject}_{seq}_{frames:08d}_emotion.txt"
        emotion.parent.mkdir(parents=True, exist_ok=True)
        emotion.write_text(label)
    return pixels


def test_ckplus_reads_labelled_peak_frames_only(tmp_path):
    peak = _ck_sequence(tmp_path, "S005", "001", 3, "   3.0000000e+00\n")[-1]
    rgb_peak = _ck_sequence(tmp_path, "S010", "002", 2, "7.0000000e+00", rgb=True)[-1]
    _ck_sequence(tmp_path, "S010", "003", 2)  # an unlabelled sequence: ignored

    records = _scan("ckplus", tmp_path)
    assert len(records) == 2 and all(r.bad is None and r.split is None for r in records)
    disgust, surprise = records
    assert disgust.expression == _idx("disgust") and disgust.labels == {"identity": 5}
    assert disgust.where == "cohn-kanade-images/S005/001/S005_001_00000003.png"
    np.testing.assert_array_equal(disgust.image, peak)
    assert surprise.expression == _idx("surprise") and surprise.labels == {"identity": 10}
    np.testing.assert_array_equal(surprise.image, rgb_peak)


@pytest.mark.parametrize(
    ("code", "canonical"),
    [
        ("0", "neutral"),
        ("2.0", "contempt"),
        ("1.0000000e+00", "anger"),
        ("4", "fear"),
        ("5", "happy"),
        ("6", "sad"),
    ],
)
def test_ckplus_codes_map_to_canonical(tmp_path, code, canonical):
    _ck_sequence(tmp_path, "S001", "001", 1, code)
    (record,) = _scan("ckplus", tmp_path)
    assert record.expression == _idx(canonical)


def test_ckplus_bad_labels_missing_and_unreadable_images(tmp_path):
    _ck_sequence(tmp_path, "S011", "001", 1, "abc")
    _ck_sequence(tmp_path, "S012", "001", 1, "9.0000000e+00")
    orphan = tmp_path / "Emotion" / "S013" / "001" / "S013_001_00000004_emotion.txt"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("5.0000000e+00")
    _ck_sequence(tmp_path, "S014", "001", 1, "5.0000000e+00")
    cut = tmp_path / "cohn-kanade-images" / "S014" / "001" / "S014_001_00000001.png"
    _truncate(cut, _pixels(0, size=64))

    records = _scan("ckplus", tmp_path)
    assert all(r.bad is not None and r.image is None for r in records)
    by_subject = {r.where.split("/")[1]: r.bad for r in records}
    assert by_subject["S011"].where == "Emotion/S011/001/S011_001_00000001_emotion.txt"
    assert "not a number: 'abc'" in by_subject["S011"].reason
    assert "unknown emotion code 9" in by_subject["S012"].reason
    assert "S013_001_00000004_emotion.txt" in str(by_subject["S013"])
    assert "no cohn-kanade-images/S013/001/S013_001_00000004.png" in by_subject["S013"].reason
    assert by_subject["S014"].where == "cohn-kanade-images/S014/001/S014_001_00000001.png"


def test_ckplus_needs_both_trees(tmp_path):
    (tmp_path / "cohn-kanade-images").mkdir()
    with pytest.raises(SourceError, match="no Emotion/ folder"):
        _scan("ckplus", tmp_path)


# --- image folders ------------------------------------------------------------------


def test_imagefolder_splits_and_synonyms(tmp_path):
    angry = _write(tmp_path / "train" / "Angry" / "a.png", _pixels(0))
    _write(tmp_path / "train" / "happiness" / "b.JPEG", _pixels(1, rgb=True))
    _write(tmp_path / "train" / "happiness" / "c.jpg", _pixels(2, rgb=True))
    (tmp_path / "train" / "happiness" / "Thumbs.db").write_bytes(b"\0")
    _write(tmp_path / "Validation" / "SURPRISED" / "d.png", _pixels(3, rgb=True))
    _write(tmp_path / "test" / "Fearful" / "e.png", _pixels(4))
    _write(tmp_path / "valid" / "disgusted" / "f.png", _pixels(5))

    records = _scan("imagefolder", tmp_path)
    got = [(r.where, r.split, EXPRESSIONS[r.expression]) for r in records]
    assert got == [
        ("Validation/SURPRISED/d.png", "val", "surprise"),
        ("test/Fearful/e.png", "test", "fear"),
        ("train/Angry/a.png", "train", "anger"),
        ("train/happiness/b.JPEG", "train", "happy"),
        ("train/happiness/c.jpg", "train", "happy"),
        ("valid/disgusted/f.png", "val", "disgust"),
    ]
    np.testing.assert_array_equal(records[2].image, angry)
    assert records[0].image.shape == (8, 8, 3) and records[2].image.shape == (8, 8)


def test_imagefolder_without_split_folders(tmp_path):
    _write(tmp_path / "sad" / "a.png", _pixels(0))
    _write(tmp_path / "Contempt" / "b.png", _pixels(1))
    records = _scan("imagefolder", tmp_path)
    assert [(r.split, EXPRESSIONS[r.expression]) for r in records] == [
        (None, "contempt"),
        (None, "sad"),
    ]


@pytest.mark.parametrize(
    ("folders", "message"),
    [
        (["train/angry", "train/bored"], "unknown class folder 'bored'.*accepted names"),
        (["angry", "Bored"], "unknown class folder 'Bored'"),
        (["train/angry", "dev/angry"], "unknown split folder 'dev'.*train, training, val"),
        (["train/angry", "angry"], "unknown split folder 'angry'"),
    ],
)
def test_imagefolder_unknown_folders_are_source_errors(tmp_path, folders, message):
    for i, folder in enumerate(folders):
        _write(tmp_path / folder / "x.png", _pixels(i))
    with pytest.raises(SourceError, match=message):
        _scan("imagefolder", tmp_path)


def test_imagefolder_empty_class_is_a_source_error(tmp_path):
    _write(tmp_path / "train" / "happy" / "a.png", _pixels(0))
    (tmp_path / "train" / "neutral").mkdir()
    (tmp_path / "train" / "neutral" / "README.txt").write_text("no images here")
    with pytest.raises(SourceError, match="train/neutral: empty class"):
        _scan("imagefolder", tmp_path)


@pytest.mark.parametrize("name", ["cut.png", "cut.jpg"])
def test_imagefolder_truncated_image_is_a_bad_record(tmp_path, name):
    _write(tmp_path / "happy" / "a.png", _pixels(0))
    _truncate(tmp_path / "happy" / name, _pixels(1, rgb=True, size=64))
    good, bad = _scan("imagefolder", tmp_path)
    assert good.bad is None and good.expression == _idx("happy")
    assert bad.image is None and bad.expression is None
    assert bad.bad.where == bad.where == f"happy/{name}"
    assert "truncated" in bad.bad.reason
