"""Helpers shared by the readers: image decoding and line-numbered CSV reading.

Both turn file-level trouble into the messages `base.py` wants: a `BadRow` naming the
file and line for one unusable row, a `SourceError` for a file that cannot be used at all.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from hmtl.trainables.data.readers.base import BadRow, Record, SourceError

_GREY_MODES = {"1", "L", "LA", "La"}
_WIDE_GREY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def decode_image(path: Path, where: str, mode: str | None = None) -> np.ndarray:
    """Decode the image file at `path` to uint8: (H, W) grey or (H, W, 3) RGB.

    `mode=None` keeps grey images grey and turns everything else (palette, RGBA, CMYK)
    into RGB; `mode="RGB"` or `mode="L"` forces one. 16-bit grey is scaled to 8 bits.
    Raises `BadRow(where, ...)` for a missing, unreadable or truncated file.
    """
    if mode not in (None, "RGB", "L"):
        raise ValueError(f"decode_image: mode must be None, 'RGB' or 'L', got {mode!r}")
    try:
        with Image.open(path) as img:
            # load() is where a truncated file fails; open() only reads the header.
            img.load()
            return _to_array(img, mode)
    except FileNotFoundError:
        raise BadRow(where, f"missing image file {path}") from None
    except UnidentifiedImageError:
        raise BadRow(where, f"not a readable image: {path}") from None
    except (IsADirectoryError, PermissionError) as err:
        raise BadRow(where, f"cannot read image file {path} ({err.strerror})") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadRow(where, f"truncated or corrupt image {path} ({err})") from None


def _to_array(img: Image.Image, mode: str | None) -> np.ndarray:
    if img.mode in _WIDE_GREY_MODES:
        wide = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or wide.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(wide * (255.0 / top)), 0, 255).astype(np.uint8)
        img = Image.fromarray(grey, mode="L")
    target = mode or ("L" if img.mode in _GREY_MODES else "RGB")
    if img.mode != target:
        img = img.convert(target)
    return np.asarray(img, dtype=np.uint8).copy()


def archive_junk(path: Path, root: Path) -> bool:
    """Whether `path` under `root` is a hidden file or folder, or inside a `__MACOSX`
    folder (macOS archives add `._NAME` twins that are not images)."""
    return any(p.startswith(".") or p == "__MACOSX" for p in path.relative_to(root).parts)


def bad_record(where: str, reason: str) -> Record:
    """A `Record` that stands for one unusable row, so a scan can go on under --skip-bad."""
    return Record(image=None, expression=None, where=where, bad=BadRow(where, reason))


def open_csv(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Stream `path` as CSV, yielding (1-based line number where the row starts, fields).

    Blank lines are skipped. A missing or undecodable file is a `SourceError`.
    """
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (generator)
    except OSError as err:
        raise SourceError(f"{path}: cannot open ({err.strerror or err})") from None
    with handle:
        reader = csv.reader(handle)
        start = 1
        try:
            for fields in reader:
                if fields:
                    yield start, fields
                # line_num counts physical lines, so quoted newlines keep numbers right.
                start = reader.line_num + 1
        except (UnicodeDecodeError, csv.Error) as err:
            raise SourceError(f"{path}:{start}: not readable as CSV ({err})") from None


def count_lines(path: Path) -> int:
    """Number of non-blank lines in `path` (what `open_csv` yields for one-line rows)."""
    with open(path, "rb") as handle:
        # Binary iteration splits on b"\n" only, without decoding: fast on 300 MB files.
        return sum(1 for line in handle if line not in (b"\n", b"\r\n"))


def header_columns(path: Path, fields: list[str], expected: tuple[str, ...]) -> dict[str, int]:
    """Column positions by name, or a `SourceError` naming the file and the expected header.

    The columns may come in any order, but exactly the `expected` names must be there.
    """
    names = [name.strip() for name in fields]
    missing = [name for name in expected if name not in names]
    extra = [name for name in names if name not in expected]
    if missing or extra or len(names) != len(expected):
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if extra:
            problems.append(f"unexpected {', '.join(repr(n) for n in extra)}")
        if not problems:
            problems.append("a repeated column")
        raise SourceError(
            f"{path}:1: expected header {','.join(expected)!r}, found {','.join(names)!r} "
            f"({'; '.join(problems)})"
        )
    return {name: names.index(name) for name in expected}
