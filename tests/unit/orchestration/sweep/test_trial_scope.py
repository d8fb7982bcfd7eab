"""`trial_scope`: a trial in a reused process starts seeded and leaves torch as it found it."""

import random

import numpy as np
import torch

from hmtl.orchestration.sweep.reuse import process_settings, trial_scope


def _draws() -> tuple:
    return random.random(), float(np.random.random()), float(torch.rand(1))


def test_global_rngs_start_from_the_trial_seed_whatever_ran_before():
    with trial_scope(7):
        first = _draws()
    _draws()  # another trial's leftovers in the global state
    with trial_scope(7):
        assert _draws() == first
    with trial_scope(8):
        assert _draws() != first


def test_torch_settings_changed_by_a_trial_are_put_back():
    before = process_settings()
    threads = torch.get_num_threads()
    with trial_scope(0):
        torch.set_num_threads(threads + 1)
        torch.set_default_dtype(torch.float64)
        torch.set_float32_matmul_precision("medium")
        torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark
    assert process_settings() == before
    assert torch.get_num_threads() == threads


class _Cycle:
    def __init__(self) -> None:
        self.me = self  # freed only by the collector, not by reference counts


def test_objects_from_before_the_first_trial_are_frozen_and_a_trials_own_still_collected(
    monkeypatch,
):
    import gc
    import weakref

    from hmtl.orchestration.sweep import reuse

    monkeypatch.setattr(reuse, "_frozen", False)
    try:
        with trial_scope(0):
            assert gc.get_freeze_count() > 0
            during = weakref.ref(_Cycle())
        assert during() is None  # the trial's cyclic garbage went at its exit
        frozen = gc.get_freeze_count()
        with trial_scope(1):  # frozen once per process
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()  # the rest of the test session collects as before
