"""The names hmtl gives things in MLflow, and the small facts every tracking module shares.

This module is the bottom of `tracking/`: it imports nothing of hmtl, so any module (the
sweep engine, a study, `hmtl status`) can name a tag without loading MLflow or Ray.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Runs: which sweep, trial, study and stage a run belongs to, and what it is.
SWEEP_TAG = "hmtl.sweep"
TRIAL_TAG = "hmtl.trial_id"
ROLE_TAG = "hmtl.role"
STUDY_TAG = "hmtl.study"
STAGE_TAG = "hmtl.stage"
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI
KIND_TAG = "mlflow.experimentKind"
MODEL_TAG = "hmtl.model_id"
RESUMED_FROM_TAG = "hmtl.resumed_from_run"

# Checkpoints: `hmtl.checkpoint.NNNN` = URI per epoch (or cycle), and the best one.
CHECKPOINT_TAG = "hmtl.checkpoint."
BEST_TAG = "hmtl.best_checkpoint"
BEST_EPOCH_TAG = "hmtl.best_epoch"

# Lineage: the weights a run started from, and the extra datasets it trained on.
FROM_TAG = "hmtl.pretrained_from"
SHA_TAG = "hmtl.pretrained_sha256"
SOURCES_TAG = "hmtl.extra_sources"
FINGERPRINTS_TAG = "hmtl.extra_fingerprints"

MAX_PARAM_LENGTH = 6000


def checkpoint_index(tags: dict[str, str]) -> dict[int, str]:
    """Epoch (or cycle) -> checkpoint location, from a run's `hmtl.checkpoint.NNNN` tags."""
    return {
        int(k[len(CHECKPOINT_TAG) :]): v
        for k, v in tags.items()
        if k.startswith(CHECKPOINT_TAG) and k[len(CHECKPOINT_TAG) :].isdigit()
    }


def redact_uri(uri: str) -> str:
    """A URI without user:password@ (credentials come from the environment, never a URI)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def git_commit() -> str:
    """The commit of the checkout hmtl runs from, or "unknown" (an installed copy)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
