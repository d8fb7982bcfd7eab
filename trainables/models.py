"""Image backbones in plain torch (torchvision does not import with our torch).

Every backbone exposes ``feature_dim``, ``forward_features(x)`` -> the last feature map
``(N, feature_dim, h, w)`` (the in-painting decoder reads it) and ``forward(x)`` -> the
globally average-pooled features ``(N, feature_dim)``. Heads live in the task files.

The ResNets copy torchvision's v1.5 architecture and state-dict key names (minus ``fc``), so
torchvision ImageNet checkpoints saved to a local file load with :func:`load_pretrained`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmtl.trainables.checkpoint import CHECKPOINT_FILE
from hmtl.trainables.config import ConfigError, ModelConfig

BACKBONES: tuple[str, ...] = ("small_cnn", "resnet18", "resnet50")


class PretrainedError(ConfigError):
    """`model.pretrained` names a file that cannot start this backbone, as one line."""


def _conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


def _init_weights(model: nn.Module) -> None:
    """torchvision's ResNet init: Kaiming-normal convs (fan_out), BN weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1-projected) shortcut; ResNet-18/34."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, out_ch, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as in torchvision v1.5), 1x1 expand; ResNet-50+."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, out_ch, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    """The projection shortcut, only where the shape changes (torchvision's rule)."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


STEMS: tuple[str, ...] = ("imagenet", "small")


class ResNet(nn.Module):
    """torchvision's ResNet without ``avgpool``/``fc``; attribute names match its state dict.

    ``stem="imagenet"`` is torchvision's 7x7 stride-2 conv + 3x3 stride-2 max-pool (a 4x
    reduction before layer1, so a 48 px face is 2x2 at layer4). ``stem="small"`` is the
    CIFAR-style 3x3 stride-1 conv without max-pool that FER work uses on 48 px faces (6x6
    at layer4, 16x the multiply-adds). Both keep the names ``conv1``/``bn1``: a checkpoint
    loads into a model of the same stem, and one of the other stem fails on conv1's shape.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        in_channels: int = 3,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        elif stem == "small":
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()  # no parameters, so no state-dict keys either
        else:
            raise ValueError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)}")
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.in_ch = 64  # running width while the stages are built
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.feature_dim = self.in_ch
        _init_weights(self)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], width: int, blocks: int, stride: int
    ) -> nn.Sequential:
        """One stage; only its first block strides and projects, as in torchvision."""
        stage = [block(self.in_ch, width, stride)]
        self.in_ch = width * block.expansion
        stage += [block(self.in_ch, width) for _ in range(blocks - 1)]
        return nn.Sequential(*stage)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.forward_features(x), 1), 1)


class SmallCNN(nn.Module):
    """Four stages of (conv3x3-BN-ReLU) x2 with a 2x2 max-pool between stages.

    Sized for 48-64 px face crops on a CPU: the first conv has stride 2, which cuts the cost of
    the widest-resolution stage by 4 (about 30 M multiply-adds per 48 px image instead of
    120 M); the last map is 3x3 at 48 px, 4x4 at 64 px and 14x14 at 224 px.
    """

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        stages, in_ch = [], in_channels
        for i, width in enumerate(widths):
            pool = [nn.MaxPool2d(2)] if i > 0 else []
            stem_stride = 2 if i == 0 else 1
            stages.append(
                nn.Sequential(
                    *pool, *_conv_bn_relu(in_ch, width, stem_stride), *_conv_bn_relu(width, width)
                )
            )
            in_ch = width
        self.stages = nn.Sequential(*stages)
        self.feature_dim = in_ch
        _init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stages(x)

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.forward_features(x), 1), 1)


def build_backbone(
    name: str, in_channels: int = 3, width: int = 32, stem: str = "imagenet"
) -> nn.Module:
    """Return a freshly initialised backbone ``name`` (one of :data:`BACKBONES`).

    ``width`` is small_cnn's first-stage width (stages double it); ResNets ignore it.
    ``stem`` (one of :data:`STEMS`) is the ResNets' input stem; small_cnn ignores it.
    """
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    if name == "small_cnn":
        return SmallCNN(in_channels, tuple(width * 2**i for i in range(4)))
    if name == "resnet18":
        return ResNet(BasicBlock, [2, 2, 2, 2], in_channels, stem)
    if name == "resnet50":
        return ResNet(Bottleneck, [3, 4, 6, 3], in_channels, stem)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


def _names(keys: list[str], limit: int = 5) -> str:
    more = f", ... ({len(keys)} in all)" if len(keys) > limit else f" ({len(keys)} in all)"
    return ", ".join(keys[:limit]) + more


def load_pretrained(backbone: nn.Module, path: str | os.PathLike, name: str | None = None) -> None:
    """Load local backbone weights into ``backbone`` in place; never downloads.

    ``path`` is a ``torch.save``-d state dict (plain, or under "state_dict"/"model") or an hmtl
    checkpoint folder (or its ``checkpoint.pt``), whose "model" is a whole FaceModel: only its
    ``backbone.*`` tensors load, the task heads are left out. Strips "module."/"backbone."
    prefixes, drops ``fc.*`` (torchvision's ImageNet head) and adapts a stem conv between 3 and
    1 input channels (sum for RGB -> grey, repeat / 3 for grey -> RGB). ``name`` is how errors
    name the source (the reference a user wrote, when ``path`` is a fetched copy). Raises
    FileNotFoundError or a one-line PretrainedError (a ValueError) naming the source.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    where = f"model.pretrained: {name or path}"
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no such pretrained-weights file")
    try:
        with torch.serialization.safe_globals(_CHECKPOINT_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch.load raises many types for a bad file; all mean the same
        # torch's own text is a paragraph about `weights_only`; it would not fit one line.
        raise PretrainedError(
            f"{where}: not a loadable torch file "
            "(damaged, or not a state dict written by torch.save)"
        ) from None
    trained_as = _trained_as(obj)
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise PretrainedError(f"{where}: not a state dict (expected a mapping of names to tensors)")
    if any(key.startswith("backbone.") for key in obj):
        # A FaceModel's state (an hmtl checkpoint): the backbone only, heads start fresh.
        obj = {k: v for k, v in obj.items() if k.startswith("backbone.")}

    state: dict[str, Tensor] = {}
    for key, value in obj.items():
        while key.startswith(("module.", "backbone.")):
            key = key.split(".", 1)[1]
        if not key.startswith("fc."):
            state[key] = value

    own = backbone.state_dict()
    for key, value in own.items():
        if key.endswith("num_batches_tracked"):  # absent from pre-0.4.1 files; harmless
            state.setdefault(key, value)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    counted = [k for k in own if not k.endswith("num_batches_tracked")]
    if missing and unexpected and len(missing) > len(counted) // 2:
        # Mostly disjoint key sets: a file made for another backbone, not a damaged one.
        raise PretrainedError(
            f"{where}: weights of another architecture{trained_as}: "
            f"{len(counted) - len(missing)} of the "
            f"{type(backbone).__name__} backbone's {len(counted)} keys are in the file (missing "
            f"{missing[0]}, ...; unexpected {unexpected[0]}, ...); check model.backbone"
        )
    if missing:
        raise PretrainedError(f"{where}: missing keys {_names(missing)}{trained_as}")
    if unexpected:
        raise PretrainedError(f"{where}: unexpected keys {_names(unexpected)}{trained_as}")

    for key, want in own.items():
        got = state[key]
        # Only a stem conv has 1 or 3 input channels, so this cannot mask a real mismatch.
        if got.dim() == 4 and got.shape[0] == want.shape[0] and got.shape[2:] == want.shape[2:]:
            if got.shape[1] == 3 and want.shape[1] == 1:
                got = got.sum(dim=1, keepdim=True)
            elif got.shape[1] == 1 and want.shape[1] == 3:
                got = got.repeat(1, 3, 1, 1) / 3
        if got.shape != want.shape:
            raise PretrainedError(
                f"{where}: shape mismatch for {key}: file has {tuple(got.shape)}, "
                f"model has {tuple(want.shape)}{trained_as}"
            )
        state[key] = got
    backbone.load_state_dict(state, strict=True)


# An hmtl checkpoint.pt also holds numpy RNG states: these rebuild arrays and their dtypes,
# and run no other code, so a downloaded checkpoint still loads with `weights_only`.
_NOT_NUMERIC = {"ObjectDType", "VoidDType", "StrDType", "BytesDType", "StringDType"}
_CHECKPOINT_GLOBALS = [
    np.ndarray,
    np.dtype,
    np._core.multiarray._reconstruct,
    *(getattr(np.dtypes, name) for name in np.dtypes.__all__ if name not in _NOT_NUMERIC),
]


def _trained_as(obj: object) -> str:
    """' (checkpoint of model.backbone X, width W)' for an hmtl checkpoint, else ''."""
    config = obj.get("config") if isinstance(obj, Mapping) else None
    model = config.get("model") if isinstance(config, Mapping) else None
    if not isinstance(model, Mapping) or "backbone" not in model:
        return ""
    width = f", width {model['width']}" if model.get("backbone") == "small_cnn" else ""
    return f" (a checkpoint of model.backbone {model['backbone']}{width})"


def check_pretrained(model: ModelConfig, channels: int, path: str | None = None) -> None:
    """Load `model.pretrained` into a throwaway backbone, so a bad file is refused before a
    run folder, an MLflow run or a Ray cluster exists. `path` is the local copy of a remote
    or tracked source (errors still name the reference). Raises what load_pretrained raises."""
    if model.pretrained:
        backbone = build_backbone(model.backbone, channels, model.width, model.stem)
        load_pretrained(backbone, path or model.pretrained, name=model.pretrained)
