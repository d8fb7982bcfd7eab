"""Real local services for the integration tier: Ray on 127.0.0.1 with its dashboard."""

import pytest


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance (2 CPUs, dashboard on 127.0.0.1) shared by the session."""
    import ray

    from orchestration.cluster import init_ray

    init_ray(None, num_cpus=2)
    yield ray
    ray.shutdown()
