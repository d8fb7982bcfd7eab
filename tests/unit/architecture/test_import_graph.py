"""The import graph of hmtl's own code: no cycle anywhere, no private name imported from
another module, `trainables` free of Ray and MLflow, and every function-local import of a
module said why (a comment on its line or the line above).

The graph is read from the source (ast), so it sees imports inside functions too: a cycle
hidden behind a local import is still a cycle. Imports under `if TYPE_CHECKING:` are type
annotations, not edges.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FOLDERS = {
    "orchestration": "hmtl.orchestration",
    "trainables": "hmtl.trainables",
    "search_spaces": "hmtl.search_spaces",
    "hmtl": "hmtl",
}


def modules() -> dict[str, Path]:
    found = {}
    for folder, name in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((name, *parts))] = path
    return found


MODULES = modules()


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path):
    """(node, is_local, source lines) for each import that runs when its code runs."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skip:
            yield node, id(node) not in top


def targets(module: str, node: ast.Import | ast.ImportFrom) -> list[tuple[str, str | None]]:
    """(hmtl module imported, name taken from it or None) for one import statement."""
    if isinstance(node, ast.Import):
        pairs = [(alias.name, None) for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        pairs = []
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            pairs.append((sub, None) if sub in MODULES else (base, alias.name))
    return [(target, name) for target, name in pairs if target in MODULES]


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for node, _ in imports(path):
            edges[module] |= {t for t, _ in targets(module, node) if t != module}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(MODULES):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle():
    edges = graph()
    assert len(MODULES) > 100 and sum(map(len, edges.values())) > 300  # the walk saw the code
    assert cycles(edges) == []


def test_no_private_name_is_imported_from_another_module():
    crossings = []
    for module, path in MODULES.items():
        for node, _ in imports(path):
            for target, name in targets(module, node):
                if name and name.startswith("_") and not name.startswith("__"):
                    crossings.append(f"{path.relative_to(ROOT)}:{node.lineno} {target}.{name}")
    assert crossings == []


def test_trainables_never_imports_ray_or_mlflow():
    found = []
    for module, path in MODULES.items():
        if module.startswith("hmtl.trainables"):
            for node, _ in imports(path):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno}"
                    for n in names
                    if n.split(".")[0] in ("ray", "mlflow")
                ]
    assert found == []


def test_every_local_import_says_why():
    """A function-local import exists for start-up time (or, rarely, an optional
    dependency); the comment on its line or the line above says which."""
    silent = []
    for path in MODULES.values():
        lines = path.read_text().splitlines()
        for node, local in imports(path):
            if not local:
                continue
            own = lines[node.lineno - 1]
            above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
            # A block of local imports shares one comment: walk up over the block.
            row = node.lineno - 2
            while row > 0 and lines[row].strip().startswith(("from ", "import ")):
                row -= 1
                above = lines[row].strip()
            if "#" not in own and not above.startswith("#"):
                silent.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert silent == [], f"{len(silent)} local imports without a reason"
