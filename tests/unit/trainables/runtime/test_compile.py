"""`runtime.compile`: the training forward through torch.compile, and where that cannot
compile, the eager forward after one note (results unchanged, the model's own errors kept)."""

import pytest
import torch
from helpers import FACE_INFO, faces

from hmtl.trainables.augment import augment
from hmtl.trainables.config import build_config
from hmtl.trainables.models import build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.runtime.compile import Compiled
from hmtl.trainables.session import LocalSession
from hmtl.trainables.setup import set_up_model
from hmtl.trainables.tasks import AuxBatch, build_tasks


class NoCompiler(Exception):
    """What a compiler that cannot build raises, here."""


def cannot_build(fn, **options):
    """A compiler whose compiled function fails at its first call, as torch.compile's does
    when it has no C++ compiler or Triton (benchmarks/gpu_bench.py checks torch's own)."""

    def compiled(*args, **kwargs):
        raise NoCompiler("g++: command not found") from OSError("no such file: g++")

    return compiled


def model_and_batch():
    cfg = build_config({"data": {"image_size": 48}, "tasks": {"loss_weights": {"rotation": 1.0}}})
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", 1, width=8)
    model = FaceModel(backbone, build_tasks(cfg, FACE_INFO, backbone.feature_dim))
    raw = faces(8)
    clean = augment(raw, "eval", out_size=48)
    batch = {"image": raw, "expression": torch.arange(8) % 8}
    return model, clean, batch, lambda: AuxBatch(raw, clean, torch.Generator(), 1.0, 48)


def test_a_backbone_the_compiler_cannot_build_trains_eagerly_after_one_note():
    model, clean, batch, aux = model_and_batch()
    model.eval()  # the same batch-norm statistics for both passes
    eager = model(clean, batch, aux())
    notes: list[str] = []
    compiled = Compiled(
        model.backbone.forward_features, "the backbone", notes.append, cannot_build, (NoCompiler,)
    )
    model.train_features = compiled
    model.train()
    for module in model.modules():  # training mode for the wrapper, eval statistics inside
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()
    for _ in range(2):
        fell_back = model(clean, batch, aux())
        assert {k: v.item() for k, v in fell_back.items()} == {
            k: v.item() for k, v in eager.items()
        }
    assert len(notes) == 1 and "\n" not in notes[0]
    assert notes[0].startswith("hmtl: note: runtime.compile: the backbone could not be compiled")
    assert "(OSError: no such file: g++)" in notes[0] and compiled.fast is None


def test_a_compiler_that_refuses_up_front_falls_back_too():
    def refuse(fn, **options):
        raise RuntimeError("torch.compile is not supported on Python 3.99+")

    notes: list[str] = []
    double = Compiled(lambda x: 2 * x, "f", notes.append, compiler=refuse, errors=())
    assert double(torch.ones(2)).tolist() == [2.0, 2.0]
    assert len(notes) == 1 and "Python 3.99+" in notes[0]


def test_the_models_own_errors_are_not_taken_for_compile_failures():
    def broken(x):
        raise ValueError("shapes do not match")

    notes: list[str] = []
    same = Compiled(broken, "f", notes.append, compiler=lambda fn: fn, errors=(NoCompiler,))
    for _ in range(2):
        with pytest.raises(ValueError, match="shapes do not match"):
            same(torch.ones(2))
    assert notes == [] and same.fell_back is None


def test_the_flag_wraps_the_training_forward_and_leaves_it_alone_by_default(tiny_config, tmp_path):
    session = LocalSession(tmp_path, log=None)
    plain = set_up_model(tiny_config(), session, FACE_INFO, torch.device("cpu"), None, False)
    assert plain.model.train_features is None
    cfg = tiny_config("runtime.compile=true")
    net = set_up_model(cfg, session, FACE_INFO, torch.device("cpu"), None, False)
    assert isinstance(net.model.train_features, Compiled)
    assert net.model.train_features.eager == net.model.backbone.forward_features
    assert net.model.train_features.fast is None  # nothing compiled before the first step
