"""References between a study's stages: `${stage.field}` in a later stage's keys.

Fields are an earlier stage's outputs: `best_checkpoint` (a URI fit for `model.pretrained`),
`best_config` (the best dotted overrides, a mapping), `run_id` (the stage's MLflow run) and,
for a sweep, `top_configs` (its best trials' configs, best first); a `mine` or `distill`
stage's `dataset` (the published dataset's URI, fit for `data.extra_sources`) and `rows`.
A string that is exactly
one reference becomes the output itself (so a mapping can stand for an arm's overrides); a
reference inside a longer string is replaced by its text.
Names and fields are checked when the study loads; values are filled in when the stage
starts, from outputs recorded in the study's storage, so a resumed study resolves them to
the same URIs.
"""

from __future__ import annotations

import re
from typing import Any

REFERENCE = re.compile(r"\$\{([^}]*)\}")
FIELDS = ("best_checkpoint", "best_config", "run_id", "top_configs", "dataset", "rows")


def has_reference(value: Any) -> bool:
    """Whether `value` (or anything inside it) holds a `${...}` reference."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(has_reference(v) for v in value.values())
    if isinstance(value, list):
        return any(has_reference(v) for v in value)
    return False


def _strings(value: Any, path: str):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def check_references(raw: dict[str, Any], earlier: list[str], where: str) -> None:
    """Raise ValueError (one line) for a reference to no earlier stage or to no output."""
    for path, text in _strings(raw, ""):
        if "${" in text and not REFERENCE.search(text):
            raise ValueError(f"{where}.{path}: '{text}' opens a reference it never closes")
        for match in REFERENCE.finditer(text):
            stage, _, field = match.group(1).partition(".")
            if stage not in earlier:
                before = ", ".join(earlier) or "none"
                raise ValueError(
                    f"{where}.{path}: {match.group(0)}: no earlier stage '{stage}' "
                    f"(earlier stages: {before})"
                )
            if field not in FIELDS:
                raise ValueError(
                    f"{where}.{path}: {match.group(0)}: '{field}' is not a stage output "
                    f"(outputs: {', '.join(FIELDS)})"
                )


def resolve(value: Any, outputs: dict[str, dict[str, Any]]) -> Any:
    """`value` with every reference replaced by the recorded output it names."""
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(match: re.Match) -> Any:
        stage, _, field = match.group(1).partition(".")
        found = outputs.get(stage, {}).get(field)
        if found is None:
            raise ValueError(f"{match.group(0)}: stage '{stage}' recorded no {field}")
        return found

    whole = REFERENCE.fullmatch(value)
    if whole:
        return lookup(whole)
    return REFERENCE.sub(lambda m: str(lookup(m)), value)
