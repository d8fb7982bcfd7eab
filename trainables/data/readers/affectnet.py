"""AffectNet (manually annotated): two CSVs of image paths, face boxes and labels
(DATASETS.md).

SOURCE is the root holding `training.csv` (-> train), `validation.csv` (-> test, the usual
test set; a val split is carved from train later) and `Manually_Annotated_Images/`.
Some copies of the CSVs have no header row: a first row whose first field is not
`subDirectory_filePath` but which has the 9 fields is read as data, by position.

Codes 8..10 (None, Uncertain, No-Face) are dropped without counting as bad. Valence and
arousal go into `Record.labels`, each left out where it is -2 (not applicable).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

import numpy as np

from hmtl.trainables.data.readers._common import bad_record, decode_image, header_columns, open_csv
from hmtl.trainables.data.readers.base import BadRow, ReaderOptions, Record, SourceError

HEADER = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
FILES = (("training.csv", "train"), ("validation.csv", "test"))
IMAGE_DIR = "Manually_Annotated_Images"
CODES = range(8)  # AffectNet's codes 0..7 are the canonical order itself.
DROPPED = {8, 9, 10}
NOT_APPLICABLE = -2.0


def _paths(source: Path) -> tuple[list[tuple[Path, str]], Path]:
    source = Path(source)
    images = source / IMAGE_DIR
    tables = [(source / name, split) for name, split in FILES]
    for path, _ in tables:
        if not path.is_file():
            raise SourceError(f"{source}: no {path.name} there (give the AffectNet root)")
    if not images.is_dir():
        raise SourceError(f"{source}: no {IMAGE_DIR}/ folder there")
    return tables, images


def _rows(path: Path) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    """Column positions and data rows of one CSV, with or without its header row."""
    rows = open_csv(path)
    first = next(rows, None)
    if first is None:
        raise SourceError(f"{path}: empty file, expected header {','.join(HEADER)!r}")
    _, fields = first
    if fields[0].strip() == HEADER[0]:
        return header_columns(path, fields, HEADER), rows
    if len(fields) == len(HEADER):
        return {name: k for k, name in enumerate(HEADER)}, chain([first], rows)
    raise SourceError(
        f"{path}:1: expected header {','.join(HEADER)!r} (or a header-less first data row "
        f"of {len(HEADER)} fields), found {','.join(fields)[:200]!r}"
    )


def _code(fields: list[str], columns: dict[str, int]) -> int:
    """The expression code of a row; ValueError when there is none or it is unknown."""
    if len(fields) != len(HEADER):
        raise ValueError(f"expected {len(HEADER)} fields, found {len(fields)}")
    text = fields[columns["expression"]].strip()
    try:
        code = int(text)
    except ValueError:
        code = -1
    if code not in CODES and code not in DROPPED:
        raise ValueError(f"unknown expression code {text!r} (expected 0..10)")
    return code


def _number(fields: list[str], columns: dict[str, int], name: str) -> float:
    text = fields[columns[name]].strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"non-numeric {name} {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} {text!r} is not a finite number")
    return value


def _affect(fields: list[str], columns: dict[str, int]) -> dict[str, float]:
    """valence and arousal where annotated (not -2), each in [-1, 1]."""
    labels = {}
    for name in ("valence", "arousal"):
        value = _number(fields, columns, name)
        if value == NOT_APPLICABLE:
            continue
        if not -1.0 <= value <= 1.0:
            raise ValueError(f"{name} {value} outside [-1, 1] (and not -2)")
        labels[name] = value
    return labels


def _box(fields: list[str], columns: dict[str, int]) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the face; ValueError if not numeric or empty."""
    names = ("face_x", "face_y", "face_width", "face_height")
    try:
        x, y, w, h = (round(_number(fields, columns, name)) for name in names)
    except ValueError as err:
        raise ValueError(f"face box: {err}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"face box has width {w} and height {h}")
    return x, y, w, h


def _crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The face box clamped to the image; ValueError if nothing of it is inside."""
    x, y, w, h = box
    height, width = image.shape[:2]
    x0, x1 = max(x, 0), min(x + w, width)
    y0, y1 = max(y, 0), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box x={x} y={y} w={w} h={h} is outside the {width}×{height} image")
    # A copy, so the whole decoded image is not kept alive by a view.
    return image[y0:y1, x0:x1].copy()


class AffectNetReader:
    name = "affectnet"

    def scan(self, source: Path, options: ReaderOptions) -> Iterator[Record]:
        tables, images = _paths(source)
        # Both headers are checked before the first record, not after all of training.csv.
        opened = [(path, split, *_rows(path)) for path, split in tables]
        for path, split, columns, rows in opened:
            for line, fields in rows:
                where = f"{path}:{line}"
                try:
                    code = _code(fields, columns)
                    if code in DROPPED:
                        continue
                    labels = _affect(fields, columns)
                    # The box is checked only when used: without cropping it is irrelevant.
                    box = _box(fields, columns) if options.crop_face else None
                    relative = fields[columns["subDirectory_filePath"]].strip()
                    image = decode_image(images / relative, where, "RGB")
                    if box is not None:
                        image = _crop(image, box)
                except BadRow as err:
                    yield Record(image=None, expression=None, where=where, bad=err)
                    continue
                except ValueError as err:
                    yield bad_record(where, str(err))
                    continue
                yield Record(image=image, expression=code, split=split, labels=labels, where=where)

    def count(self, source: Path, options: ReaderOptions) -> int | None:
        """Rows kept by `scan` (codes 8..10 left out); reads the CSVs, not the images."""
        tables, _ = _paths(source)
        kept = 0
        for path, _ in tables:
            columns, rows = _rows(path)
            for _, fields in rows:
                try:
                    kept += _code(fields, columns) not in DROPPED
                except ValueError:
                    kept += 1  # scan yields a bad record for it
        return kept


READER = AffectNetReader()
