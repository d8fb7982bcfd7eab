"""RAF-DB (basic): aligned 100×100 RGB faces listed with their labels (DATASETS.md).

SOURCE is the basic root holding `EmoLabel/list_patition_label.txt` (sic) and
`Image/aligned/<stem>_aligned.jpg`. Each label line `<name> <label>` gives one `Record`;
the split is the `train_`/`test_` prefix of the name. A bad line or image gives a bad
`Record` naming the label file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hmtl.trainables.data.readers._common import bad_record, decode_image
from hmtl.trainables.data.readers.base import BadRow, ReaderOptions, Record, SourceError

LABEL_FILE = Path("EmoLabel/list_patition_label.txt")
IMAGE_DIR = Path("Image/aligned")
# RAF-DB labels 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger,
# 7 Neutral -> canonical (neutral, happy, sad, surprise, fear, disgust, anger, contempt).
LABELS = {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}
PREFIXES = {"train_": "train", "test_": "test"}


def _paths(source: Path) -> tuple[Path, Path]:
    source = Path(source)
    labels, images = source / LABEL_FILE, source / IMAGE_DIR
    if not labels.is_file():
        raise SourceError(f"{source}: no {LABEL_FILE} there (give the RAF-DB basic root)")
    if not images.is_dir():
        raise SourceError(f"{source}: no {IMAGE_DIR}/ folder there (the aligned faces)")
    return labels, images


def _parse_line(text: str) -> tuple[str, str, int]:
    """(image name, split, canonical expression); ValueError saying what is wrong."""
    parts = text.split()
    if len(parts) != 2:
        raise ValueError(f"malformed line {text.strip()!r} (expected '<name> <label>')")
    name, label = parts
    split = next((s for prefix, s in PREFIXES.items() if name.startswith(prefix)), None)
    if split is None:
        raise ValueError(f"image name {name!r} starts with neither 'train_' nor 'test_'")
    try:
        expression = LABELS[int(label)]
    except (ValueError, KeyError):
        raise ValueError(f"unknown label {label!r} (expected 1..7)") from None
    return name, split, expression


class RafDbReader:
    name = "rafdb"

    def scan(self, source: Path, options: ReaderOptions) -> Iterator[Record]:
        labels, images = _paths(source)
        with open(labels, encoding="utf-8-sig") as handle:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                where = f"{labels}:{line}"
                try:
                    name, split, expression = _parse_line(text)
                    image = decode_image(images / f"{Path(name).stem}_aligned.jpg", where, "RGB")
                except BadRow as err:
                    yield Record(image=None, expression=None, where=where, bad=err)
                    continue
                except ValueError as err:
                    yield bad_record(where, str(err))
                    continue
                yield Record(image=image, expression=expression, split=split, where=where)

    def count(self, source: Path, options: ReaderOptions) -> int | None:
        labels, _ = _paths(source)
        with open(labels, "rb") as handle:
            return sum(1 for text in handle if text.strip())


READER = RafDbReader()
