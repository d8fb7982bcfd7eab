"""Dataset readers, one file per source format, found by format name.

Each module defines `READER`, an object with `name`, `scan(source, options)` and
`count(source, options)` (see `base.py`).
"""

from __future__ import annotations

from importlib import import_module

from hmtl.trainables.data.readers.base import Reader

FORMATS = ("fer2013", "ferplus", "rafdb", "affectnet", "kdef", "ckplus", "imagefolder")


def get_reader(name: str) -> Reader:
    """The reader of format `name`; ValueError naming the valid formats otherwise."""
    if name not in FORMATS:
        raise ValueError(f"unknown dataset format {name!r}; choose one of {', '.join(FORMATS)}")
    return import_module(f"hmtl.trainables.data.readers.{name}").READER
