"""Pre-training runs: no main task, auxiliary losses only, k-NN evaluation, unlabelled data."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers import refused
from PIL import Image

import hmtl.trainables
from hmtl.trainables.checkpoint import load_checkpoint
from hmtl.trainables.config import ConfigError, build_config, load_config
from hmtl.trainables.data.prepare import prepare
from hmtl.trainables.data.readers.base import ReaderOptions
from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.session import LocalSession, format_progress
from hmtl.trainables.train import train

PRETRAIN = ("tasks.main.expression=null", "tasks.loss_weights.contrastive=1")


def test_no_main_task_and_no_auxiliary_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no task to train") as err:
        build_config({}, ["tasks.main.expression=null"])
    assert "\n" not in str(err.value)
    run = tmp_path / "run"
    refused(["train", "demo", "--set", "tasks.main.expression=null", "--out", str(run)], "no task")
    assert not run.exists()
    cfg = build_config({}, ["tasks.main.expression=null", "tasks.loss_weights.jigsaw=0.5"])
    assert cfg.tasks.main.enabled() == []


def test_pretraining_reports_knn_not_main_metrics_and_keeps_backbone_keys(tiny_config, tmp_path):
    # eval_every 3 over 4 epochs: measured at 1 (nothing to carry yet), 3 and 4 (the last);
    # epoch 2 carries epoch 1's value, so a sweep on it finds the metric in every result.
    cfg = tiny_config(*PRETRAIN, "schedule.epochs=4", "runtime.eval_every=3")
    session = LocalSession(tmp_path, log=None)
    result = train(cfg, session)
    assert [m["val/knn_epoch"] for m in session.history] == [1, 1, 3, 4]
    assert session.history[1]["val/knn_accuracy"] == session.history[0]["val/knn_accuracy"]
    m = result.metrics
    assert 0.0 <= m["val/knn_accuracy"] <= 1.0 and 0.0 <= m["test/knn_accuracy"] <= 1.0
    assert "train/loss/contrastive" in m
    assert not any(k.startswith(("val/accuracy", "train/loss/expression")) for k in m)
    assert "val/knn_accuracy" in format_progress(m)
    state = load_checkpoint(result.checkpoint)["model"]
    assert any(k.startswith("backbone.") for k in state)
    assert not any(k.startswith("tasks.expression") for k in state)


def _face_folder(root, n=24):
    """Synthetic faces as PNGs in a nested folder with no class names (some at the top)."""
    for i, image in enumerate(render_faces(n, size=48, channels=1, seed=3).images):
        folder = root / ("" if i % 3 == 0 else f"batch{i % 2}/deeper")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[:, :, 0]).save(folder / f"face{i}.png")


def test_unlabelled_imagefolder_prepares_and_pretrains(tmp_path, capsys):
    _face_folder(tmp_path / "src")
    options = ReaderOptions(unlabelled=True)
    result = prepare("imagefolder", tmp_path / "src", tmp_path / "out", options=options)
    card = result.card
    assert card["num_rows"] == 24 and card["labelled"] is False and card["classes"] == []
    shard = pq.read_table(f"{result.uri}/{card['shards'][0]}")
    assert shard.column_names == ["image"]  # no label columns at all
    over = [f"data.source={result.uri}", "data.batch_size=8", "model.width=8"]
    cfg = build_config({}, [*PRETRAIN, *over, "data.image_size=48", "schedule.epochs=1"])
    metrics = train(cfg, LocalSession(tmp_path / "run", log=None)).metrics
    assert metrics["train/loss/contrastive"] > 0 and "val/knn_accuracy" not in metrics
    assert "no labels: val/knn_accuracy is not reported" in capsys.readouterr().out
    # The same dataset under a main task: one line naming it, before any run folder exists.
    run = tmp_path / "supervised"
    args = ["train", "demo", "--out", str(run), "--set", f"data.source={result.uri}"]
    refused(args, f"{result.uri}: an unlabelled dataset cannot train a main task (expression)")
    assert not run.exists()
    # A sweep of it: refused before Ray starts, nothing made under its storage.
    space = tmp_path / "space.yaml"
    base = {"data": {"source": result.uri}, "runtime": {"device": "cpu"}}
    raw = {
        "name": "sup",
        "num_samples": 1,
        "base": base,
        "space": {"optim.lr": "choice(0.01, 0.02)"},
    }
    space.write_text(yaml.safe_dump(raw))
    storage = tmp_path / "runs"
    refused(["sweep", str(space), "--storage", str(storage)], "cannot train a main task")
    assert not storage.exists()


def test_unlabelled_is_for_image_folders_only(tmp_path):
    out = tmp_path / "out"
    args = ["data", "prepare", "fer2013", str(tmp_path), "--unlabelled", "--out", str(out)]
    refused(args, "--unlabelled: only the imagefolder format")
    assert not out.exists()


def test_every_shipped_training_config_validates_and_pretrain_simclr_is_effssl():
    folder = Path(hmtl.trainables.__file__).parent / "configs"
    # Active-learning configs (a loop around a TrainConfig under `train:`) have their own test.
    paths = [p for p in sorted(folder.glob("*.yaml")) if not p.stem.startswith("active_")]
    configs = {path.stem: load_config(path) for path in paths}
    assert {"demo", "pretrain_simclr"} <= set(configs)
    simclr = configs["pretrain_simclr"]
    assert simclr.tasks.main.enabled() == [] and simclr.tasks.loss_weights.contrastive > 0
    assert simclr.tasks.aux.contrastive.rotation_weight == 0.1
