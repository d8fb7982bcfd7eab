"""The driver's share of `hmtl mine` on Ray Data: the pool arrives in small blocks.

Ray Data's default 128 MiB blocks made the driver receive a large pool as a few huge blocks
(its memory grew with the pool: BENCHMARKS.md, issue 15). The test shrinks mining's block
size so a 300-face pool must arrive as several blocks, each about a batch."""

import json

import pytest
from mining_helpers import pool_set, primitive_checkpoint

from hmtl.orchestration.mining import embed as mining_embed
from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.mining.primitive import primitive_spec

pytestmark = pytest.mark.integration
FACES, BATCH = 300, 32


def test_the_driver_receives_the_pool_block_by_block(local_ray, tmp_path, monkeypatch):
    """Every block the driver gets is at most an input block plus a batch (with Ray Data's
    default 128 MiB the pool's 2 shards arrive as one 300-face block), all rows arrive, and
    the caller's Ray Data settings are as they were afterwards."""
    import ray.data

    monkeypatch.setattr(mining_embed, "BLOCK_BYTES", 64 * 1024)  # 28 faces of 48 px
    pool = pool_set(tmp_path, render_faces(FACES, size=48, channels=1, seed=1).images)
    card = json.loads((pool / "card.json").read_text())
    spec = primitive_spec(str(primitive_checkpoint(tmp_path / "ckpt")))
    context = ray.data.DataContext.get_current()
    before = (context.target_max_block_size, context.execution_options.preserve_order)

    batches = mining_embed._ray_batches(str(pool), card, spec, (48, 48, 1), 1, BATCH, False)
    rows = [len(embeddings) for embeddings, _ in batches]

    assert sum(rows) == FACES
    assert max(rows) <= 64 * 1024 // (48 * 48) + BATCH < FACES // 2
    assert (context.target_max_block_size, context.execution_options.preserve_order) == before
