"""Folders a command makes on its way: refused when a file is in the way, and removed again
when the command fails, so a failed command leaves nothing behind."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def blocking_file(folder: Path) -> Path | None:
    """The existing non-folder at `folder` or above it that keeps `folder` from being made."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def first_missing(folder: Path) -> Path | None:
    """The outermost folder on the way to `folder` that does not exist yet (None: all do)."""
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


@contextmanager
def removed_on_failure(folder: Path, keep: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Run the block; if it fails (a one-line `fail` exit included), remove what it created
    on the way to `folder`, unless `keep()` says that now holds something worth keeping.

    Ctrl-C is left alone: an interrupted run's folder is the user's to look at."""
    created = first_missing(folder)
    try:
        yield
    except (Exception, SystemExit):
        if created is not None and created.exists() and not keep():
            shutil.rmtree(created, ignore_errors=True)
        raise
