"""What a finished trial leaves in MLflow, built from its best checkpoint folder.

A checkpoint folder carries `checkpoint.pt` (model, optimizer, resolved config, the
epoch's metrics with its confusion matrices) and, when the data had one, `card.json`.
One download of the best checkpoint gives everything: the resolved config as YAML, the
dataset card, the confusion-matrix images, the checkpoint index, and the checkpoint
itself (uploaded once per trial, never per epoch).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.fs
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hmtl.trainables.checkpoint import load_checkpoint
from hmtl.trainables.data.prepared import EXPRESSIONS
from hmtl.trainables.data.storage import filesystem_for


def fetch(uri: str, target: Path, filesystem=None) -> Path:
    """Copy a checkpoint folder (local path, `s3://...`, or a path on `filesystem`) to target."""

    if filesystem is None and "://" not in uri:
        shutil.copytree(uri, target)
        return target
    if filesystem is None:
        filesystem, uri = filesystem_for(uri)
    elif uri.startswith("s3://"):
        uri = uri[len("s3://") :]
    target.mkdir(parents=True)
    pyarrow.fs.copy_files(
        uri,
        str(target),
        source_filesystem=filesystem,
        destination_filesystem=pyarrow.fs.LocalFileSystem(),
    )
    return target


def trial_artifacts(index: dict[int, str], best: int, scratch: Path, filesystem=None) -> Path:
    """A folder to log as the trial's artifacts (see the module docstring)."""
    out = scratch / "artifacts"
    checkpoint = fetch(index[best], out / "best_checkpoint", filesystem)
    state = load_checkpoint(checkpoint)
    (out / "config.yaml").write_text(yaml.safe_dump(state["config"], sort_keys=False))
    if (checkpoint / "card.json").exists():
        shutil.copy(checkpoint / "card.json", out / "dataset_card.json")
    (out / "checkpoints.json").write_text(
        json.dumps(
            {"best_epoch": best, "checkpoints": {str(k): v for k, v in sorted(index.items())}},
            indent=2,
        )
    )
    classes = list(EXPRESSIONS[: state["config"]["data"]["classes"]])
    for split in ("val", "test"):
        matrix = state.get("metrics", {}).get(f"{split}/confusion_matrix")
        if matrix:
            plot_confusion(
                matrix, classes, f"{split}, epoch {best}", out / f"confusion_matrix_{split}.png"
            )
    return out


def plot_confusion(matrix: list[list[int]], classes: list[str], title: str, path: Path) -> None:
    """The matrix as row shares with counts, drawn on its own Agg figure (no pyplot state:
    the tracking thread draws these while the driver runs)."""
    counts = np.asarray(matrix, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(6.5, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({title}); cells: row share, counts in brackets")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                f"{rates[i, j]:.2f}\n({int(counts[i, j])})",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
