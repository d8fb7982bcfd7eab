"""The test tiers follow the folders: tests/unit/ holds unit tests only (random tensors,
tiny models, no service started), tests/integration/ the tests that start real local
services, and the tests mirror the package (tests/<tier>/<subpackage>/)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]
PACKAGE = TESTS.parent


def _markers(path: Path) -> set[str]:
    """Marker names a test file applies anywhere (decorators and `pytestmark`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        is_mark = (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "mark"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "pytest"
        )
        if is_mark:
            found.add(node.attr)
    return found


def test_no_unit_test_is_marked_integration_or_slow():
    marked = [
        str(p.relative_to(TESTS))
        for p in sorted((TESTS / "unit").rglob("test_*.py"))
        if _markers(p) & {"integration", "slow"}
    ]
    assert marked == []


def test_unit_tests_start_no_service():
    """Fixtures that start Ray, S3 or an MLflow server live in tests/integration/conftest.py
    and so cannot be requested from tests/unit/."""
    assert not (TESTS / "unit" / "conftest.py").exists()
    source = (TESTS / "integration" / "conftest.py").read_text()
    assert "def local_ray" in source and "def s3_server" in source


def test_test_folders_mirror_the_package():
    """Every folder of tests/unit/trainables and tests/unit/orchestration names a package."""
    for tier_root, package_root in (
        (TESTS / "unit" / "trainables", PACKAGE / "trainables"),
        (TESTS / "unit" / "orchestration", PACKAGE / "orchestration"),
        (TESTS / "integration", PACKAGE / "orchestration"),
    ):
        for folder in (p for p in tier_root.rglob("*") if p.is_dir()):
            if folder.name == "__pycache__":
                continue
            relative = folder.relative_to(tier_root)
            assert (package_root / relative / "__init__.py").is_file(), folder
