"""FERPlus: FER2013's faces with 10 annotators' votes from `fer2013new.csv` (DATASETS.md).

SOURCE is a folder holding both `fer2013.csv` (the pixels) and `fer2013new.csv` (the
votes), row-aligned. Before anything is yielded the two files are checked to have the
same number of rows and the same `Usage` on every row; a mismatch is a `SourceError`.

Rows with an empty `Image name`, and rows with no vote for any of the 8 classes (only
`unknown`/`NF` votes), are dropped without counting as bad. The hard label is the class
with the most votes; ties go to the earlier class in canonical order (neutral first).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

import numpy as np

from hmtl.trainables.data.readers import fer2013
from hmtl.trainables.data.readers._common import bad_record, header_columns, open_csv
from hmtl.trainables.data.readers.base import ReaderOptions, Record, SourceError

FILENAME = "fer2013new.csv"
VOTE_CLASSES = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
HEADER = ("Usage", "Image name", *VOTE_CLASSES, "unknown", "NF")
# FERPlus vote column k holds the votes for canonical class CANONICAL[k].
CANONICAL = np.array([0, 1, 3, 2, 6, 5, 4, 7])
MODES = ("majority", "distribution")


def _files(source: Path) -> tuple[Path, Path]:
    source = Path(source)
    pixels, votes = source / fer2013.FILENAME, source / FILENAME
    for path in (pixels, votes):
        if not path.is_file():
            raise SourceError(
                f"{source}: no {path.name} there (FERPlus needs {fer2013.FILENAME} "
                f"and {FILENAME} in one folder)"
            )
    return pixels, votes


def _vote_rows(path: Path) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    rows = open_csv(path)
    first = next(rows, None)
    if first is None:
        raise SourceError(f"{path}: empty file, expected header {','.join(HEADER)!r}")
    return header_columns(path, first[1], HEADER), rows


def _pairs(pixels: Path, votes: Path):
    """Both files' data rows side by side, as (pixel row, vote row); None past an end."""
    pixel_columns, pixel_rows = fer2013.read_rows(pixels)
    vote_columns, vote_rows = _vote_rows(votes)
    return pixel_columns, vote_columns, zip_longest(pixel_rows, vote_rows)


def _check_aligned(pixels: Path, votes: Path) -> None:
    """SourceError naming both files and the first row where they disagree."""
    pixel_columns, vote_columns, pairs = _pairs(pixels, votes)
    for n, (pixel_row, vote_row) in enumerate(pairs, start=1):
        if pixel_row is None or vote_row is None:
            ended, other = (pixels, votes) if pixel_row is None else (votes, pixels)
            line = (vote_row or pixel_row)[0]
            raise SourceError(
                f"{ended} and {other} are not row-aligned: {ended.name} ends after "
                f"{n - 1} data rows, {other}:{line} has more"
            )
        usage = _field(pixel_row[1], pixel_columns["Usage"])
        vote_usage = _field(vote_row[1], vote_columns["Usage"])
        # A row too short to have a Usage is a bad row for the scan, not a misalignment.
        if usage is not None and vote_usage is not None and usage != vote_usage:
            raise SourceError(
                f"{pixels} and {votes} are not row-aligned: data row {n} has Usage "
                f"{usage!r} at {pixels.name}:{pixel_row[0]} but {vote_usage!r} at "
                f"{votes.name}:{vote_row[0]}"
            )


def _field(fields: list[str], k: int) -> str | None:
    return fields[k].strip() if k < len(fields) else None


def _parse_votes(fields: list[str], columns: dict[str, int]) -> np.ndarray:
    """The 8 class votes in canonical order, float32; ValueError saying what is wrong."""
    if len(fields) != len(HEADER):
        raise ValueError(f"expected {len(HEADER)} fields, found {len(fields)}")
    votes = np.zeros(len(CANONICAL), dtype=np.float32)
    for k, name in enumerate(VOTE_CLASSES):
        text = fields[columns[name]].strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"non-numeric {name} vote count {text!r}") from None
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} vote count {text!r} is not a non-negative number")
        votes[CANONICAL[k]] = value
    return votes


class FerPlusReader:
    name = "ferplus"

    def scan(self, source: Path, options: ReaderOptions) -> Iterator[Record]:
        if options.ferplus_mode not in MODES:
            raise ValueError(f"ferplus_mode must be one of {MODES}, got {options.ferplus_mode!r}")
        pixels, votes = _files(source)
        _check_aligned(pixels, votes)
        pixel_columns, vote_columns, pairs = _pairs(pixels, votes)
        for (pixel_line, pixel_fields), (vote_line, vote_fields) in pairs:
            if not _field(vote_fields, vote_columns["Image name"]):
                continue
            vote_where = f"{votes}:{vote_line}"
            try:
                counts = _parse_votes(vote_fields, vote_columns)
            except ValueError as err:
                yield bad_record(vote_where, str(err))
                continue
            total = counts.sum()
            if total == 0:
                continue
            where = f"{pixels}:{pixel_line}"
            try:
                image, _, split = fer2013.parse_row(pixel_fields, pixel_columns)
            except ValueError as err:
                yield bad_record(where, str(err))
                continue
            # np.argmax takes the first maximum: ties resolve in canonical order.
            expression = int(np.argmax(counts))
            soft = counts / total if options.ferplus_mode == "distribution" else None
            yield Record(image=image, expression=expression, split=split, soft=soft, where=where)

    def count(self, source: Path, options: ReaderOptions) -> int | None:
        """Rows kept by `scan`; only the small votes file is read."""
        _, votes = _files(source)
        columns, rows = _vote_rows(votes)
        kept = 0
        for _, fields in rows:
            if not _field(fields, columns["Image name"]):
                continue
            try:
                kept += bool(_parse_votes(fields, columns).sum() > 0)
            except ValueError:
                kept += 1  # scan yields a bad record for it
        return kept


READER = FerPlusReader()
