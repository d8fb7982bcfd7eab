"""The training device, and the refusal of `runtime.device: cuda` where there is no CUDA.

`check_device` runs with the other input checks of `hmtl train` and `hmtl active`, before
a run folder, an MLflow run or Ray exists; `pick_device` refuses the same way if it is
reached without that check (a trial on a worker with no GPU); `held_gpu_refusal` is the
check of a sweep's worker that Ray gave GPUs (orchestration/sweep/worker.py)."""

from __future__ import annotations

import torch

from hmtl.trainables.config import ConfigError, RuntimeConfig


def cuda_refusal(name: str) -> str | None:
    """Why `runtime.device: <name>` cannot run on this machine, in one line; None if it can."""
    if name != "cuda" or torch.cuda.is_available():
        return None
    return (
        "runtime.device: cuda, but this machine has no CUDA device "
        f"(torch {torch.__version__} sees none); set runtime.device: auto or cpu"
    )


def held_gpu_refusal(name: str, gpus_held: float, node: str) -> str | None:
    """Why a worker that holds `gpus_held` GPUs on `node` must not train with
    `runtime.device: <name>`, in one line; None if it may. A worker given GPUs that sees no
    CUDA is a broken node (driver, CUDA runtime or CUDA_VISIBLE_DEVICES): training silently
    on its CPUs would bill the GPUs for nothing. `runtime.device: cpu` says it is meant."""
    if gpus_held <= 0 or name == "cpu" or torch.cuda.is_available():
        return None
    return (
        f"{node}: this worker holds {gpus_held:g} GPU(s) but torch {torch.__version__} sees "
        f"no CUDA device (runtime.device: {name}); the node's GPU driver or CUDA runtime is "
        "broken; set runtime.device: cpu to train on its CPUs on purpose"
    )


def check_device(runtime: RuntimeConfig) -> None:
    """Raise a one-line ConfigError when the config asks for a device this machine lacks."""
    problem = cuda_refusal(runtime.device)
    if problem:
        raise ConfigError(problem)


def pick_device(name: str) -> torch.device:
    """The device `runtime.device` names: `auto` is CUDA where there is one."""
    problem = cuda_refusal(name)
    if problem:
        raise ConfigError(problem)
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")
