"""`model.stem`: the ResNets' ImageNet stem and the small (CIFAR-style) one for 48-64 px faces."""

from __future__ import annotations

import pytest
import torch

from hmtl.trainables.config import ConfigError, build_config
from hmtl.trainables.models import STEMS, build_backbone, load_pretrained

# Side of layer4's map: the ImageNet stem divides by 32 (ceil at each stride-2 step), the
# small stem by 8 (its stem keeps the resolution; layer2..4 halve it).
LAST_MAP = {
    "imagenet": {48: 2, 64: 2, 112: 4, 224: 7},
    "small": {48: 6, 64: 8, 112: 14, 224: 28},
}


# 224 px once per stem, RGB (a small stem's pass there costs 16 ImageNet-stem passes on CPU);
# the channel count only changes conv1's input, which the smaller sizes cover both ways.
SHAPES = [(c, s) for s in (48, 64, 112) for c in (1, 3)] + [(3, 224)]


@pytest.mark.parametrize(("in_channels", "size"), SHAPES)
@pytest.mark.parametrize("stem", STEMS)
def test_resnet18_stems_forward_and_backward(stem: str, in_channels: int, size: int) -> None:
    torch.manual_seed(0)
    model = build_backbone("resnet18", in_channels, stem=stem).train()
    # One image from 112 px up keeps the test fast; BN still has the map's positions.
    batch = 1 if size >= 112 else 2
    x = torch.randn(batch, in_channels, size, size)
    fmap = model.forward_features(x)
    side = LAST_MAP[stem][size]
    assert fmap.shape == (batch, 512, side, side)
    fmap.mean().backward()
    assert model.conv1.weight.grad is not None
    assert torch.isfinite(model.conv1.weight.grad).all()
    assert model.layer4[1].conv2.weight.grad.abs().sum() > 0


def test_small_stem_is_a_3x3_stride_1_conv_without_max_pool() -> None:
    model = build_backbone("resnet18", 1, stem="small")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    imagenet = build_backbone("resnet18", 1, stem="imagenet")
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    # Same key names: only conv1's kernel differs, so checkpoints of one stem load into it.
    small, big = model.state_dict(), imagenet.state_dict()
    assert set(small) == set(big)
    assert [k for k in small if small[k].shape != big[k].shape] == ["conv1.weight"]


def test_resnet50_takes_the_small_stem() -> None:
    model = build_backbone("resnet50", 3, stem="small").eval()
    with torch.no_grad():
        fmap = model.forward_features(torch.randn(1, 3, 48, 48))
    assert fmap.shape == (1, 2048, 6, 6)


def test_small_cnn_ignores_the_stem() -> None:
    a = build_backbone("small_cnn", 1, width=8, stem="small").state_dict()
    b = build_backbone("small_cnn", 1, width=8, stem="imagenet").state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}


def test_same_stem_checkpoint_loads(tmp_path) -> None:
    torch.manual_seed(1)
    source = build_backbone("resnet18", 1, stem="small")
    path = tmp_path / "small.pt"
    torch.save(source.state_dict(), path)
    target = build_backbone("resnet18", 1, stem="small")
    load_pretrained(target, path)
    torch.testing.assert_close(target.conv1.weight, source.conv1.weight, rtol=0, atol=0)


def test_imagenet_stem_weights_into_a_small_stem_model_is_one_line(tmp_path) -> None:
    path = tmp_path / "imagenet.pth"
    torch.save(build_backbone("resnet18", 3, stem="imagenet").state_dict(), path)
    with pytest.raises(ValueError) as err:
        load_pretrained(build_backbone("resnet18", 3, stem="small"), path)
    message = str(err.value)
    assert "\n" not in message
    assert "imagenet.pth: shape mismatch for conv1.weight" in message
    assert "(64, 3, 7, 7)" in message and "(64, 3, 3, 3)" in message


def test_config_field_and_bad_value() -> None:
    assert build_config().model.stem == "imagenet"
    assert build_config(overrides=["model.stem=small"]).model.stem == "small"
    with pytest.raises(ConfigError, match=r"model\.stem:.*'tiny'"):
        build_config(overrides=["model.stem=tiny"])
    with pytest.raises(ValueError, match="unknown stem 'tiny'"):
        build_backbone("resnet18", stem="tiny")
