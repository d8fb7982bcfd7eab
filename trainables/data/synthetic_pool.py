"""The shipped smoke pool: unlabelled synthetic faces for mining (issue 15).

Drawn like the synthetic dataset, on demand and cached by name, but with another seed, so
its identities (and every face) differ from the labelled synthetic set's (seed 0 by default).
Rows carry no label: `expression` is -1 and the card says `labelled: false`; the true classes
can be re-rendered from (seed, row) when a test needs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hmtl.trainables.data.prepared import PreparedWriter, find_prepared
from hmtl.trainables.data.synthetic import render_faces

POOL_SIZE = 20_000
POOL_SEED = 1
"""Ours: any seed but the labelled set's; 1 keeps it reproducible."""
POOL_IDENTITIES = 2_000


def pool_name(num_samples: int, size: int, channels: int, seed: int = POOL_SEED) -> str:
    return f"synthetic-pool-n{num_samples}-{size}px-{channels}ch-seed{seed}-id{POOL_IDENTITIES}"


def ensure_synthetic_pool(
    cache_dir: str | Path,
    num_samples: int = POOL_SIZE,
    size: int = 64,
    channels: int = 1,
    seed: int = POOL_SEED,
    chunk: int = 2048,
) -> Path:
    """The prepared unlabelled pool for these settings under `cache_dir`, rendered (shard by
    shard, so memory stays one chunk) on first use."""
    name = pool_name(num_samples, size, channels, seed)
    found = find_prepared(cache_dir, name)
    if found is not None:
        return found
    with PreparedWriter(cache_dir, name, size, channels) as writer:
        for start in range(0, num_samples, chunk):
            n = min(chunk, num_samples - start)
            faces = render_faces(
                n,
                size=size,
                channels=channels,
                seed=seed,
                num_identities=POOL_IDENTITIES,
                start=start,
            )
            writer.write_shard(faces.images, {"expression": np.full(n, -1, np.int8)})
        published = writer.publish(
            source_format="synthetic-pool", source=name, bad_rows=0, labelled=False
        )
    return Path(published.uri)
