"""The per-worker function of a Ray Train run: a short adapter around `hmtl.trainables.train`.

Every worker runs `train` with a `TrainSession`; Ray Train supplies rank, world size,
device, the process group and the checkpoint to resume from. Only rank 0 hands over
a checkpoint, but every rank reports (Train's report is a barrier).
"""

from __future__ import annotations

from typing import Any

import pyarrow.fs as pafs
import ray.train  # (1) Ray Train's worker-side API
import ray.train.torch
import torch
from torch import nn

from hmtl.orchestration.platform import console
from hmtl.orchestration.platform.cost import ray_rate
from hmtl.orchestration.tracking.pretrained import Source, weights_of
from hmtl.trainables.accounting import CostRate
from hmtl.trainables.config import ConfigError, TrainConfig
from hmtl.trainables.runtime.device import held_gpu_refusal
from hmtl.trainables.train import train


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """What Tune and trackers get: numbers, and the dataset fingerprint (for the run's tags).

    Confusion matrices travel in the checkpoints instead."""
    return {
        k: v
        for k, v in metrics.items()
        if (isinstance(v, int | float) and not isinstance(v, bool)) or k == "data/fingerprint"
    }


class TrainSession:
    def __init__(self, resources: dict[str, float] | None = None) -> None:
        """`resources`: the CPUs and GPUs each worker holds (cost accounting; rank 0 reports)."""
        context = ray.train.get_context()  # (2) rank and world size of this worker
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.device = ray.train.torch.get_device()  # (3) this worker's GPU, or the CPU
        self.cost_rate: CostRate | None = None
        if resources and self.rank == 0:
            self.cost_rate = ray_rate(resources["cpus"], resources["gpus"], self.world_size)

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(scalar_metrics(metrics), checkpoint=checkpoint)  # (4) barrier + upload

    def latest_checkpoint(self) -> str | None:
        checkpoint = ray.train.get_checkpoint()  # (5) set when this run resumes
        if checkpoint is None:
            return None
        if isinstance(checkpoint.filesystem, pafs.LocalFileSystem):
            return checkpoint.path  # read in place rather than copied on every call
        return checkpoint.to_directory()

    def prepare_model(self, model: nn.Module) -> nn.Module:
        if self.world_size == 1:
            return model
        return ray.train.torch.prepare_model(model, move_to_device=False)  # (6) DDP


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    if loop_config.get("quiet", True):
        console.quiet(console.TRIAL_LOGGERS)
    pretrained = loop_config.get("pretrained")
    cfg = TrainConfig.model_validate(loop_config["cfg"])
    resources = loop_config.get("resources")
    refuse_broken_gpu_node(cfg.runtime.device, (resources or {}).get("gpus", 0.0))
    session = TrainSession(resources)
    if cfg.runtime.device == "cpu":
        session.device = torch.device("cpu")  # GPUs held on purpose: train on the CPUs
    # Each worker fetches the pre-trained weights on its own node (a local path is read there).
    with weights_of(Source(**pretrained) if pretrained else None) as weights:
        train(cfg, session, pretrained=weights)


def refuse_broken_gpu_node(device: str, gpus_held: float) -> None:
    """A one-line ConfigError, naming this node, when this worker holds GPUs but sees no CUDA
    and the config did not ask for the CPU (trainables/runtime/device.py)."""
    if gpus_held <= 0 or device == "cpu":
        return
    node_id = ray.get_runtime_context().get_node_id()
    problem = held_gpu_refusal(
        device, gpus_held, f"node {ray.util.get_node_ip_address()} ({node_id})"
    )
    if problem:
        raise ConfigError(problem)
