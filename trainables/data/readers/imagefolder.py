"""Image folders: one folder per class, optionally inside one folder per split.

SOURCE is either

    <root>/<split>/<class>/*.{png,jpg,jpeg}     split: train; val, valid, validation; test
    <root>/<class>/*.{png,jpg,jpeg}             no splits (split None, made later)

With `--unlabelled` (`ReaderOptions.unlabelled`) SOURCE is any flat or nested folder of
images: every image under it is one row without labels or split, and folder names mean nothing.

Extensions and folder names are matched case-insensitively. A root with no split-named
subfolder is read as class folders (split None); one with any split-named subfolder must
hold split folders only (also `training`, `testing`). Class folders map to canonical
names through `SYNONYMS` ("Angry", "happiness", "SURPRISED", ...); two folders with one
meaning in one split (`angry/` and `anger/`) are read as one class. An unknown split or
class folder, or a class folder without images, stops the whole source with a
SourceError naming it: it is a layout mistake, not a bad row. Other files (README,
Thumbs.db) and names starting with "." are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hmtl.trainables.data.prepared import EXPRESSIONS
from hmtl.trainables.data.readers._common import decode_image
from hmtl.trainables.data.readers.base import BadRow, ReaderOptions, Record, SourceError

SYNONYMS = {
    "neutral": "neutral",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "disgust": "disgust",
    "disgusted": "disgust",
    "anger": "anger",
    "angry": "anger",
    "contempt": "contempt",
    "contemptuous": "contempt",
}
SPLITS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
EXTENSIONS = {".png", ".jpg", ".jpeg"}


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_images(folder: Path) -> tuple[int, list[Path]]:
    """(canonical index, sorted image paths) of one class folder."""
    canonical = SYNONYMS.get(folder.name.lower())
    if canonical is None:
        raise SourceError(
            f"{folder}: unknown class folder {folder.name!r}; accepted names "
            f"(any case): {', '.join(SYNONYMS)}"
        )
    images = sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )
    if not images:
        raise SourceError(f"{folder}: empty class: no .png/.jpg/.jpeg files")
    return EXPRESSIONS.index(canonical), images


def _layout(source: Path) -> list[tuple[Path, str | None, int]]:
    """Every (image path, split, canonical index), sorted by path; SourceError if unusable."""
    if not source.is_dir():
        raise SourceError(f"{source}: not a folder")
    top = _subfolders(source)
    if not top:
        raise SourceError(f"{source}: no class or split folders")
    if not any(p.name.lower() in SPLITS for p in top):
        groups = [(None, source)]  # class folders directly under the root
    else:
        unknown = [p.name for p in top if p.name.lower() not in SPLITS]
        if unknown:
            raise SourceError(
                f"{source}: unknown split folder {unknown[0]!r}; valid split folders "
                f"(any case): {', '.join(SPLITS)}, or class folders directly under the root"
            )
        groups = [(SPLITS[p.name.lower()], p) for p in top]
    rows = []
    for split, folder in groups:
        classes = _subfolders(folder)
        if not classes:
            raise SourceError(f"{folder}: no class folders")
        for class_folder in classes:
            index, images = _class_images(class_folder)
            rows += [(path, split, index) for path in images]
    return sorted(rows, key=lambda row: row[0])


def _unlabelled_layout(source: Path) -> list[tuple[Path, None, None]]:
    """Every image under `source` at any depth (hidden files and folders skipped), sorted."""
    if not source.is_dir():
        raise SourceError(f"{source}: not a folder")
    rows = [
        (path, None, None)
        for path in sorted(source.rglob("*"))
        if path.suffix.lower() in EXTENSIONS
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(source).parts)
    ]
    if not rows:
        raise SourceError(f"{source}: no .png/.jpg/.jpeg files at any depth")
    return rows


class ImageFolderReader:
    name = "imagefolder"

    def scan(self, source: Path, options: ReaderOptions) -> Iterator[Record]:
        layout = _unlabelled_layout if options.unlabelled else _layout
        for path, split, expression in layout(source):
            where = path.relative_to(source).as_posix()
            try:
                record = Record(
                    image=decode_image(path, where), expression=expression, split=split, where=where
                )
            except BadRow as bad:
                record = Record(image=None, expression=None, split=split, where=where, bad=bad)
            yield record

    def count(self, source: Path, options: ReaderOptions) -> int | None:
        return len((_unlabelled_layout if options.unlabelled else _layout)(source))


READER = ImageFolderReader()
