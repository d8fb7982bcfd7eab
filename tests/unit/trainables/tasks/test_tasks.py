"""Every registered task through `FaceModel`: a couple of steps each, weights, skipping."""

import pytest
import torch
from helpers import FACE_INFO

from hmtl.trainables.augment import augment
from hmtl.trainables.config import build_config
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.models import build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.session import LocalSession
from hmtl.trainables.tasks import REGISTRY, AuxBatch, build_tasks, combine, task_weights
from hmtl.trainables.tasks.head_pose import targets
from hmtl.trainables.train import train


@pytest.fixture(scope="module")
def faces():
    f = render_faces(32, size=48, channels=1, seed=3)
    batch = {
        "image": torch.from_numpy(f.images).permute(0, 3, 1, 2).contiguous(),
        "expression": torch.from_numpy(f.expression).long(),
        "gender": torch.from_numpy(f.gender).long(),
        **{a: torch.from_numpy(getattr(f, a)) for a in ("yaw", "pitch", "roll")},
    }
    return batch


def _config(name: str):
    kind = REGISTRY[name].kind
    tree = {"data": {"image_size": 48}, "model": {"width": 8}}
    if kind == "main":
        tree["tasks"] = {"main": {"expression": None, name: {"weight": 1.0}}}
    else:
        tree["tasks"] = {"loss_weights": {name: 1.0}}
    return build_config(tree)


def _step_inputs(batch, seed):
    gen = torch.Generator().manual_seed(seed)
    clean, geometry = augment(batch["image"], "weak", generator=gen, return_geometry=True)
    batch = {**batch, "flipped": geometry.flipped, "rotation_deg": geometry.rotation_deg}
    return clean, batch, AuxBatch(batch["image"], clean, gen, 1.0, 48)


def _model(cfg, one_pass=True):
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", 1, width=8)
    tasks = build_tasks(cfg, FACE_INFO, backbone.feature_dim)
    return FaceModel(backbone, tasks, one_pass=one_pass, aux_budget=cfg.tasks.aux_budget)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_task_trains_for_two_steps(faces, name):
    cfg = _config(name)
    model = _model(cfg)
    assert name in model.tasks
    weights = task_weights(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.tasks[name].parameters()]
    for step in range(2):
        clean, batch, aux = _step_inputs(faces, step)
        total, parts = combine(model(clean, batch, aux), weights)
        assert torch.isfinite(total) and name in {p.split("/")[0] for p in parts}
        opt.zero_grad()
        total.backward()
        opt.step()
    after = list(model.tasks[name].parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("name", ["expression", "head_pose", "gender"])
def test_main_task_loss_falls_when_trained_alone(faces, name):
    cfg = _config(name)
    model = _model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    clean, batch, aux = _step_inputs(faces, 0)
    for _ in range(20):
        total, _ = combine(model(clean, batch, aux), task_weights(cfg))
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3


def test_zero_weight_costs_nothing(faces, monkeypatch):
    cfg = build_config(
        {
            "data": {"image_size": 48},
            "model": {"width": 8},
            "tasks": {"loss_weights": {"rotation": 0.5, "jigsaw": 0.0}},
        }
    )
    assert set(task_weights(cfg)) == {"expression", "rotation"}
    made = {name: 0 for name in ("jigsaw", "rotation", "inpainting", "contrastive")}
    for name in made:
        cls = type(REGISTRY[name].build(_config(name), FACE_INFO, 8))
        original = cls.make_input

        def counting(self, aux, _name=name, _original=original):
            made[_name] += 1
            return _original(self, aux)

        monkeypatch.setattr(cls, "make_input", counting)
    for one_pass, expected_passes in ((True, 1), (False, 2)):
        model = _model(cfg, one_pass=one_pass)
        calls = []
        original_features = model.backbone.forward_features

        def counted(x, _orig=original_features, calls=calls):
            calls.append(len(x))
            return _orig(x)

        model.backbone.forward_features = counted
        clean, batch, aux = _step_inputs(faces, 0)
        model(clean, batch, aux)
        assert len(calls) == expected_passes
        assert sum(calls) == 2 * len(clean)
    assert made == {"jigsaw": 0, "rotation": 2, "inpainting": 0, "contrastive": 0}


def test_head_pose_labels_follow_flip_and_rotation():
    batch = {
        "yaw": torch.tensor([10.0, 10.0]),
        "pitch": torch.tensor([5.0, 5.0]),
        "roll": torch.tensor([20.0, 20.0]),
        "flipped": torch.tensor([False, True]),
        "rotation_deg": torch.tensor([15.0, 0.0]),
    }
    angles, valid = targets(batch)
    assert angles.tolist() == [[10.0, 5.0, 5.0], [-10.0, 5.0, -20.0]]
    assert valid.all()


def test_main_task_without_labels_is_a_config_error(dataset_cache):
    from hmtl.trainables.config import ConfigError

    no_pose = DatasetInfo(FACE_INFO.classes, FACE_INFO.class_counts, ("identity",), "x", "fer2013")
    with pytest.raises(ConfigError, match="head_pose needs yaw/pitch/roll labels"):
        build_tasks(_config("head_pose"), no_pose, 8)


def test_combined_run_all_tasks_on_cpu(tiny_config, tmp_path):
    cfg = tiny_config(
        "schedule.epochs=1",
        "tasks.main.head_pose.weight=0.5",
        "tasks.main.gender.weight=0.5",
        "tasks.loss_weights.jigsaw=0.5",
        "tasks.loss_weights.rotation=0.5",
        "tasks.loss_weights.inpainting=1.0",
        "tasks.loss_weights.contrastive=0.2",
    )
    result = train(cfg, LocalSession(tmp_path, log=None))
    m = result.metrics
    for task in (
        "expression",
        "head_pose",
        "gender",
        "jigsaw",
        "rotation",
        "inpainting",
        "contrastive",
    ):
        assert any(k.startswith(f"train/loss/{task}") for k in m), task
    assert {"val/balanced_accuracy", "val/head_pose/mae_yaw", "val/gender/accuracy"} <= set(m)
    assert all(v == v for v in m.values() if isinstance(v, float))  # no NaN


@pytest.mark.parametrize(("budget", "expected"), [(1.0, 32), (0.5, 16), (2.0, 64)])
def test_aux_budget_bounds_backbone_inputs(faces, budget, expected):
    cfg = build_config(
        {
            "data": {"image_size": 48},
            "model": {"width": 8},
            "tasks": {
                "aux_budget": budget,
                "loss_weights": dict.fromkeys(
                    ("jigsaw", "rotation", "inpainting", "contrastive"), 1.0
                ),
            },
        }
    )
    model = _model(cfg, one_pass=False)
    seen = []
    original = model.backbone.forward_features
    model.backbone.forward_features = lambda x: seen.append(len(x)) or original(x)
    clean, batch, aux = _step_inputs(faces, 0)
    model(clean, batch, aux)
    assert seen[0] == len(clean) == 32
    assert sum(seen[1:]) == expected
    assert seen[1:] == [expected // 8 * 2, expected // 4, expected // 4, expected // 4]
