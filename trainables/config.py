"""`TrainConfig`: the one validated configuration of a training run.

Parsed once at the boundary (a YAML file plus `--set key.sub=value` overrides) and
passed down as typed objects. Every section forbids unknown keys, so a typo is an
error that names the key and the valid ones instead of a silently ignored setting.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration problem, phrased as one line fit to show a user."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


Fraction = Annotated[float, Field(gt=0.0, le=1.0)]


class SyntheticConfig(Section):
    """Synthetic faces generated (and cached) when `data.source` is `synthetic`."""

    num_samples: int = Field(10_000, ge=64, le=2_000_000)
    seed: int = Field(0, ge=0)
    num_identities: int = Field(200, ge=2)


class DataConfig(Section):
    source: str = "synthetic"
    """`synthetic`, or a folder holding a prepared dataset (`card.json` + Parquet shards)."""
    cache_dir: str = "hmtl-runs/datasets"
    """Where synthetic datasets are written on first use and found again by fingerprint."""
    synthetic: SyntheticConfig = SyntheticConfig()
    extra_sources: list[str] = []
    """Prepared datasets whose rows join the training split only (e.g. what `hmtl mine`
    published: pseudo-labelled faces); local folders or `s3://` URIs."""
    extra_weight: float = Field(1.0, ge=0.0, le=10.0)
    """Expression-loss weight of an extra source's rows (1: like a labelled row)."""
    image_size: int = Field(64, ge=48, le=224)
    channels: Literal[1, 3] = 1
    classes: Literal[7, 8] = 8
    val_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    test_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    label_fraction: Fraction = 1.0
    """Share of the training split that keeps its labels (stratified, seeded)."""
    unlabelled_to_aux: bool = True
    """With label_fraction < 1, the rows whose labels are withheld feed the auxiliary tasks
    (semi-supervised HMTL); false drops them, as before."""
    split_seed: int = Field(0, ge=0)
    batch_size: int = Field(128, ge=1, le=8192)
    eval_batch_size: int = Field(512, ge=1, le=16384)


class ModelConfig(Section):
    backbone: Literal["small_cnn", "resnet18", "resnet50"] = "small_cnn"
    pretrained: str | None = None
    """Backbone weights to start from: a state-dict file (torchvision key names), an hmtl
    checkpoint folder, an `s3://` URI of either, or `runs:/<mlflow run id>` (that run's best
    checkpoint). Only backbone weights load; task heads start fresh. Never fetched from a hub."""
    freeze_backbone: bool = False
    """Linear probe: the backbone takes no gradient step and keeps its BN statistics."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    width: int = Field(32, ge=4, le=256)
    """small_cnn's first-stage width (the stages double it); ignored by the ResNets."""
    stem: Literal["imagenet", "small"] = "imagenet"
    """The ResNets' input stem. imagenet: torchvision's 7x7 stride-2 conv + max-pool (ImageNet
    weights load; 4x smaller maps before the first stage). small: a 3x3 stride-1 conv without
    max-pool, as CIFAR-style ResNets for 48-64 px faces use. small_cnn ignores it."""


class ExpressionConfig(Section):
    weight: float = Field(1.0, gt=0.0)
    class_weights: Literal["none", "inverse_frequency"] = "none"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)


class HeadPoseConfig(Section):
    """Yaw/pitch/roll regression (degrees); needs a dataset with pose labels."""

    weight: float = Field(1.0, gt=0.0)
    loss: Literal["smooth_l1", "l1", "mse"] = "smooth_l1"
    scale_deg: float = Field(30.0, gt=0.0)
    """Angles are divided by this before the loss, so it is O(1) next to cross-entropy."""


class GenderConfig(Section):
    weight: float = Field(1.0, gt=0.0)


class MainTasksConfig(Section):
    """Supervised tasks; none enabled (every one null) is a pre-training run, which
    `TrainConfig` accepts only with an auxiliary of weight > 0."""

    expression: ExpressionConfig | None = ExpressionConfig()
    head_pose: HeadPoseConfig | None = None
    gender: GenderConfig | None = None

    def enabled(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


class LossWeightsConfig(Section):
    """Weights of the self-supervised auxiliary tasks; 0 disables a task (and its compute)."""

    jigsaw: float = Field(0.0, ge=0.0)
    rotation: float = Field(0.0, ge=0.0)
    inpainting: float = Field(0.0, ge=0.0)
    contrastive: float = Field(0.0, ge=0.0)


class JigsawConfig(Section):
    form: Literal["hmtl", "classic"] = "hmtl"
    """hmtl: a head per grid position predicting its original tile; classic: one head over
    a fixed set of `permutations` maximally distant permutations."""
    grid: Literal[2, 3] = 3
    permutations: int = Field(100, ge=2, le=1000)
    seed: int = Field(0, ge=0)


class RotationConfig(Section):
    form: Literal["whole", "tiles"] = "whole"
    """whole: the image turned by k*90 degrees (RotNet); tiles: each grid tile turned alone."""
    grid: Literal[2, 3] = 3


class InpaintingConfig(Section):
    masks: Literal["rectangles", "regions", "both"] = "rectangles"
    """rectangles: random boxes; regions: the eyes or the mouth of a centred face."""
    mask_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    """Side of a random rectangle as a share of the image side (upper bound)."""
    perceptual_weight: float = Field(0.0, ge=0.0)
    """Weight of an optional perceptual term: distance under a frozen, seeded random conv stack."""


class ContrastiveConfig(Section):
    temperature: float = Field(0.2, ge=0.01, le=1.0)
    projection_dim: int = Field(128, ge=8, le=2048)
    view_level: Literal["weak", "strong"] = "strong"
    """Augmentation level that makes the two views."""
    crop_scale: Annotated[list[float], Field(min_length=2, max_length=2)] = [0.2, 1.0]
    """Random resized crop before the view level: [low, high] share of the image area (SimCLR's
    is [0.08, 1.0]; Bulat et al.'s face SwAV uses 0.14 for its global crops; on 48-64 px
    aligned faces a crop under ~0.2 of the area is a patch of cheek, so 0.2 here). A list, not
    a tuple, so the resolved config dumps to YAML and JSON alike."""
    rotation_weight: float = Field(0.0, ge=0.0)
    """EffSSL: weight of the rotation auxiliary on both views (0 off; the paper's 0.1)."""

    @model_validator(mode="after")
    def _crop_range(self) -> ContrastiveConfig:
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        return self


class AuxTasksConfig(Section):
    """Settings of the auxiliary tasks; whether they run is `loss_weights`."""

    jigsaw: JigsawConfig = JigsawConfig()
    rotation: RotationConfig = RotationConfig()
    inpainting: InpaintingConfig = InpaintingConfig()
    contrastive: ContrastiveConfig = ContrastiveConfig()


class TasksConfig(Section):
    main: MainTasksConfig = MainTasksConfig()
    loss_weights: LossWeightsConfig = LossWeightsConfig()
    aux: AuxTasksConfig = AuxTasksConfig()
    aux_budget: float = Field(1.0, gt=0.0, le=8.0)
    """Backbone inputs the enabled auxiliaries pass per step together, as a multiple of the
    batch; shared equally, so one auxiliary sees the whole batch and four see a quarter
    each (contrastive's two views count twice). Keeps a step's cost near 1 + budget."""


class AugmentationConfig(Section):
    level: Literal["none", "weak", "strong", "eval"] = "weak"
    magnitude: float = Field(1.0, ge=0.0, le=1.0)
    """Scales the strong level's ranges, so a search can treat strength as continuous."""


class OptimConfig(Section):
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(0.05, ge=0.0, le=1.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    grad_clip: float | None = Field(1.0, gt=0.0)
    backbone_lr_scale: float = Field(1.0, ge=0.0, le=1.0)
    """The backbone's learning rate as a share of `lr` (fine-tuning pre-trained weights gently)."""


class ScheduleConfig(Section):
    epochs: int = Field(10, ge=1, le=10_000)
    kind: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: float = Field(0.5, ge=0.0)
    step_size: int = Field(10, ge=1)
    """Epochs between decays for the `step` schedule."""
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _warmup_fits(self) -> ScheduleConfig:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs}) must be smaller than epochs ({self.epochs})"
            )
        return self


class RuntimeConfig(Section):
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """`auto`: bf16 autocast on CUDA, fp32 on CPU."""
    channels_last: bool | None = None
    """The model and its inputs in the channels-last memory format; null: on CUDA only."""
    compile: bool = False
    """torch.compile the backbone's training forward; where it cannot compile, training
    continues eagerly after one note (trainables/runtime/compile.py)."""
    data_placement: Literal["device", "host"] = "device"
    """device: the training rows (uint8) live on the training device and a batch is an index
    lookup there. host: they stay in host memory and each step's batch is copied over
    (pinned, asynchronous), for a training set larger than the GPU's memory. Augmentation
    runs on the training device either way."""
    num_threads: int | None = Field(None, ge=1)
    checkpoint_every: int = Field(1, ge=1)
    eval_every: int = Field(1, ge=1)
    """Epochs between k-NN evaluations (`val/knn_accuracy`); the last epoch always has one."""


class TrainConfig(Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    tasks: TasksConfig = TasksConfig()
    augmentation: AugmentationConfig = AugmentationConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    @model_validator(mode="after")
    def _something_to_learn(self) -> TrainConfig:
        # Without a main task this is a pre-training run: it needs an auxiliary loss.
        if not self.tasks.main.enabled() and not any(w > 0 for _, w in self.tasks.loss_weights):
            raise ValueError(
                "no task to train: enable a main task (tasks.main) or give an auxiliary "
                "a weight > 0 (tasks.loss_weights) for a pre-training run"
            )
        return self

    def flat(self) -> dict[str, Any]:
        """The resolved config as flat dotted keys (for params tables and search spaces)."""
        return flatten(self.model_dump())


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def describe_error(
    err: ValidationError,
    source: str = "config",
    root: type[BaseModel] | None = None,
    hidden: tuple[str, ...] = (),
) -> str:
    """Turn pydantic's first error into one line that names the key and the problem.

    `root` is the model that was validated (TrainConfig by default); `hidden` fields are
    not offered as valid keys."""
    first = err.errors()[0]
    loc = [str(part) for part in first["loc"]]
    key = ".".join(loc) or "<root>"
    if first["type"] == "extra_forbidden":
        section = section_at(loc[:-1], root or TrainConfig)
        valid = (
            ", ".join(sorted(k for k in section.model_fields if k not in hidden))
            if section
            else "?"
        )
        return f"{source}: unknown key '{key}' (valid keys here: {valid})"
    if not loc:  # a rule across sections: the input is the whole tree, too long to echo
        return f"{source}: {first['msg'].removeprefix('Value error, ')}"
    return f"{source}: {key}: {first['msg']} (got {first.get('input')!r})"


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's annotation (`X`, `X | None`), if any."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def section_at(path: list[str], root: type[BaseModel]) -> type[BaseModel] | None:
    """The model of the section at `path` under `root`, or None if there is none."""
    model: type[BaseModel] | None = root
    for part in path:
        field = model.model_fields.get(part) if model else None
        model = nested_model(field.annotation) if field else None
    return model


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c = value` in a nested dict, creating the sections on the way."""
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`key.sub=value` -> (key, value), the value read as YAML (so 3 is int, null is None)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def validate_tree(
    model: type[M],
    tree: dict[str, Any] | None = None,
    overrides: Sequence[str] = (),
    source: str = "config",
) -> M:
    """Validate a nested dict plus `key=value` overrides into `model` or raise ConfigError
    (one line naming the key). The caller's dict is left as it was (overrides go into a
    deep copy)."""
    tree = copy.deepcopy(tree or {})
    for text in overrides:
        set_dotted(tree, *parse_override(text))
    try:
        return model.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(describe_error(err, source, root=model)) from None


def read_mapping(path: str | Path, what: str = "sections") -> dict[str, Any]:
    """A YAML config file's top-level mapping, or a one-line ConfigError naming the file."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML") from None
    if loaded is None:
        # An empty file is almost always a mistake (a wrong path, an unsaved editor);
        # running on every default would hide it behind a long run.
        raise ConfigError(f"{path}: empty config file (no {what}; `{{}}` asks for defaults)")
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of {what}, got {type(loaded).__name__}")
    return loaded


def build_config(
    tree: dict[str, Any] | None = None, overrides: Sequence[str] = (), source: str = "config"
) -> TrainConfig:
    """Validate a nested dict plus `key=value` overrides into a TrainConfig or raise ConfigError.
    The caller's dict is left as it was."""
    return validate_tree(TrainConfig, tree, overrides, source)


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML file (or nothing, for the defaults) and apply `--set` overrides."""
    if path is None:
        return build_config({}, overrides)
    return build_config(read_mapping(path), overrides, str(path))
