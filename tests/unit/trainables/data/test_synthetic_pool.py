"""The shipped smoke pool: unlabelled synthetic faces of other identities, rendered once."""

import numpy as np

from hmtl.trainables.data.prepared import read_prepared
from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.data.synthetic_pool import ensure_synthetic_pool


def test_pool_is_unlabelled_other_faces_and_rendered_once(tmp_path):
    folder = ensure_synthetic_pool(tmp_path, num_samples=64, size=48, channels=1, chunk=40)
    pool = read_prepared(folder)
    assert pool.card["labelled"] is False and pool.card["num_rows"] == 64
    assert len(pool.card["shards"]) == 2  # rendered and written a chunk at a time
    assert (pool.labels["expression"] == -1).all()
    labelled = render_faces(64, size=48, channels=1, seed=0).images
    assert not any((face == labelled).all(axis=(1, 2, 3)).any() for face in pool.images)
    stamp = (folder / "card.json").stat().st_mtime_ns
    assert ensure_synthetic_pool(tmp_path, num_samples=64, size=48, channels=1) == folder
    assert (folder / "card.json").stat().st_mtime_ns == stamp
    assert np.array_equal(
        pool.images, render_faces(64, size=48, channels=1, seed=1, num_identities=2000).images
    )
