"""Fine-tuning from pre-trained weights: what loads (backbone only), a frozen backbone (linear
probe), the backbone's learning-rate share, and the lineage of a resolved source."""

import hashlib

import pytest
import torch
from helpers import FACE_INFO

from hmtl.orchestration.tracking.pretrained import Source, resolved, weights_of
from hmtl.orchestration.tracking.tags import FROM_TAG, NOTE_TAG, SHA_TAG
from hmtl.trainables.checkpoint import load_checkpoint, rng_state, save_checkpoint
from hmtl.trainables.finetune import start_backbone
from hmtl.trainables.models import PretrainedError, build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.optim import make_optimizer, make_scheduler
from hmtl.trainables.session import LocalSession
from hmtl.trainables.tasks import build_tasks
from hmtl.trainables.train import train


def face_model(cfg, seed: int, pretrained: bool = False) -> FaceModel:
    """A FaceModel built as `train` builds it: seed, backbone (+ its source), then heads."""
    torch.manual_seed(seed)
    backbone = build_backbone(cfg.model.backbone, cfg.data.channels, cfg.model.width)
    if pretrained:
        start_backbone(backbone, cfg.model)
    return FaceModel(backbone, build_tasks(cfg, FACE_INFO, backbone.feature_dim))


def pretrained_checkpoint(cfg, folder) -> FaceModel:
    """A whole FaceModel saved as an hmtl checkpoint, with BN statistics off their defaults."""
    source = face_model(cfg, seed=1)
    for name, buffer in source.backbone.named_buffers():
        if "running" in name:
            buffer.uniform_(0.5, 1.5)
    save_checkpoint(
        folder,
        {
            "model": source.state_dict(),
            "optimizer": {},
            "scheduler": {},
            "epoch": 3,
            "rng": rng_state(),  # numpy arrays: loading must allow them, and nothing else
            "config": cfg.model_dump(),
        },
    )
    return source


def assert_same_tensors(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_a_checkpoint_folder_gives_its_backbone_and_the_heads_start_fresh(tiny_config, tmp_path):
    cfg = tiny_config()
    source = pretrained_checkpoint(cfg, tmp_path / "checkpoint_000003")
    tuned_cfg = tiny_config(f"model.pretrained={tmp_path / 'checkpoint_000003'}")
    tuned = face_model(tuned_cfg, seed=0, pretrained=True)
    assert_same_tensors(tuned.backbone.state_dict(), source.backbone.state_dict())
    scratch = face_model(cfg, seed=0)  # the same seed, no source: the heads a new run gets
    assert_same_tensors(tuned.tasks.state_dict(), scratch.tasks.state_dict())
    head = "expression.head.1.weight"
    assert not torch.equal(tuned.tasks.state_dict()[head], source.tasks.state_dict()[head])


def test_frozen_backbone_keeps_weights_and_bn_statistics_while_heads_train(tiny_config, tmp_path):
    cfg = tiny_config()
    source = pretrained_checkpoint(cfg, tmp_path / "source")
    probe = tiny_config(
        f"model.pretrained={tmp_path / 'source'}",
        "model.freeze_backbone=true",
        "optim.lr=0.01",
        "schedule.epochs=1",
        "schedule.warmup_epochs=0",
    )
    result = train(probe, LocalSession(tmp_path / "run", log=None))
    state = load_checkpoint(result.checkpoint)
    after = {k[len("backbone.") :]: v for k, v in state["model"].items() if "backbone." in k}
    assert_same_tensors(after, source.backbone.state_dict())  # BN running stats included
    before_heads = face_model(cfg, seed=0).tasks.state_dict()
    head = "expression.head.1.weight"
    assert not torch.equal(state["model"][f"tasks.{head}"], before_heads[head])
    # The optimizer never held a backbone parameter (AdamW keeps state per parameter it has).
    held = sum(len(g["params"]) for g in state["optimizer"]["param_groups"])
    assert held == len(list(face_model(cfg, 0).tasks.parameters()))


def test_backbone_lr_scale_gives_the_backbone_its_share_of_the_rate(tiny_config):
    cfg = tiny_config("optim.lr=0.002", "optim.backbone_lr_scale=0.1")
    model = face_model(cfg, seed=0)
    optimizer = make_optimizer(cfg.optim, model)
    lrs = [group["lr"] for group in optimizer.param_groups]
    assert lrs == [0.002, 0.002, 0.002 * 0.1, 0.002 * 0.1]
    backbone = {id(p) for p in model.backbone.parameters()}
    groups = [{id(p) for p in group["params"]} for group in optimizer.param_groups]
    assert groups[0] | groups[1] == {id(p) for p in model.tasks.parameters()}
    assert groups[2] | groups[3] == backbone
    # Norms and biases keep no weight decay, in the backbone's groups as in the heads'.
    decays = [group["weight_decay"] for group in optimizer.param_groups]
    assert decays == [cfg.optim.weight_decay, 0.0, cfg.optim.weight_decay, 0.0]
    assert all(p.ndim <= 1 for p in optimizer.param_groups[3]["params"])
    # The schedule scales every group alike: the share holds through warm-up and decay.
    scheduler = make_scheduler(cfg.schedule, optimizer, steps_per_epoch=4)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
        heads, slow = optimizer.param_groups[0]["lr"], optimizer.param_groups[2]["lr"]
        assert slow == heads * 0.1 or abs(slow - heads * 0.1) < 1e-15


def test_an_unscaled_backbone_shares_the_two_groups_of_before(tiny_config):
    cfg = tiny_config()
    model = face_model(cfg, seed=0)
    optimizer = make_optimizer(cfg.optim, model)
    assert [g["lr"] for g in optimizer.param_groups] == [cfg.optim.lr] * 2
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert held == {id(p) for p in model.parameters()}


def test_a_local_source_is_hashed_and_tagged(tmp_path):
    weights = tmp_path / "weights.pt"
    torch.save(build_backbone("small_cnn", 1, 8).state_dict(), weights)
    with resolved(str(weights), None) as (source, local):
        assert local == str(weights)
    assert source.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    tags = source.tags()
    assert tags[FROM_TAG] == str(weights) and tags[SHA_TAG] == source.sha256
    assert source.sha256 in tags[NOTE_TAG]


def test_a_run_source_links_its_run_in_the_description():
    source = Source("runs:/abc123", "/runs/x/checkpoint_000002", "f" * 64, "abc123", "7")
    tags = source.tags()
    assert tags[FROM_TAG] == "runs:/abc123"
    assert "(#/experiments/7/runs/abc123)" in tags[NOTE_TAG]
    assert "/runs/x/checkpoint_000002" in tags[NOTE_TAG]


def test_a_trial_refuses_weights_that_changed_since_the_sweep_resolved_them(tmp_path):
    weights = tmp_path / "weights.pt"
    torch.save(build_backbone("small_cnn", 1, 8).state_dict(), weights)
    with resolved(str(weights), None) as (source, _):
        pass
    with weights_of(source) as local:
        assert local == str(weights)
    torch.save(build_backbone("small_cnn", 1, 16).state_dict(), weights)
    changed = pytest.raises(PretrainedError, match="changed since the sweep resolved it")
    with changed, weights_of(source):
        pass
