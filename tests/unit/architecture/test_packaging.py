"""One installed namespace: pyproject.toml maps the repository's top-level folders under
`hmtl` and lists every package, and an installed hmtl puts nothing else at the top of
site-packages (`orchestration`, `trainables` and `search_spaces` are generic names; the
package index already has an unrelated `orchestration`)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MAPPED = {
    "hmtl": "hmtl",
    "orchestration": "hmtl.orchestration",
    "trainables": "hmtl.trainables",
    "search_spaces": "hmtl.search_spaces",
}


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_under_hmtl():
    folders = {
        ".".join((MAPPED[folder], *init.parent.relative_to(ROOT / folder).parts))
        for folder in MAPPED
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert set(_setuptools()["packages"]) == folders
    assert {name: path for name, path in _setuptools()["package-dir"].items()} == {
        name: folder for folder, name in MAPPED.items()
    }


def test_installed_hmtl_has_no_other_top_level_name(tmp_path):
    """Run from outside the checkout, so only what the install provides is importable."""
    code = (
        "import importlib.util as u, hmtl.orchestration, hmtl.trainables, hmtl.search_spaces;"
        "print([n for n in ('orchestration', 'trainables', 'search_spaces') if u.find_spec(n)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
