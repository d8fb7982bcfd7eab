"""CK+ (extended Cohn-Kanade): the labelled peak frame of each posed sequence.

SOURCE is the CK+ root holding two parallel trees (DATASETS.md):

    cohn-kanade-images/S005/001/S005_001_00000011.png
    Emotion/S005/001/S005_001_00000011_emotion.txt     one float, e.g. 3.0000000e+00

Only frames with an emotion file count: the reader walks `Emotion/`, so the unlabelled
frames of each sequence (near-duplicates of the peak) never appear. CK+ codes map to
canonical classes: 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy,
6 sadness -> sad, 7 surprise. `identity` is the subject number (S005 -> 5); split is
None, because consecutive frames and sequences of one subject must stay together,
which the identity-disjoint splits made later guarantee.

Files and folders whose names start with "." and `__MACOSX` folders are skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

from hmtl.trainables.data.prepared import EXPRESSIONS
from hmtl.trainables.data.readers._common import archive_junk, decode_image
from hmtl.trainables.data.readers.base import BadRow, ReaderOptions, Record, SourceError

IMAGES = "cohn-kanade-images"
LABELS = "Emotion"
_CODES = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sad", "surprise")
_NAME = re.compile(r"S(\d+)_\d+_\d+_emotion\.txt", re.IGNORECASE)


def _label_files(source: Path) -> list[Path]:
    for folder in (IMAGES, LABELS):
        if not (source / folder).is_dir():
            raise SourceError(
                f"{source}: no {folder}/ folder (expected the CK+ root with "
                f"{IMAGES}/ and {LABELS}/)"
            )
    labels = source / LABELS
    files = sorted(
        path
        for path in labels.rglob("*_emotion.txt")
        if path.is_file() and not archive_junk(path, labels)
    )
    if not files:
        raise SourceError(f"{labels}: no *_emotion.txt files")
    return files


def parse_code(text: str) -> int:
    """Canonical expression index from an emotion file's text; ValueError if unusable."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"not a number: {text.strip()[:40]!r}") from None
    if not (math.isfinite(value) and value.is_integer() and 0 <= value < len(_CODES)):
        raise ValueError(f"unknown emotion code {value:g} (CK+ codes are 0..7)")
    return EXPRESSIONS.index(_CODES[int(value)])


def _read(source: Path, label_file: Path) -> Record:
    rel = label_file.relative_to(source / LABELS)
    where = f"{LABELS}/{rel.as_posix()}"
    match = _NAME.fullmatch(label_file.name)
    if match is None:
        raise BadRow(where, "file name is not Sxxx_yyy_zzzzzzzz_emotion.txt")
    try:
        expression = parse_code(label_file.read_text(encoding="utf-8", errors="replace"))
    except ValueError as err:
        raise BadRow(where, str(err)) from None
    image_rel = f"{IMAGES}/{rel.parent.as_posix()}/{label_file.name[: -len('_emotion.txt')]}.png"
    image_path = source / image_rel
    if not image_path.is_file():
        raise BadRow(where, f"label without its image: no {image_rel}")
    image = decode_image(image_path, image_rel)
    return Record(
        image=image,
        expression=expression,
        labels={"identity": int(match.group(1))},
        where=image_rel,
    )


class CkPlusReader:
    name = "ckplus"

    def scan(self, source: Path, options: ReaderOptions) -> Iterator[Record]:
        for label_file in _label_files(source):
            try:
                record = _read(source, label_file)
            except BadRow as bad:
                record = Record(image=None, expression=None, where=bad.where, bad=bad)
            yield record

    def count(self, source: Path, options: ReaderOptions) -> int | None:
        return len(_label_files(source))


READER = CkPlusReader()
