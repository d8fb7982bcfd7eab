"""Mining's embedding shows a bar of images per second on a terminal, and nothing elsewhere."""

import io
import json
import sys

import pytest
from mining_helpers import pool_set, primitive_checkpoint

from hmtl.orchestration.mining.embed import embedded
from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.mining.primitive import primitive_spec


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream", [Terminal, io.StringIO])
def test_the_embedding_bar_counts_images_block_by_block(tmp_path, monkeypatch, stream):
    pool = pool_set(tmp_path / "data", render_faces(24, size=48, channels=1, seed=3).images)
    card = json.loads((pool / "card.json").read_text())
    spec = primitive_spec(str(primitive_checkpoint(tmp_path / "ckpt")))
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    done = embedded(str(pool), card, spec, "0" * 64, tmp_path / "cache", "local", batch_size=8)
    assert done.embeddings.shape[0] == 24 and not done.reused
    if stream is Terminal:
        drawn = err.getvalue()
        assert "embed pool" in drawn and "24/24" in drawn and " images/s" in drawn
    else:
        assert err.getvalue() == ""
