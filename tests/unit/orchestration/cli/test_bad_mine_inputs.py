"""`hmtl mine` refuses bad inputs in one line, exit 2, before Ray and with nothing published."""

import pytest
from helpers import refused
from mining_helpers import labelled_set, pool_set, primitive_checkpoint

from hmtl.trainables.data.synthetic import render_faces


@pytest.fixture
def inputs(tmp_path):
    return primitive_checkpoint(tmp_path / "ckpt"), labelled_set(tmp_path / "data", n=40)


def mine_args(model, pool, labelled, out):
    return [
        "mine",
        "--model",
        str(model),
        "--pool",
        str(pool),
        "--labelled",
        str(labelled),
        "--out",
        str(out),
        "--engine",
        "local",
    ]


def assert_nothing_published(out):
    assert not out.exists()


def test_missing_model_folder(tmp_path, inputs):
    _, labelled = inputs
    out = tmp_path / "out"
    line = refused(mine_args(tmp_path / "nope", labelled, labelled, out), "--model")
    assert "no such file or folder" in line
    assert_nothing_published(out)


def test_runs_reference_without_tracking_uri(tmp_path, inputs):
    _, labelled = inputs
    refused(mine_args("runs:/0123abcd", labelled, labelled, tmp_path / "out"), "--tracking-uri")


def test_checkpoint_without_expression_head(tmp_path, inputs):
    import torch

    from hmtl.trainables.checkpoint import load_checkpoint, save_checkpoint

    model, labelled = inputs
    state = load_checkpoint(model)
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("tasks.")}
    save_checkpoint(tmp_path / "headless", state)
    assert isinstance(state["model"], dict) and torch.is_tensor(next(iter(state["model"].values())))
    refused(
        mine_args(tmp_path / "headless", labelled, labelled, tmp_path / "out"), "expression head"
    )


@pytest.mark.parametrize(
    ("size", "channels", "needle"), [(64, 1, "image size 64"), (48, 3, "channel count 3")]
)
def test_pool_of_another_shape(tmp_path, inputs, size, channels, needle):
    model, labelled = inputs
    pool = pool_set(tmp_path / "data", render_faces(8, size=size, channels=channels, seed=1).images)
    out = tmp_path / "out"
    refused(mine_args(model, pool, labelled, out), needle)
    assert_nothing_published(out)


def test_unlabelled_labelled_set(tmp_path, inputs):
    model, _ = inputs
    pool = pool_set(tmp_path / "data", render_faces(8, size=48, channels=1, seed=1).images)
    refused(mine_args(model, pool, pool, tmp_path / "out"), "an unlabelled dataset")


def test_pool_that_is_not_a_dataset(tmp_path, inputs):
    model, labelled = inputs
    (tmp_path / "empty").mkdir()
    refused(mine_args(model, tmp_path / "empty", labelled, tmp_path / "out"), "--pool")


def test_refusals_start_no_ray(tmp_path, inputs):
    import ray

    _, labelled = inputs
    refused(mine_args(tmp_path / "nope", labelled, labelled, tmp_path / "out"), "--model")
    assert not ray.is_initialized()
