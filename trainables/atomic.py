"""Files written whole or not at all: written under a temporary name beside the target,
then renamed into place (a rename within one folder is atomic on POSIX), so a reader or a
resumed run never sees half a file, and a failed write leaves nothing behind.

The one helper for local files in hmtl: checkpoints, the active-learning state, reports.
(Remote objects are written whole by the object store itself; `platform/store.py`.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call `write(temporary path)`, then rename the result to `path`; returns `path`."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        write(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """`path` holding `text` (UTF-8), written atomically."""
    return write_atomic(path, lambda temp: temp.write_text(text, encoding="utf-8"))
