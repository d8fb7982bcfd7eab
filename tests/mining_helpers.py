"""Inputs for the `hmtl mine` tests: a primitive checkpoint and small prepared datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from hmtl.trainables.checkpoint import rng_state, save_checkpoint
from hmtl.trainables.config import build_config
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.data.prepared import EXPRESSIONS, PreparedWriter, write_prepared
from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.models import build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.tasks import build_tasks


def primitive_checkpoint(folder: Path, size: int = 48, channels: int = 1) -> Path:
    """An hmtl checkpoint of a freshly initialised 8-wide small CNN with an expression head
    (what `hmtl train` writes, before any step: mining only needs its shapes and weights)."""
    cfg = build_config(
        {
            "data": {"image_size": size, "channels": channels},
            "model": {"width": 8},
            "schedule": {"epochs": 1, "warmup_epochs": 0.5},
        }
    )
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", channels, 8)
    info = DatasetInfo(EXPRESSIONS, (1,) * 8, (), "test", "test")
    model = FaceModel(backbone, build_tasks(cfg, info, backbone.feature_dim))
    state = {
        "model": model.state_dict(),
        "optimizer": {},
        "scheduler": {},
        "epoch": 1,
        "rng": rng_state(),
        "config": cfg.model_dump(),
    }
    save_checkpoint(folder, state)
    return folder


def labelled_set(root: Path, n: int = 120, size: int = 48, channels: int = 1) -> Path:
    """A labelled prepared synthetic set (seed 0) without a split column."""
    faces = render_faces(n, size=size, channels=channels, seed=0, num_identities=20)
    labels = {"expression": faces.expression, "identity": faces.identity}
    return write_prepared(root, "labelled", "synthetic", faces.images, labels)


def pool_set(root: Path | str, images: np.ndarray, name: str = "pool") -> Path | str:
    """An unlabelled prepared pool of `images` (expression -1), in two shards: its folder, or
    its URI when `root` is an s3:// URI."""
    size, channels = images.shape[1], images.shape[3]
    half = len(images) // 2
    with PreparedWriter(root, name, size, channels) as writer:
        for part in (images[:half], images[half:]):
            writer.write_shard(part, {"expression": np.full(len(part), -1, np.int8)})
        uri = writer.publish(source_format="test", source=name, labelled=False).uri
    return uri if "://" in str(root) else Path(uri)


# A study of the two job stages (mine, then distill the mined set), for the job-stage tests.
MINE_STAGE = {"name": "mine", "kind": "mine", "model": "ckpt", "pool": "synthetic:100"}
DISTILL_STAGE = {
    "name": "distill",
    "kind": "distill",
    "source": "${mine.dataset}",
    "images_per_class": 1,
}


def write_study(tmp_path, *stages, base=None):
    """`tmp_path/study.yaml`: a study named omni of `stages` on a CPU base."""
    raw = {"name": "omni", "base": base or {"runtime": {"device": "cpu"}}, "stages": list(stages)}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
