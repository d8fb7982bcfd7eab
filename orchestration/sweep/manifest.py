"""A sweep's manifest (`hmtl-sweep.json` in its folder): what `hmtl resume`, `hmtl status`
and `hmtl report` read beside Tune's own state. Small on purpose: reading it loads neither
Ray nor MLflow.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.sweep.space import SearchSpace, SpaceError
from hmtl.orchestration.tracking.tags import redact_uri

if TYPE_CHECKING:  # the type only: reading a manifest loads no Optuna
    from hmtl.orchestration.sweep.optuna_store import StudyMirror

MANIFEST = "hmtl-sweep.json"


def write_manifest(
    store: Store,
    space: SearchSpace,
    tracking_uri: str,
    origin: str | None = None,
    optuna: StudyMirror | None = None,
) -> None:
    """What `hmtl resume` needs beside Tune's own state: the resolved search space, where
    relative paths were read from, and (credential-free) where storage and tracking are;
    `optuna`, where the Optuna study is kept."""
    raw = space.model_dump(mode="json")
    raw["base"] = space.base_tree()
    manifest = {
        "space": raw,
        "origin": origin or os.getcwd(),
        "storage": store.uri,
        "tracking_uri": redact_uri(tracking_uri),
    }
    if optuna is not None:
        manifest["optuna"] = {"storage": optuna.where, "study": optuna.name}
    store.write_text(f"sweeps/{space.name}/{MANIFEST}", json.dumps(manifest, indent=2))


def read_manifest(path: str) -> dict[str, Any]:
    sweep = Store.open(path)
    try:
        text = sweep.read_text(MANIFEST, fail_fast=True)  # resume/status/report start here
    except FileNotFoundError:
        raise SpaceError(f"{sweep.uri}: not a sweep folder (no {MANIFEST})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        where = sweep.display(MANIFEST)
        raise SpaceError(f"{where}: unreadable ({err.msg}, line {err.lineno})") from None
