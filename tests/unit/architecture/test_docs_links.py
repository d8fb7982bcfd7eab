"""The docs point at what exists: every relative link in README.md, BENCHMARKS.md and
docs/*.md resolves to a file inside the repository (a user who clones the project has nothing
beside it), every `#anchor` names a heading of its target, and every repository path the
docs mention (`orchestration/sweep/run.py`, `search_spaces/quickstart.yaml`, a folder such as
`trainables/active/`) exists, so a move that forgets a doc fails here."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GUIDES = sorted((ROOT / "docs").glob("*.md"))
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *GUIDES]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
WEB = re.compile(r"^(https?|mailto):", re.I)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)

# The repository's top-level folders: a path in the docs that starts with one of them is a
# repository path, read from the root whichever doc mentions it. Other paths (a dataset's
# layout, `<storage>/...`, `hmtl-runs/...`) describe things outside the repository.
FOLDERS = ("benchmarks", "docs", "hmtl", "orchestration", "search_spaces", "tests", "trainables")
PATH = re.compile(rf"(?<![\w./<>$:@~-])(?:{'|'.join(FOLDERS)})/[\w./-]*")
PATTERN = "<*{$["  # a path that goes on with one of these is a pattern: check its folder part


def links(text: str) -> list[str]:
    """Link targets of a Markdown text, outside fenced code blocks and inline code."""
    text = FENCE.sub("", text)
    text = re.sub(r"`[^`\n]*`(?!\])", "", text)
    return INLINE.findall(text) + REFERENCE.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link reads as its text
    text = re.sub(r"<[^>]+>|[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown text's headings (a repeated one gets -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = anchor = slug(heading)
        n = 0
        while anchor in found:
            n += 1
            anchor = f"{base}-{n}"
        found.add(anchor)
    return found


def repository_paths(text: str) -> list[str]:
    """Repository paths a text mentions, anywhere (prose, inline code, code blocks), with
    trailing punctuation dropped and a pattern (`tests/unit/<kind>/`, `benchmarks/*.py`) cut
    back to the folder it names."""
    found = []
    for match in PATH.finditer(text):
        path = match.group(0)
        if match.end() < len(text) and text[match.end()] in PATTERN:
            path = path[: path.rfind("/") + 1]
        found.append(path.rstrip("."))
    return found


def test_the_link_finder_sees_inline_reference_and_image_links():
    text = (
        '[a](docs/a.md) ![b](img.png "t") [`c`](../c.md#x)\n'
        "[d]: ../shared/d.md\n```\n[e](not/a/link.md)\n```\n"
    )
    assert links(text) == ["docs/a.md", "img.png", "../c.md#x", "../shared/d.md"]


def test_anchors_are_githubs_slugs_of_the_headings():
    text = (
        "# How hmtl is put together\n## Tracking conventions (MLflow)\n"
        "### `hmtl mine`: the [six](x.md) steps\n## Tracking conventions (MLflow)\n"
        "```\n# not a heading\n```\n"
    )
    assert anchors(text) == {
        "how-hmtl-is-put-together",
        "tracking-conventions-mlflow",
        "tracking-conventions-mlflow-1",
        "hmtl-mine-the-six-steps",
    }


def test_the_path_finder_sees_repository_paths_only():
    text = (
        "`orchestration/sweep/run.py`, see trainables/active/.\n"
        "```\n<storage>/sweeps/<sweep>/hmtl-sweep.json\n  search_spaces/quickstart.yaml\n```\n"
        "`tests/unit/<subpackage>/` `benchmarks/*.py` hmtl-runs/train/ s3://b/tests/x.py "
        "[t](../trainables/configs/demo.yaml) EmoLabel/list.txt\n"
    )
    assert repository_paths(text) == [
        "orchestration/sweep/run.py",
        "trainables/active/",
        "search_spaces/quickstart.yaml",
        "tests/unit/",
        "benchmarks/",
    ]


def test_readme_links_the_docs_folder():
    readme = links((ROOT / "README.md").read_text())
    assert {f"docs/{p.name}" for p in GUIDES} <= set(readme)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_inside_the_repository(doc):
    for target in links(doc.read_text()):
        if WEB.match(target):
            continue
        path, _, anchor = target.partition("#")
        assert not path.startswith("/") and "://" not in path, f"{doc.name}: {target}"
        resolved = (doc.parent / path).resolve() if path else doc
        assert resolved.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repository"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved.read_text()), f"{doc.name}: {target}: no heading"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_repository_path_the_docs_mention_exists(doc):
    missing = sorted({p for p in repository_paths(doc.read_text()) if not (ROOT / p).exists()})
    assert missing == [], f"{doc.name} mentions paths that do not exist: {missing}"


def test_the_top_level_folders_exist():
    assert all((ROOT / folder).is_dir() for folder in FOLDERS)
