"""Backbone shapes, torchvision key/parameter parity and local checkpoint loading."""

from __future__ import annotations

import functools

import pytest
import torch

from hmtl.trainables.models import BACKBONES, build_backbone, load_pretrained

FEATURE_DIM = {"small_cnn": 256, "resnet18": 512, "resnet50": 2048}


@functools.cache
def _eval_backbone(name: str, in_channels: int) -> torch.nn.Module:
    """Build each backbone once per session; the forward tests never modify it."""
    return build_backbone(name, in_channels).eval()


def _torchvision_keys(block: str, layers: list[int]) -> set[str]:
    """torchvision's resnet state-dict keys minus ``fc``, spelled out independently."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv1.weight", *(f"bn1.{s}" for s in bn)}
    convs = 2 if block == "basic" else 3
    for i, blocks in enumerate(layers, start=1):
        for b in range(blocks):
            p = f"layer{i}.{b}"
            for c in range(1, convs + 1):
                keys |= {f"{p}.conv{c}.weight", *(f"{p}.bn{c}.{s}" for s in bn)}
            if b == 0 and (i > 1 or block == "bottleneck"):
                keys |= {f"{p}.downsample.0.weight", *(f"{p}.downsample.1.{s}" for s in bn)}
    return keys


@pytest.mark.parametrize("size", [48, 64, 112, 224])
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", BACKBONES)
def test_output_shapes(name: str, in_channels: int, size: int) -> None:
    model = _eval_backbone(name, in_channels)
    x = torch.randn(2, in_channels, size, size)
    with torch.no_grad():
        fmap = model.forward_features(x)
        pooled = model(x)
    assert model.feature_dim == FEATURE_DIM[name]
    assert fmap.dim() == 4 and fmap.shape[:2] == (2, model.feature_dim)
    assert pooled.shape == (2, model.feature_dim)
    torch.testing.assert_close(pooled, fmap.mean(dim=(2, 3)))


@pytest.mark.parametrize("name", BACKBONES)
def test_backward_gives_finite_grads_everywhere(name: str) -> None:
    model = build_backbone(name, in_channels=1).train()
    model(torch.randn(2, 1, 48, 48)).square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def test_resnet18_keys_match_torchvision() -> None:
    keys = set(build_backbone("resnet18").state_dict())
    assert keys == _torchvision_keys("basic", [2, 2, 2, 2])
    assert len(keys) == 120  # torchvision's 122 minus fc.weight and fc.bias
    assert "layer4.1.bn2.running_var" in keys and "layer2.0.downsample.0.weight" in keys
    assert not any(k.startswith(("layer1.0.downsample", "fc.")) for k in keys)


def test_resnet50_keys_match_torchvision() -> None:
    keys = set(_eval_backbone("resnet50", 3).state_dict())
    assert keys == _torchvision_keys("bottleneck", [3, 4, 6, 3])
    assert len(keys) == 318  # torchvision's 320 minus fc
    assert {"layer1.0.downsample.0.weight", "layer4.2.conv3.weight"} <= keys


@pytest.mark.parametrize(("name", "count"), [("resnet18", 11_176_512), ("resnet50", 23_508_032)])
def test_parameter_counts_match_torchvision_without_fc(name: str, count: int) -> None:
    assert sum(p.numel() for p in _eval_backbone(name, 3).parameters()) == count


def test_build_backbone_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        build_backbone("vgg")
    with pytest.raises(ValueError, match="in_channels"):
        build_backbone("small_cnn", in_channels=2)


@pytest.fixture(scope="module")
def resnet18_rgb() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone("resnet18", in_channels=3)


def test_load_pretrained_round_trip_strips_prefix_and_fc(resnet18_rgb, tmp_path) -> None:
    state = {f"module.{k}": v for k, v in resnet18_rgb.state_dict().items()}
    state |= {"module.fc.weight": torch.zeros(1000, 512), "module.fc.bias": torch.zeros(1000)}
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": state}, path)

    fresh = build_backbone("resnet18", in_channels=3)
    load_pretrained(fresh, path)
    for key, value in resnet18_rgb.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize(("src", "dst"), [(3, 1), (1, 3)])
def test_load_pretrained_adapts_stem_channels(src: int, dst: int, tmp_path) -> None:
    source = build_backbone("small_cnn", in_channels=src)
    path = tmp_path / "cnn.pt"
    torch.save({"model": {f"backbone.{k}": v for k, v in source.state_dict().items()}}, path)

    target = build_backbone("small_cnn", in_channels=dst)
    load_pretrained(target, path)
    stem, got = source.stages[0][0].weight, target.stages[0][0].weight
    want = stem.sum(1, keepdim=True) if dst == 1 else stem.repeat(1, 3, 1, 1) / 3
    torch.testing.assert_close(got, want)


def test_load_pretrained_sums_resnet_conv1_for_grey(resnet18_rgb, tmp_path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(resnet18_rgb.state_dict(), path)
    grey = build_backbone("resnet18", in_channels=1)
    load_pretrained(grey, path)
    torch.testing.assert_close(grey.conv1.weight, resnet18_rgb.conv1.weight.sum(1, keepdim=True))


def test_load_pretrained_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        load_pretrained(build_backbone("small_cnn"), tmp_path / "nope.pth")


def test_load_pretrained_corrupt_file(tmp_path) -> None:
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"this is not a torch checkpoint")
    with pytest.raises(ValueError, match=r"corrupt\.pth: not a loadable torch file"):
        load_pretrained(build_backbone("small_cnn"), path)


def test_load_pretrained_shape_mismatch(tmp_path) -> None:
    path = tmp_path / "wide.pt"
    torch.save(
        build_backbone("small_cnn").state_dict() | {"stages.3.1.weight": torch.ones(7)}, path
    )
    with pytest.raises(ValueError, match=r"wide\.pt: shape mismatch for stages\.3\.1\.weight"):
        load_pretrained(build_backbone("small_cnn"), path)


def test_load_pretrained_missing_and_unexpected_keys(tmp_path) -> None:
    state = build_backbone("small_cnn").state_dict()
    path = tmp_path / "partial.pt"
    torch.save({k: v for k, v in state.items() if not k.startswith("stages.3")}, path)
    with pytest.raises(ValueError, match=r"partial\.pt: missing keys stages\.3\..*in all\)"):
        load_pretrained(build_backbone("small_cnn"), path)
    torch.save(state | {"head.weight": torch.ones(2)}, path)
    with pytest.raises(ValueError, match=r"partial\.pt: unexpected keys head\.weight \(1 in all"):
        load_pretrained(build_backbone("small_cnn"), path)


def test_load_pretrained_between_architectures_is_a_clear_error(resnet18_rgb, tmp_path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(resnet18_rgb.state_dict(), path)
    with pytest.raises(ValueError, match=r"r18\.pth: weights of another architecture: 0 of"):
        load_pretrained(build_backbone("small_cnn"), path)
