"""Shipped search spaces (`<study>.yaml`), found by name so an installed `hmtl` can use them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped() -> dict[str, Path]:
    """Every shipped search space, by name (the file stem)."""
    folder = resources.files(__name__)
    return {Path(str(f)).stem: Path(str(f)) for f in folder.iterdir() if f.name.endswith(".yaml")}


def find(name_or_path: str) -> Path | None:
    """A search-space file: an existing path, or the name of a shipped one."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    return shipped().get(name_or_path)
