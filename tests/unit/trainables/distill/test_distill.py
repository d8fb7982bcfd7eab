"""`hmtl distill`: bad inputs refused in one line with nothing published; a tiny run publishes
a prepared dataset with its provenance that `data.extra_sources` trains on."""

import pytest
import torch
from helpers import refused
from mining_helpers import labelled_set, pool_set

from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.distill import AUGMENT_OPS, siamese_augment

TINY = ["--iterations", "3", "--width", "4", "--real-batch", "4"]


@pytest.fixture
def labelled(tmp_path):
    return labelled_set(tmp_path / "data", n=80)


def test_no_such_dataset(tmp_path):
    out = tmp_path / "out"
    line = refused(
        ["distill", str(tmp_path / "nope"), "--images-per-class", "1", "--out", str(out)], "nope"
    )
    assert "no such dataset folder" in line
    assert not out.exists()


def test_unlabelled_dataset(tmp_path):
    pool = pool_set(tmp_path / "data", render_faces(8, size=48, channels=1, seed=3).images)
    out = tmp_path / "out"
    refused(["distill", str(pool), "--images-per-class", "1", "--out", str(out)], "unlabelled")
    assert not out.exists()


@pytest.mark.parametrize("n, needle", [("0", "--images-per-class"), ("40", "has only")])
def test_images_per_class_out_of_range(tmp_path, labelled, n, needle):
    out = tmp_path / "out"
    refused(["distill", str(labelled), "--images-per-class", n, "--out", str(out), *TINY], needle)
    assert not out.exists()


def test_siamese_augment_applies_one_transform_and_passes_gradients():
    x = torch.randn(3, 1, 48, 48, requires_grad=True)
    a, b = siamese_augment([x, x[:2].detach()], AUGMENT_OPS, torch.Generator().manual_seed(1))
    assert torch.allclose(a[:2], b)  # the same draw on both lists
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_tracking_uri(tmp_path, labelled):
    out = tmp_path / "out"
    args = ["distill", str(labelled), "--images-per-class", "1", "--out", str(out)]
    refused([*args, "--tracking-uri", "ftp://nowhere"], "--tracking-uri")
    assert not out.exists()
