"""Round trip for every real format: a tiny fixture dataset written here, `prepare`, then
`read_prepared` gives back exactly what the format's reader yields, conformed.

The fixtures follow tests/unit/test_readers_{csv,affect,folders}.py (the writing code is
copied, small, so this file stands alone). The reader is the reference: the prepared
pixels must equal `conform_image(record.image, size, channels)` row by row, in the
reader's order (prepare streams records into shards without reordering them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hmtl.trainables.data.prepare import conform_image, prepare
from hmtl.trainables.data.prepared import EXPRESSIONS, OPTIONAL_LABELS, read_prepared
from hmtl.trainables.data.readers import get_reader
from hmtl.trainables.data.readers.base import ReaderOptions


@dataclass
class Case:
    """A fixture dataset and what its round trip must show."""

    fmt: str
    source: Path
    rows: int
    """Good records the fixture is built to give (a guard against an empty fixture)."""
    labels: tuple[str, ...] = ()
    """Optional label columns the card must list."""
    has_split: bool = False
    soft: bool = False
    options: ReaderOptions = field(default_factory=ReaderOptions)
    prepare_args: dict = field(default_factory=dict)
    """size= / channels= where the source's images disagree."""


# --- fixture writers ---------------------------------------------------------------------


def _pixels(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _image(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(pixels).save(path, format=fmt, quality=95)


def _lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


FER_HEADER = "emotion,pixels,Usage"
FER_ROWS = [  # (FER2013 code, Usage)
    (3, "Training"),  # happy
    (0, "Training"),  # anger
    (3, "PublicTest"),
    (6, "PublicTest"),  # neutral
    (4, "PrivateTest"),  # sad
    (5, "Training"),  # surprise
]


def _fer_csv(root: Path, rows) -> None:
    lines = [
        f"{code},{' '.join(map(str, _pixels(k, 48 * 48).tolist()))},{usage}"
        for k, (code, usage) in enumerate(rows)
    ]
    _lines(root / "fer2013.csv", [FER_HEADER, *lines])


def _fer2013(root: Path) -> Case:
    _fer_csv(root, FER_ROWS)
    return Case("fer2013", root, rows=6, has_split=True)


PLUS_HEADER = (
    "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
)
# (Usage, image name, votes: neutral happiness surprise sadness anger disgust fear contempt
# unknown NF)
PLUS_ROWS = [
    ("Training", "fer0000000.png", [4, 0, 0, 1, 3, 0, 0, 0, 2, 0]),  # neutral
    ("Training", "", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # no image name: dropped
    ("Training", "fer0000002.png", [0, 0, 5, 5, 0, 0, 0, 0, 0, 0]),  # tie -> sad
    ("PublicTest", "fer0000003.png", [0, 0, 0, 0, 0, 0, 0, 0, 3, 7]),  # no class vote: dropped
    ("PublicTest", "fer0000004.png", [0, 0, 0, 0, 0, 0, 1, 9, 0, 0]),  # contempt
    ("PrivateTest", "fer0000005.png", [0, 2, 0, 0, 0, 0, 6, 0, 0, 0]),  # fear
    ("PrivateTest", "fer0000006.png", [1, 7, 0, 0, 0, 0, 0, 0, 2, 0]),  # happy
]


def _ferplus_source(root: Path) -> None:
    _fer_csv(root, [(0, usage) for usage, _, _ in PLUS_ROWS])
    lines = [",".join([usage, name, *map(str, votes)]) for usage, name, votes in PLUS_ROWS]
    _lines(root / "fer2013new.csv", [PLUS_HEADER, *lines])


def _ferplus(root: Path) -> Case:
    _ferplus_source(root)
    return Case("ferplus", root, rows=5, has_split=True)


def _ferplus_distribution(root: Path) -> Case:
    _ferplus_source(root)
    options = ReaderOptions(ferplus_mode="distribution")
    return Case("ferplus", root, rows=5, has_split=True, soft=True, options=options)


def _rafdb(root: Path) -> Case:
    names = [  # (name, RAF-DB label); 12 px faces prepared at 8 px
        ("train_00001.jpg", 4),  # happy
        ("train_00002.jpg", 7),  # neutral
        ("train_00003.jpg", 1),  # surprise
        ("test_0001.jpg", 5),  # sad
        ("test_0002.jpg", 4),
    ]
    _lines(root / "EmoLabel" / "list_patition_label.txt", [f"{n} {k}" for n, k in names])
    for i, (name, _) in enumerate(names):
        grey = i == 3  # a grey JPEG in an RGB dataset: the reader makes it RGB
        pixels = _pixels(i, (12, 12) if grey else (12, 12, 3))
        _image(root / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"), pixels)
    return Case("rafdb", root, rows=5, has_split=True, prepare_args={"size": 8})


AFFECT_HEADER = (
    "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
    "expression,valence,arousal"
)
AFFECT_TRAINING = [  # (path, face box x y w h, code, valence, arousal); images 20×16
    ("1/a.jpg", (2, 3, 10, 8), 1, 0.5, -0.25),  # happy
    ("1/b.jpg", (0, 0, 20, 16), 8, 0.0, 0.0),  # None: dropped
    ("2/c.jpg", (-4, 10, 12, 30), 7, -2, 0.75),  # contempt, box clamped, no valence
    ("2/d.jpg", (0, 0, 20, 16), 9, -2, -2),  # Uncertain: dropped
    ("2/e.jpg", (1, 1, 14, 14), 2, -0.5, 0.25),  # sad
]
AFFECT_VALIDATION = [  # header-less, as some copies are
    ("3/f.jpg", (0, 0, 20, 16), 0, -2, -2),  # neutral, no valence or arousal
    ("3/g.jpg", (5, 5, 7, 7), 6, -1, 1),  # anger, a grey JPEG
    ("3/h.jpg", (0, 0, 20, 16), 10, -2, -2),  # No-Face: dropped
]


def _affectnet(root: Path) -> Case:
    for k, (path, *_) in enumerate(AFFECT_TRAINING + AFFECT_VALIDATION):
        shape = (16, 20) if path == "3/g.jpg" else (16, 20, 3)
        _image(root / "Manually_Annotated_Images" / path, _pixels(k, shape))

    def line(path, box, code, valence, arousal):
        return ",".join([path, *map(str, box), "1.0;2.0", str(code), str(valence), str(arousal)])

    _lines(root / "training.csv", [AFFECT_HEADER, *(line(*row) for row in AFFECT_TRAINING)])
    _lines(root / "validation.csv", [line(*row) for row in AFFECT_VALIDATION])
    return Case(
        "affectnet",
        root,
        rows=5,
        labels=("arousal", "valence"),
        has_split=True,
        prepare_args={"size": 6},  # the face crops differ in size
    )


def _kdef(root: Path) -> Case:
    stems = ["AF01ANS", "AF01HAFL", "BF02SAHL", "AM02NEHR", "BM35SUFR", "am10dis"]
    for k, stem in enumerate(stems):
        suffix = ".jpg" if stem.islower() else ".JPG"
        _image(root / "KDEF" / stem[:4].upper() / f"{stem}{suffix}", _pixels(k, (8, 8, 3)))
    return Case("kdef", root / "KDEF", rows=6, labels=("gender", "identity", "yaw"))


def _ckplus(root: Path) -> Case:
    sequences = [  # (subject, sequence, frames, CK+ code of the last frame or None, rgb)
        ("S005", "001", 3, "3.0000000e+00", False),  # disgust
        ("S005", "002", 2, "5.0000000e+00", False),  # happy
        ("S010", "002", 2, "7.0000000e+00", True),  # surprise, an RGB frame
        ("S010", "003", 2, None, False),  # unlabelled: not read
        ("S011", "001", 1, "   1.0000000e+00\n", False),  # anger
    ]
    for k, (subject, seq, frames, code, rgb) in enumerate(sequences):
        folder = root / "cohn-kanade-images" / subject / seq
        for i in range(1, frames + 1):
            pixels = _pixels(10 * k + i, (8, 8, 3) if rgb else (8, 8))
            _image(folder / f"{subject}_{seq}_{i:08d}.png", pixels)
        if code is not None:
            name = f"{subject}_{seq}_{frames:08d}_emotion.txt"
            _lines(root / "Emotion" / subject / seq / name, [code])
    # Grey and RGB frames mix, so the channel count is chosen.
    return Case("ckplus", root, rows=4, labels=("identity",), prepare_args={"channels": 1})


def _imagefolder(root: Path) -> Case:
    files = [  # (path, shape): grey and RGB, one 12×10 face centre-cropped
        ("train/Angry/a.png", (8, 8)),
        ("train/happiness/b.jpg", (8, 8, 3)),
        ("train/happiness/c.png", (12, 10, 3)),
        ("Validation/SURPRISED/d.png", (8, 8, 3)),
        ("test/Fearful/e.png", (8, 8)),
        ("test/neutral/f.jpeg", (8, 8, 3)),
    ]
    for k, (path, shape) in enumerate(files):
        _image(root / path, _pixels(k, shape))
    args = {"size": 8, "channels": 3}
    return Case("imagefolder", root, rows=6, has_split=True, prepare_args=args)


BUILDERS = [
    pytest.param(_fer2013, id="fer2013"),
    pytest.param(_ferplus, id="ferplus"),
    pytest.param(_ferplus_distribution, id="ferplus-distribution"),
    pytest.param(_rafdb, id="rafdb"),
    pytest.param(_affectnet, id="affectnet"),
    pytest.param(_kdef, id="kdef"),
    pytest.param(_ckplus, id="ckplus"),
    pytest.param(_imagefolder, id="imagefolder"),
]


# --- helpers -----------------------------------------------------------------------------


def _records(case: Case) -> list:
    records = list(get_reader(case.fmt).scan(case.source, case.options))
    assert all(r.bad is None for r in records), [str(r.bad) for r in records if r.bad]
    assert len(records) == case.rows
    assert len({r.expression for r in records}) >= 2
    return records


def _prepare(case: Case, out: Path, **extra):
    return prepare(
        case.fmt,
        case.source,
        out,
        options=case.options,
        progress=False,
        **case.prepare_args,
        **extra,
    )


def _target(case: Case, records: list) -> tuple[int, int]:
    """(size, channels) prepare must choose: given, else the first image's own."""
    first = records[0].image
    size = case.prepare_args.get("size") or min(first.shape[:2])
    channels = case.prepare_args.get("channels") or (1 if first.ndim == 2 else 3)
    return size, channels


def _expected_label(records: list, name: str) -> np.ndarray:
    dtype = OPTIONAL_LABELS[name].to_pandas_dtype()
    missing = -1 if np.issubdtype(dtype, np.integer) else np.nan
    return np.array([r.labels.get(name, missing) for r in records], dtype=np.float64).astype(dtype)


# --- tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDERS)
def test_prepare_then_read_gives_the_readers_records(build, tmp_path):
    case = build(tmp_path / "src")
    records = _records(case)
    size, channels = _target(case, records)

    result = _prepare(case, tmp_path / "out")
    assert not result.reused and result.bad_rows == 0
    got = read_prepared(result.uri)
    card = got.card
    assert card == result.card and card["fingerprint"] == Path(result.uri).name

    # Pixels, row for row in the reader's order.
    assert got.images.dtype == np.uint8
    assert got.images.shape == (len(records), size, size, channels)
    want = np.stack([conform_image(r.image, size, channels) for r in records])
    np.testing.assert_array_equal(got.images, want)

    # Expression and the optional labels.
    np.testing.assert_array_equal(got.labels["expression"], [r.expression for r in records])
    assert {k for r in records for k in r.labels} == set(case.labels)
    assert card["optional_labels"] == sorted(case.labels)
    assert set(got.labels) == {"expression", *case.labels, *(["soft"] if case.soft else [])}
    for name in case.labels:
        want_label = _expected_label(records, name)
        assert got.labels[name].dtype == want_label.dtype, name
        np.testing.assert_array_equal(got.labels[name], want_label, err_msg=name)

    # Soft votes (FERPlus in distribution mode).
    assert card["has_soft_labels"] is case.soft
    if case.soft:
        assert all(r.soft is not None for r in records)
        assert got.labels["soft"].dtype == np.float32
        np.testing.assert_array_equal(got.labels["soft"], np.stack([r.soft for r in records]))
    else:
        assert all(r.soft is None for r in records)

    # Splits, where the format has them.
    assert card["has_split"] is case.has_split
    if case.has_split:
        assert got.split is not None
        assert got.split.tolist() == [r.split for r in records]
    else:
        assert got.split is None and all(r.split is None for r in records)

    # The card.
    assert card["num_rows"] == len(records)
    assert (card["image_size"], card["channels"]) == (size, channels)
    assert card["source_format"] == case.fmt and card["bad_rows"] == 0
    assert card["reader_options"]["ferplus_mode"] == case.options.ferplus_mode
    tallies: dict[str, Counter] = {}
    for r in records:
        tallies.setdefault(r.split if case.has_split else "all", Counter())[r.expression] += 1
    assert card["counts"] == {
        group: {name: tally[i] for i, name in enumerate(EXPRESSIONS)}
        for group, tally in tallies.items()
    }
    if "identity" in case.labels:
        assert card["split_groups"] == "identity"
    else:
        assert "split_groups" not in card

    # The same source again: recognised by its fingerprint, nothing new written.
    before = sorted((tmp_path / "out").rglob("*"))
    again = _prepare(case, tmp_path / "out")
    assert again.reused and again.uri == result.uri
    assert again.card["fingerprint"] == card["fingerprint"]
    assert sorted((tmp_path / "out").rglob("*")) == before
    assert not list((tmp_path / "out").rglob(".tmp-*"))


@pytest.mark.parametrize("build", BUILDERS)
def test_small_shards_give_the_same_fingerprint_and_rows(build, tmp_path):
    case = build(tmp_path / "src")
    whole = _prepare(case, tmp_path / "whole")
    sharded = _prepare(case, tmp_path / "sharded", rows_per_shard=2)
    assert len(whole.card["shards"]) == 1
    assert len(sharded.card["shards"]) == -(-case.rows // 2)
    assert not sharded.reused
    assert sharded.card["fingerprint"] == whole.card["fingerprint"]
    a, b = read_prepared(whole.uri), read_prepared(sharded.uri)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.labels.keys() == b.labels.keys()
    for name in a.labels:
        np.testing.assert_array_equal(a.labels[name], b.labels[name], err_msg=name)
    assert (a.split is None) == (b.split is None)
    if a.split is not None:
        assert a.split.tolist() == b.split.tolist()
