"""FER2013: one CSV, `emotion,pixels,Usage`, each row a 48×48 grey face (DATASETS.md).

SOURCE is `fer2013.csv` itself or a folder holding it. The file is streamed row by row;
every data row gives one `Record`, a bad one (`Record.bad`) naming `file:line`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hmtl.trainables.data.readers._common import bad_record, count_lines, header_columns, open_csv
from hmtl.trainables.data.readers.base import ReaderOptions, Record, SourceError

FILENAME = "fer2013.csv"
HEADER = ("emotion", "pixels", "Usage")
SIDE = 48

# FER2013 codes 0 Angry .. 6 Neutral -> canonical (neutral, happy, sad, surprise, fear,
# disgust, anger, contempt).
EMOTIONS = {0: 6, 1: 5, 2: 4, 3: 1, 4: 2, 5: 3, 6: 0}
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def find_csv(source: Path, filename: str = FILENAME) -> Path:
    """`source` if it is a file, else `source/filename`; SourceError if there is none."""
    source = Path(source)
    path = source if source.is_file() else source / filename
    if not path.is_file():
        raise SourceError(f"{source}: no {filename} there (give the file or its folder)")
    return path


def read_rows(path: Path) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    """Check the header of a fer2013.csv and return its column positions and the data rows."""
    rows = open_csv(path)
    first = next(rows, None)
    if first is None:
        raise SourceError(f"{path}: empty file, expected header {','.join(HEADER)!r}")
    return header_columns(path, first[1], HEADER), rows


def parse_split(text: str) -> str:
    """The split for a `Usage` value; ValueError naming the valid ones otherwise."""
    split = USAGE.get(text.strip())
    if split is None:
        raise ValueError(f"unknown Usage {text!r} (expected one of {', '.join(USAGE)})")
    return split


def parse_pixels(text: str) -> np.ndarray:
    """A `pixels` field as a (48, 48) uint8 image; ValueError saying what is wrong."""
    try:
        # numpy's C parser is several times faster than splitting and converting in Python.
        values = np.fromstring(text, dtype=np.int64, sep=" ")
    except ValueError:
        values = None
    ok = values is not None and values.size == SIDE * SIDE
    if ok and values.min() >= 0 and values.max() <= 255:
        return values.astype(np.uint8).reshape(SIDE, SIDE)
    # The slow path, only for rows that will most likely turn out bad: say what is wrong.
    tokens = text.split()
    if len(tokens) != SIDE * SIDE:
        raise ValueError(f"expected {SIDE * SIDE} pixel values, found {len(tokens)}")
    for k, token in enumerate(tokens):
        if not _is_byte(token):
            problem = "outside 0..255" if _is_int(token) else "non-numeric"
            raise ValueError(f"pixel value {token!r} {problem} (value {k + 1} of {len(tokens)})")
    # Integers numpy's parser refuses but Python reads ("+5"): still valid pixels.
    return np.array([int(t) for t in tokens], dtype=np.uint8).reshape(SIDE, SIDE)


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def _is_byte(token: str) -> bool:
    return _is_int(token) and 0 <= int(token) <= 255


def parse_row(fields: list[str], columns: dict[str, int]) -> tuple[np.ndarray, int, str]:
    """(image, canonical expression, split) of one data row; ValueError saying what is wrong."""
    if len(fields) != len(HEADER):
        raise ValueError(f"expected {len(HEADER)} fields, found {len(fields)}")
    code = fields[columns["emotion"]].strip()
    try:
        expression = EMOTIONS[int(code)]
    except (ValueError, KeyError):
        raise ValueError(f"unknown emotion code {code!r} (expected 0..6)") from None
    split = parse_split(fields[columns["Usage"]])
    return parse_pixels(fields[columns["pixels"]]), expression, split


class Fer2013Reader:
    name = "fer2013"

    def scan(self, source: Path, options: ReaderOptions) -> Iterator[Record]:
        path = find_csv(source)
        columns, rows = read_rows(path)
        for line, fields in rows:
            where = f"{path}:{line}"
            try:
                image, expression, split = parse_row(fields, columns)
            except ValueError as err:
                yield bad_record(where, str(err))
                continue
            yield Record(image=image, expression=expression, split=split, where=where)

    def count(self, source: Path, options: ReaderOptions) -> int | None:
        return max(count_lines(find_csv(source)) - 1, 0)


READER = Fer2013Reader()
