"""What a trial leaves behind in its process, undone before the next trial runs there.

Tune reuses a trial's actor (process) for the next trial (`TuneConfig(reuse_actors=True)`):
the interpreter, torch and the project stay imported and decoded datasets stay cached
(`hmtl.trainables.data.cache`), which is the point. Everything else a trial may change for the
whole process is put back when it ends, and the global RNGs are seeded from the trial's
own seed when it starts, so a trial trains the same in a fresh process and a reused one.
"""

from __future__ import annotations

import contextlib
import gc
import random
from collections.abc import Iterator

import numpy as np
import torch

from hmtl.trainables.settings import variable

# Process-wide torch settings a trial may change: (read, write) pairs.
_SETTINGS = {
    "num_threads": (torch.get_num_threads, torch.set_num_threads),
    "default_dtype": (torch.get_default_dtype, torch.set_default_dtype),
    "deterministic": (
        torch.are_deterministic_algorithms_enabled,
        torch.use_deterministic_algorithms,
    ),
    "matmul_precision": (torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
    "cudnn_benchmark": (
        lambda: torch.backends.cudnn.benchmark,
        lambda v: setattr(torch.backends.cudnn, "benchmark", v),
    ),
    "cudnn_deterministic": (
        lambda: torch.backends.cudnn.deterministic,
        lambda v: setattr(torch.backends.cudnn, "deterministic", v),
    ),
}


def process_settings() -> dict[str, object]:
    """The process-wide torch settings a trial could change (see `_SETTINGS`)."""
    return {name: read() for name, (read, _) in _SETTINGS.items()}


def seed_globals(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (all devices) from `seed`."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


FREEZE_ENV = variable("gc_freeze")  # HMTL_GC_FREEZE
_frozen = False


def freeze_process_objects() -> None:
    """Take what this process holds before its first trial out of the collector's walks.

    The interpreter, torch, Ray and the project are some 360,000 objects that live as long
    as the process. A full collection walks all of them: about 0.6-1 s on the loaded
    2-core machine, once per trial (`trial_scope`'s exit) and whenever Python's own
    thresholds fire. Frozen (`gc.freeze`), they are skipped and a trial's own objects are
    still collected; a frozen object is then freed by reference counting only, which for
    modules, functions and classes loaded once is no loss. Once per process.
    """
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True


@contextlib.contextmanager
def trial_scope(seed: int, freeze: bool = True) -> Iterator[None]:
    """Run one trial in this process as if it were fresh, and leave it clean for the next.

    On entry the global RNGs are seeded from `seed` and (`freeze`) what the process held
    before its first trial is frozen (`freeze_process_objects`). On exit the torch
    settings are put back as found, the trial's objects are collected, and CUDA's cached
    blocks are released, so the next trial starts with the device memory the process
    started with.
    """
    if freeze:
        freeze_process_objects()
    settings = process_settings()
    seed_globals(seed)
    try:
        yield
    finally:
        now = process_settings()
        for name, value in settings.items():
            if now[name] != value:
                _SETTINGS[name][1](value)
        gc.collect()  # models and optimizers of the trial hold memory until collected
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
