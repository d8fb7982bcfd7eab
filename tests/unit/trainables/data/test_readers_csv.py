"""FER2013 and FERPlus readers on tiny CSV fixtures written by the tests."""

import numpy as np
import pytest

from hmtl.trainables.data.readers import get_reader
from hmtl.trainables.data.readers.base import ReaderOptions, SourceError

FER_HEADER = "emotion,pixels,Usage"
PLUS_HEADER = (
    "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
)


def _pixels(seed: int, n: int = 2304) -> list[int]:
    return np.random.default_rng(seed).integers(0, 256, n).tolist()


def _fer_line(code, pixels, usage) -> str:
    text = pixels if isinstance(pixels, str) else " ".join(map(str, pixels))
    return f"{code},{text},{usage}"


def _write(path, header, lines):
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def _scan(name, source, **options):
    reader = get_reader(name)
    opts = ReaderOptions(**options)
    return list(reader.scan(source, opts)), reader.count(source, opts)


# --- FER2013 -----------------------------------------------------------------------------

# Usage of the fixture's rows, one per emotion code 0..6.
USAGES = (
    "Training",
    "Training",
    "PublicTest",
    "PrivateTest",
    "Training",
    "PublicTest",
    "PrivateTest",
)


def _fer(tmp_path, lines=None):
    if lines is None:
        lines = [_fer_line(code, _pixels(code), USAGES[code]) for code in range(7)]
    return _write(tmp_path / "fer2013.csv", FER_HEADER, lines)


def test_fer2013_maps_labels_splits_and_pixels(tmp_path):
    path = _fer(tmp_path)
    for source in (tmp_path, path):  # the folder or the file itself
        records, count = _scan("fer2013", source)
        assert count == len(records) == 7
        assert [r.expression for r in records] == [6, 5, 4, 1, 2, 3, 0]
        assert [r.split for r in records] == [
            "train",
            "train",
            "val",
            "test",
            "train",
            "val",
            "test",
        ]
        assert all(r.bad is None and r.soft is None and r.labels == {} for r in records)
        image = records[3].image
        assert image.dtype == np.uint8 and image.shape == (48, 48)
        np.testing.assert_array_equal(image.ravel(), _pixels(3))
        assert records[0].where == f"{path}:2"


@pytest.mark.parametrize(
    "header, problem",
    [("emotion,pixels", "missing Usage"), ("emotion,pixels,Usage,extra", "unexpected 'extra'")],
)
def test_fer2013_wrong_columns_name_the_file_and_header(tmp_path, header, problem):
    path = _write(tmp_path / "fer2013.csv", header, ["0,1 2,Training"])
    with pytest.raises(SourceError) as err:
        list(get_reader("fer2013").scan(tmp_path, ReaderOptions()))
    message = str(err.value)
    assert str(path) in message and "'emotion,pixels,Usage'" in message and problem in message


@pytest.mark.parametrize(
    "line, reason",
    [
        (_fer_line(0, _pixels(0, 2303), "Training"), "expected 2304 pixel values, found 2303"),
        (_fer_line(0, [*_pixels(0, 2303), "x7"], "Training"), "pixel value 'x7' non-numeric"),
        (_fer_line(0, [256, *_pixels(0, 2303)], "Training"), "'256' outside 0..255 (value 1"),
        (_fer_line(7, _pixels(0), "Training"), "unknown emotion code '7'"),
        (_fer_line(0, _pixels(0), "Validation"), "unknown Usage 'Validation'"),
        ("0,1 2", "expected 3 fields, found 2"),
    ],
)
def test_fer2013_bad_rows_name_file_and_line_and_scan_goes_on(tmp_path, line, reason):
    good = _fer_line(3, _pixels(1), "Training")
    path = _fer(tmp_path, [good, line, good])
    records, count = _scan("fer2013", tmp_path)
    assert count == len(records) == 3
    assert [r.bad is None for r in records] == [True, False, True]
    bad = records[1].bad
    assert bad.where == f"{path}:3" and str(bad) == f"{path}:3: {bad.reason}"
    assert reason in bad.reason
    assert records[1].image is None and records[1].expression is None


def test_fer2013_windows_line_ends_and_blank_lines_keep_count_and_line_numbers(tmp_path):
    lines = [_fer_line(code, _pixels(code), USAGES[code]) for code in range(3)]
    text = "\r\n".join([FER_HEADER, lines[0], "", lines[1], lines[2], "", ""])
    (tmp_path / "fer2013.csv").write_bytes(text.encode())
    records, count = _scan("fer2013", tmp_path)
    assert count == len(records) == 3
    assert [r.where.rsplit(":", 1)[1] for r in records] == ["2", "4", "5"]


def test_fer2013_missing_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no fer2013.csv"):
        list(get_reader("fer2013").scan(tmp_path, ReaderOptions()))


# --- FERPlus -----------------------------------------------------------------------------

# (Usage, image name, votes in FERPlus column order: neutral, happiness, surprise, sadness,
# anger, disgust, fear, contempt, unknown, NF)
PLUS_ROWS = [
    ("Training", "fer0000000.png", [4, 0, 0, 1, 3, 0, 0, 0, 2, 0]),  # neutral
    ("Training", "", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # no image name: dropped
    ("Training", "fer0000002.png", [0, 0, 5, 5, 0, 0, 0, 0, 0, 0]),  # tie: sad before surprise
    ("PublicTest", "fer0000003.png", [0, 0, 0, 0, 0, 0, 0, 0, 3, 7]),  # no class votes: dropped
    ("PublicTest", "fer0000004.png", [0, 0, 0, 0, 0, 0, 1, 9, 0, 0]),  # contempt
    ("PrivateTest", "fer0000005.png", [0, 2, 0, 0, 0, 0, 6, 0, 0, 0]),  # fear
]


def _plus_line(usage, name, votes) -> str:
    return ",".join([usage, name, *map(str, votes)])


def _ferplus(tmp_path, rows=PLUS_ROWS, fer_usages=None):
    fer_usages = fer_usages or [usage for usage, _, _ in rows]
    _fer(tmp_path, [_fer_line(0, _pixels(k), u) for k, u in enumerate(fer_usages)])
    return _write(tmp_path / "fer2013new.csv", PLUS_HEADER, [_plus_line(*r) for r in rows])


def test_ferplus_majority_labels_drops_and_pixels(tmp_path):
    _ferplus(tmp_path)
    records, count = _scan("ferplus", tmp_path)
    assert count == len(records) == 4
    assert [r.expression for r in records] == [0, 2, 7, 4]
    assert [r.split for r in records] == ["train", "train", "val", "test"]
    assert all(r.soft is None and r.bad is None for r in records)
    # Pixels come from the aligned fer2013.csv row (data row 5 -> seed 4).
    np.testing.assert_array_equal(records[2].image.ravel(), _pixels(4))
    assert records[2].where == f"{tmp_path / 'fer2013.csv'}:6"


def test_ferplus_distribution_is_in_canonical_order(tmp_path):
    _ferplus(tmp_path)
    records, _ = _scan("ferplus", tmp_path, ferplus_mode="distribution")
    first = records[0].soft
    assert first.dtype == np.float32 and first.shape == (8,)
    # neutral 4, sadness 1, anger 3 over 8 class votes (the 2 unknown votes are not counted)
    np.testing.assert_allclose(first, [0.5, 0, 0.125, 0, 0, 0, 0.375, 0])
    np.testing.assert_allclose(records[1].soft, [0, 0, 0.5, 0.5, 0, 0, 0, 0])
    assert all(abs(r.soft.sum() - 1) < 1e-6 for r in records)


def test_ferplus_row_count_mismatch_names_both_files(tmp_path):
    _ferplus(tmp_path, fer_usages=[u for u, _, _ in PLUS_ROWS] + ["Training"])
    with pytest.raises(SourceError) as err:
        list(get_reader("ferplus").scan(tmp_path, ReaderOptions()))
    message = str(err.value)
    assert "fer2013.csv" in message and "fer2013new.csv" in message
    assert "not row-aligned" in message and f"{tmp_path / 'fer2013.csv'}:8" in message


def test_ferplus_usage_mismatch_names_both_files_and_lines(tmp_path):
    usages = [u for u, _, _ in PLUS_ROWS]
    usages[4] = "Training"
    _ferplus(tmp_path, fer_usages=usages)
    with pytest.raises(SourceError) as err:
        list(get_reader("ferplus").scan(tmp_path, ReaderOptions()))
    message = str(err.value)
    assert "not row-aligned: data row 5" in message
    assert "fer2013.csv:6" in message and "fer2013new.csv:6" in message


def test_ferplus_bad_votes_and_bad_pixels_are_bad_rows(tmp_path):
    rows = [*PLUS_ROWS, ("Training", "fer0000006.png", [1, "x", 0, 0, 0, 0, 0, 0, 0, 0])]
    _ferplus(tmp_path, rows)
    lines = (tmp_path / "fer2013.csv").read_text().splitlines()
    lines[1] = _fer_line(0, _pixels(0, 100), "Training")
    (tmp_path / "fer2013.csv").write_text("\n".join(lines) + "\n")
    records, count = _scan("ferplus", tmp_path)
    assert count == len(records) == 5
    assert records[0].bad.where == f"{tmp_path / 'fer2013.csv'}:2"
    assert "found 100" in records[0].bad.reason
    assert records[-1].bad.where == f"{tmp_path / 'fer2013new.csv'}:8"
    assert "non-numeric happiness vote count 'x'" in records[-1].bad.reason


def test_ferplus_needs_both_files_and_a_known_mode(tmp_path):
    _fer(tmp_path)
    with pytest.raises(SourceError, match="no fer2013new.csv"):
        list(get_reader("ferplus").scan(tmp_path, ReaderOptions()))
    with pytest.raises(ValueError, match="ferplus_mode"):
        list(get_reader("ferplus").scan(tmp_path, ReaderOptions(ferplus_mode="soft")))
