"""Every relative link in README.md and docs/*.md points at a file inside the repository:
a user who clones the project has nothing beside it."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
WEB = re.compile(r"^(https?|mailto):", re.I)


def links(text: str) -> list[str]:
    """Link targets of a Markdown text, outside fenced code blocks and inline code."""
    text = FENCE.sub("", text)
    text = re.sub(r"`[^`\n]*`(?!\])", "", text)
    return INLINE.findall(text) + REFERENCE.findall(text)


def test_the_link_finder_sees_inline_reference_and_image_links():
    text = (
        '[a](docs/a.md) ![b](img.png "t") [`c`](../c.md#x)\n'
        "[d]: ../shared/d.md\n```\n[e](not/a/link.md)\n```\n"
    )
    assert links(text) == ["docs/a.md", "img.png", "../c.md#x", "../shared/d.md"]


def test_readme_links_the_docs_folder():
    readme = links((ROOT / "README.md").read_text())
    assert {f"docs/{p.name}" for p in DOCS[1:]} <= set(readme)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_inside_the_repository(doc):
    for target in links(doc.read_text()):
        if WEB.match(target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        assert not path.startswith("/") and "://" not in path, f"{doc.name}: {target}"
        resolved = (doc.parent / path).resolve()
        assert resolved.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repository"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"
