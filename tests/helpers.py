"""Helpers shared by the unit tests: a dataset description, synthetic faces, and the
"loss falls when an auxiliary task trains alone" loop.

Imported as `from helpers import ...`: `tests/` has no `__init__.py`, so pytest's default
("prepend") import mode puts it on `sys.path` when it loads `tests/conftest.py`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hmtl.trainables.augment import normalize
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.models import build_backbone
from hmtl.trainables.tasks import AuxBatch

FACE_INFO = DatasetInfo(
    classes=("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"),
    class_counts=(1,) * 8,
    optional_labels=("gender", "identity", "pitch", "roll", "yaw"),
    fingerprint="test",
    source="test",
)
"""Eight expressions and every optional label: auxiliary tasks ignore the labels."""


@functools.cache
def faces(n: int) -> torch.Tensor:
    """`n` synthetic 48 px grey faces (seed 0) as a uint8 (n, 1, 48, 48) batch."""
    images = render_faces(n, size=48, channels=1, seed=0).images
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def clean_aux(clean: torch.Tensor, seed: int = 0) -> AuxBatch:
    """An `AuxBatch` for tasks that read only the clean [0, 1] batch (raw is its uint8 form)."""
    raw = (clean * 255).round().to(torch.uint8)
    generator = torch.Generator().manual_seed(seed)
    return AuxBatch(
        raw=raw, clean=clean, generator=generator, magnitude=1.0, out_size=clean.shape[-1]
    )


def small_cnn() -> nn.Module:
    """The 8-wide grey small CNN, initialised after `torch.manual_seed(0)`."""
    torch.manual_seed(0)
    return build_backbone("small_cnn", 1, width=8)


def train_aux_alone(
    task: nn.Module,
    backbone: nn.Module,
    raw: torch.Tensor,
    clean: torch.Tensor | Callable[[torch.Generator], torch.Tensor],
    *,
    steps: int,
    lr: float,
    seed: int = 0,
) -> list[float]:
    """Train `backbone` and `task` on the task's loss alone (AdamW at `lr`) for `steps` steps.

    Every step the task makes its input from `raw` and `clean` (or, if `clean` is a function,
    what it returns for the step's generator) at the size of `raw`; one generator, seeded with
    `seed`, serves the whole run. Returns the loss of every step, in order.
    """
    opt = torch.optim.AdamW([*backbone.parameters(), *task.parameters()], lr=lr)
    generator, losses = torch.Generator().manual_seed(seed), []
    for _ in range(steps):
        step_clean = clean(generator) if callable(clean) else clean
        aux = AuxBatch(raw, step_clean, generator, 1.0, raw.shape[-1])
        images, targets = task.make_input(aux)
        feature_map = backbone.forward_features(normalize(images))
        pooled = F.adaptive_avg_pool2d(feature_map, 1).flatten(1)
        loss = task.loss(pooled, feature_map, targets, images)[task.name]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def tiny_space(tmp_path, name: str = "it-sweep", epochs: int = 2, **overrides):
    """A search space whose trials run in seconds on one CPU thread: 400 synthetic 48 px
    faces, an 8-wide small CNN; top-level keys can be overridden."""
    from hmtl.orchestration.sweep.space import validate_space

    raw = {
        "name": name,
        "num_samples": 3,
        "scheduler": None,
        "search": {"sampler": "random", "seed": 0},
        "base": {
            "data": {
                "cache_dir": str(tmp_path / "datasets"),
                "image_size": 48,
                "batch_size": 64,
                "synthetic": {"num_samples": 400},
            },
            "model": {"width": 8},
            "schedule": {"epochs": epochs, "warmup_epochs": 0.5},
            "runtime": {"device": "cpu", "num_threads": 1},
        },
        "space": {
            "optim.lr": "loguniform(1e-4, 1e-2)",
            "tasks.loss_weights.rotation": "uniform(0.0, 1.0)",
        },
    }
    raw.update(overrides)
    return validate_space(raw)


def moto_auth(endpoint: str, count: bytes) -> None:
    """Switch moto's credential checks on (b"0": from the next request) or off (b"inf")."""
    import urllib.request

    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count,
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=5).close()


def refused(args: list[str], needle: str) -> str:
    """Run `hmtl ARGS`, check it failed the one-line way (exit 2, one `hmtl: error:` line
    containing `needle`), and return that line."""
    from click.testing import CliRunner

    from hmtl.orchestration.cli.main import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("hmtl: error: ") and needle in lines[0]
    return lines[0]


def listening(root_pid: int) -> dict[tuple[int, str], set[str]]:
    """(pid, process name) -> addresses it listens on, for this process and its descendants
    (local Ray's gcs_server, raylet, dashboard, agents and workers all descend from it)."""
    import psutil  # shipped inside Ray (ray/thirdparty_files), importable once ray is

    root = psutil.Process(root_pid)
    found: dict[tuple[int, str], set[str]] = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            name = proc.name()
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.setdefault((proc.pid, name), set()).add(conn.laddr.ip)
        except psutil.Error:
            continue  # a worker that exited while being looked at
    return found
