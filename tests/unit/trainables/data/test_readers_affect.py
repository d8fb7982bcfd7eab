"""RAF-DB and AffectNet readers on tiny image-folder fixtures written by the tests."""

import numpy as np
import pytest
from PIL import Image

from hmtl.trainables.data.readers import get_reader
from hmtl.trainables.data.readers.base import ReaderOptions, SourceError

AFFECT_HEADER = (
    "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
    "expression,valence,arousal"
)


RGB = (200, 120, 40)
GREY = 120


def _image(path, size=(8, 8), grey=False):
    """A flat JPEG, RGB or grey (flat, so JPEG loss keeps it close to its colour)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = size[::-1] if grey else (*size[::-1], 1)
    pixels = np.full(shape, GREY, np.uint8) if grey else np.tile(np.uint8(RGB), shape)
    Image.fromarray(pixels).save(path, quality=95)
    return path


def _colour(image):
    return image.reshape(-1, 3).mean(axis=0)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _scan(name, source, **options):
    reader = get_reader(name)
    opts = ReaderOptions(**options)
    return list(reader.scan(source, opts)), reader.count(source, opts)


# --- RAF-DB ------------------------------------------------------------------------------


def _rafdb(tmp_path, lines):
    labels = tmp_path / "EmoLabel" / "list_patition_label.txt"
    labels.parent.mkdir(parents=True)
    labels.write_text("\n".join(lines) + "\n")
    for line in filter(None, lines):
        name = line.split()[0]
        grey = name.startswith("test_")  # a grey JPEG in an RGB dataset comes out RGB
        _image(tmp_path / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"), grey=grey)
    return labels


def test_rafdb_maps_labels_and_splits(tmp_path):
    lines = [f"train_{k:05d}.jpg {k}" for k in range(1, 8)] + ["test_0001.jpg 4", ""]
    _rafdb(tmp_path, lines)
    records, count = _scan("rafdb", tmp_path)
    assert count == len(records) == 8
    assert [r.expression for r in records] == [3, 4, 5, 1, 2, 6, 0, 1]
    assert [r.split for r in records] == ["train"] * 7 + ["test"]
    for r in records:
        assert r.bad is None and r.image.dtype == np.uint8 and r.image.shape == (8, 8, 3)
    np.testing.assert_allclose(_colour(records[0].image), RGB, atol=3)
    np.testing.assert_allclose(_colour(records[7].image), [GREY] * 3, atol=3)
    assert records[7].where.endswith("list_patition_label.txt:8")


@pytest.mark.parametrize(
    "line, reason",
    [
        ("train_00002.jpg 8", "unknown label '8'"),
        ("train_00002.jpg", "malformed line 'train_00002.jpg'"),
        ("val_00002.jpg 1", "neither 'train_' nor 'test_'"),
        ("train_00002.jpg missing", "missing image file"),
        ("train_00002.jpg truncated", "truncated or corrupt image"),
    ],
)
def test_rafdb_bad_lines_and_images_name_file_and_line(tmp_path, line, reason):
    labels = _rafdb(tmp_path, ["train_00001.jpg 1", "train_00002.jpg 1", "test_00003.jpg 2"])
    text = labels.read_text().splitlines()
    if line.endswith("missing"):
        (tmp_path / "Image" / "aligned" / "train_00002_aligned.jpg").unlink()
    elif line.endswith("truncated"):
        _truncate(tmp_path / "Image" / "aligned" / "train_00002_aligned.jpg")
    else:
        text[1] = line
    labels.write_text("\n".join(text) + "\n")
    records, count = _scan("rafdb", tmp_path)
    assert count == len(records) == 3
    assert [r.bad is None for r in records] == [True, False, True]
    assert records[1].bad.where == f"{labels}:2" and reason in records[1].bad.reason
    assert str(records[1].bad).startswith(f"{labels}:2: ")


def test_rafdb_without_label_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="list_patition_label.txt"):
        list(get_reader("rafdb").scan(tmp_path, ReaderOptions()))


# --- AffectNet ---------------------------------------------------------------------------


def _affect_line(path, box, code, valence, arousal):
    # Landmarks hold ';' but no ',' in AffectNet, so they need no quoting.
    return ",".join(
        [path, *map(str, box), "1.0;2.0;3.0;4.0", str(code), str(valence), str(arousal)]
    )


TRAINING = [
    ("1/a.jpg", (2, 3, 10, 8), 1, 0.5, -0.25),  # happy, cropped to 8×10
    ("1/b.jpg", (0, 0, 20, 16), 8, 0.0, 0.0),  # None: dropped
    ("2/c.jpg", (-4, 10, 12, 30), 7, -2, 0.75),  # contempt, box clamped to 6×8, no valence
    ("2/d.jpg", (0, 0, 20, 16), 9, -2, -2),  # Uncertain: dropped
    ("2/e.jpg", (0, 0, 20, 16), 10, -2, -2),  # No-Face: dropped
]
VALIDATION = [
    ("3/f.jpg", (0, 0, 20, 16), 0, -2, -2),  # neutral, no valence or arousal
    ("3/g.jpg", (5, 5, 5, 5), 6, -1, 1),  # anger, a grey JPEG in an RGB dataset
]


def _affectnet(tmp_path, training=TRAINING, validation=VALIDATION, validation_header=False):
    for rows in (training, validation):
        for path, *_ in rows:
            _image(tmp_path / "Manually_Annotated_Images" / path, (20, 16), grey=path == "3/g.jpg")
    lines = [_affect_line(*row) for row in training]
    (tmp_path / "training.csv").write_text("\n".join([AFFECT_HEADER, *lines]) + "\n")
    lines = [_affect_line(*row) for row in validation]
    if validation_header:
        lines.insert(0, AFFECT_HEADER)
    (tmp_path / "validation.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("validation_header", [False, True])
def test_affectnet_labels_splits_affect_and_face_crop(tmp_path, validation_header):
    _affectnet(tmp_path, validation_header=validation_header)
    records, count = _scan("affectnet", tmp_path)
    assert count == len(records) == 4  # codes 8, 9, 10 dropped, not bad
    assert all(r.bad is None for r in records)
    assert [r.expression for r in records] == [1, 7, 0, 6]
    assert [r.split for r in records] == ["train", "train", "test", "test"]
    assert [r.image.shape for r in records] == [(8, 10, 3), (6, 8, 3), (16, 20, 3), (5, 5, 3)]
    assert [r.labels for r in records] == [
        {"valence": 0.5, "arousal": -0.25},
        {"arousal": 0.75},
        {},
        {"valence": -1.0, "arousal": 1.0},
    ]
    np.testing.assert_allclose(_colour(records[2].image), RGB, atol=3)
    np.testing.assert_allclose(_colour(records[3].image), [GREY] * 3, atol=3)
    # The header-less validation.csv's first line is data, so it is line 1.
    assert records[2].where == f"{tmp_path / 'validation.csv'}:{1 + validation_header}"


def test_affectnet_whole_image_without_crop(tmp_path):
    _affectnet(tmp_path)
    records, _ = _scan("affectnet", tmp_path, crop_face=False)
    assert all(r.image.shape == (16, 20, 3) and r.image.dtype == np.uint8 for r in records)


@pytest.mark.parametrize(
    "row, reason",
    [
        (("4/h.jpg", (0, 0, 20, 16), 11, 0, 0), "unknown expression code '11'"),
        (("4/h.jpg", ("x", 0, 20, 16), 1, 0, 0), "face box: non-numeric face_x 'x'"),
        (("4/h.jpg", (30, 0, 20, 16), 1, 0, 0), "outside the 20×16 image"),
        (("4/h.jpg", (0, 0, 20, 16), 1, 1.5, 0), "valence 1.5 outside [-1, 1]"),
        (("4/missing.jpg", (0, 0, 20, 16), 1, 0, 0), "missing image file"),
        (("4/truncated.jpg", (0, 0, 20, 16), 1, 0, 0), "truncated or corrupt image"),
    ],
)
def test_affectnet_bad_rows_name_file_and_line(tmp_path, row, reason):
    truncated = ("4/truncated.jpg", (0, 0, 20, 16), 1, 0, 0)
    _affectnet(tmp_path, training=[*TRAINING, truncated], validation=[*VALIDATION, row])
    _truncate(tmp_path / "Manually_Annotated_Images" / "4" / "truncated.jpg")
    (tmp_path / "Manually_Annotated_Images" / "4" / "missing.jpg").unlink(missing_ok=True)
    records, count = _scan("affectnet", tmp_path)
    assert count == len(records) == 6
    bad = [r.bad for r in records if r.bad is not None]
    assert bad[0].where == f"{tmp_path / 'training.csv'}:7"
    assert "truncated or corrupt image" in bad[0].reason
    assert bad[1].where == f"{tmp_path / 'validation.csv'}:3" and reason in bad[1].reason


def test_affectnet_header_with_a_missing_column_is_a_source_error(tmp_path):
    _affectnet(tmp_path)
    path = tmp_path / "training.csv"
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace(",arousal", "")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError) as err:
        list(get_reader("affectnet").scan(tmp_path, ReaderOptions()))
    assert str(path) in str(err.value) and "missing arousal" in str(err.value)
