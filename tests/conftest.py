"""Shared fixtures: a small synthetic-faces cache reused by every test in a session."""

import pytest
import torch

from hmtl.trainables.config import build_config

# Tiny models on a 2-core machine run fastest on one intra-op thread, and tests that share
# the machine (or run beside Ray workers) do not oversubscribe it.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    # The folder is the tier: everything under tests/integration/ is integration (or slow),
    # so `-m "not integration"` and `make unit` agree (tests/unit/architecture/test_tiers.py).
    for item in items:
        if "integration" in item.path.parts and "slow" not in item.keywords:
            item.add_marker(pytest.mark.integration)
    # The unit tier first: it is fast, and several of its tests check that a command gave up
    # before starting Ray, which they can only see while no integration test's Ray runs.
    items.sort(key=lambda item: "integration" in item.keywords or "slow" in item.keywords)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def dataset_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture
def tiny_config(dataset_cache):
    """A config that trains in about a second: 48 px grey faces, a narrow small CNN."""

    def make(*overrides: str, **sections):
        tree = {
            "data": {
                "cache_dir": str(dataset_cache),
                "image_size": 48,
                "batch_size": 64,
                "synthetic": {"num_samples": 640, "num_identities": 40},
            },
            "model": {"width": 8},
            "schedule": {"epochs": 2, "warmup_epochs": 0.5},
            "runtime": {"seed": 0},
        }
        for section, values in sections.items():
            tree.setdefault(section, {}).update(values)
        return build_config(tree, list(overrides))

    return make
