"""`trial_scope`: a trial in a reused process starts seeded and leaves torch as it found it."""

import random

import numpy as np
import torch

from orchestration.reuse import process_settings, trial_scope


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
