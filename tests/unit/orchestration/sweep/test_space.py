"""Search spaces: every shipped file and its smoke version validate, and each kind of mistake
is one line naming the file, the key and the problem."""

import copy
import re
import warnings

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hmtl.orchestration.sweep.distributions import format_distribution, parse_distribution
from hmtl.orchestration.sweep.smoke import smoke
from hmtl.orchestration.sweep.space import SearchSpace, SpaceError, load_space
from hmtl.search_spaces import shipped
from hmtl.trainables.config import TrainConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)

VALID = {
    "name": "study",
    "metric": "val/balanced_accuracy",
    "mode": "max",
    "num_samples": 4,
    "scheduler": {"type": "asha", "max_epochs": 4, "grace_period": 1, "reduction_factor": 2},
    "search": {"sampler": "tpe", "seed": 0},
    "base": {"schedule": {"epochs": 4, "warmup_epochs": 0.5}},
    "space": {
        "optim.lr": "loguniform(1e-4, 1e-2)",
        "augmentation.level": "choice(none, weak, strong)",
    },
}


def write(tmp_path, raw):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def space_with(tmp_path, **changes):
    raw = copy.deepcopy(VALID)
    raw.update(changes)
    return load_space(write(tmp_path, raw))


def error(tmp_path, **changes) -> str:
    """The one-line message for VALID with `changes`; it must name the file."""
    with pytest.raises(SpaceError) as err:
        space_with(tmp_path, **changes)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "study.yaml") in message
    return message


def searched(**entries):
    return {**VALID["space"], **entries}


def ask(space: SearchSpace, sampler=None) -> optuna.trial.FrozenTrial:
    directions = ["maximize" if m == "max" else "minimize" for m in space.modes]
    study = optuna.create_study(
        directions=directions, sampler=sampler or optuna.samplers.RandomSampler(seed=0)
    )
    return study.ask(space.distributions())


# ---- shipped files ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(shipped()))
def shipped_space(request):
    return load_space(request.param)


def test_the_four_studies_ship():
    assert {"quickstart", "hmtl_fer2013", "hmtl_affectnet", "augmentation_vs_pretraining"} <= set(
        shipped()
    )


def test_shipped_space_validates_and_samples(shipped_space):
    space = shipped_space
    assert space.space and space.distributions().keys() == space.space.keys()
    assert space.source is not None and space.source.stem == space.name
    params = ask(space).params
    cfg = space.trial_config(params)
    assert isinstance(cfg, TrainConfig)
    flat = cfg.flat()
    assert all(flat[key] == value for key, value in params.items())
    if space.scheduler is not None:
        assert space.scheduler.max_epochs == cfg.schedule.epochs


def test_shipped_points_enqueue_inside_the_distributions(shipped_space):
    space = shipped_space
    directions = ["maximize" if m == "max" else "minimize" for m in space.modes]
    study = optuna.create_study(directions=directions, sampler=space.sampler())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns when an enqueued value is out of range
        for point in space.search.points_to_evaluate:
            study.enqueue_trial(point)
            trial = study.ask(space.distributions())
            assert {k: trial.params[k] for k in point} == point
            space.trial_config(trial.params)


def test_shipped_smoke_is_small_and_valid(shipped_space, tmp_path):
    small = smoke(shipped_space, tmp_path)
    assert small.name == f"{shipped_space.name}-smoke"
    assert small.num_samples == 2
    assert (small.resources.workers_per_trial, small.resources.gpus_per_worker) == (1, 0)
    assert small.resources.cpus_per_worker == 1
    if small.scheduler is not None:
        assert (small.scheduler.max_epochs, small.scheduler.grace_period) == (2, 1)
    for params in [*small.search.points_to_evaluate, ask(small).params]:
        cfg = small.trial_config(params)
        assert cfg.data.source == "synthetic" and cfg.data.synthetic.num_samples == 600
        assert cfg.data.image_size == 48 and cfg.data.batch_size <= 64
        assert cfg.data.channels == small.trial_config({}).data.channels
        assert cfg.model.backbone == "small_cnn" and cfg.model.width == 8
        assert cfg.runtime.device == "cpu" and cfg.schedule.epochs == 2
        assert cfg.schedule.warmup_epochs <= 0.5
        if cfg.model.pretrained is not None:
            assert cfg.model.pretrained == str(tmp_path / "pretrained-standin.pt")
    # The first smoke trial turns on every searched auxiliary task.
    corner = small.trial_config(small.search.points_to_evaluate[0])
    for key in small.space:
        if key.startswith("tasks.loss_weights."):
            assert getattr(corner.tasks.loss_weights, key.rsplit(".", 1)[1]) > 0


def test_smoke_pretrained_standin_really_loads(tmp_path):
    from hmtl.trainables.models import build_backbone, load_pretrained

    small = smoke(load_space("augmentation_vs_pretraining"), tmp_path)
    assert small.distributions()["model.pretrained"].choices == (
        None,
        str(tmp_path / "pretrained-standin.pt"),
    )
    assert any(p["model.pretrained"] for p in small.search.points_to_evaluate)
    cfg = small.trial_config({"model.pretrained": str(tmp_path / "pretrained-standin.pt")})
    backbone = build_backbone(cfg.model.backbone, cfg.data.channels, cfg.model.width)
    load_pretrained(backbone, cfg.model.pretrained)


def test_smoke_pins_and_narrows_conflicting_keys(tmp_path):
    space = space_with(
        tmp_path,
        scheduler=None,
        base={"model": {"backbone": "resnet18"}, "schedule": {"epochs": 4}},
        space=searched(
            **{
                "schedule.epochs": "int(3, 8)",
                "model.backbone": "choice(resnet18, resnet50)",
                "data.batch_size": "choice(32, 64, 128)",
                "schedule.warmup_epochs": "uniform(0.0, 2.0)",
                "model.pretrained": "choice(null, a.pt, b.pt)",
            }
        ),
        search={"points_to_evaluate": [{"data.batch_size": 128, "optim.lr": 1e-3}]},
    )
    small = smoke(space, tmp_path / "scratch")
    dists = small.distributions()
    assert "schedule.epochs" not in dists and "model.backbone" not in dists
    assert dists["data.batch_size"].choices == (32, 64)
    assert dists["schedule.warmup_epochs"] == FloatDistribution(0.0, 0.5)
    assert len(dists["model.pretrained"].choices) == 2
    assert (tmp_path / "scratch" / "pretrained-standin.pt").is_file()
    assert {"optim.lr": 1e-3} in small.search.points_to_evaluate  # 128 is dropped, lr kept
    assert small.scheduler is None


# ---- distributions ---------------------------------------------------------------------------


def test_distributions_parse_to_optuna_types():
    assert parse_distribution("loguniform(1e-4, 3e-3)") == FloatDistribution(1e-4, 3e-3, log=True)
    assert parse_distribution("uniform(0, 1)") == FloatDistribution(0.0, 1.0)
    assert parse_distribution("int(4, 8)") == IntDistribution(4, 8)
    assert parse_distribution("int(2, 64, log)") == IntDistribution(2, 64, log=True)
    assert parse_distribution("quniform(0, 1, 0.25)") == FloatDistribution(0.0, 1.0, step=0.25)
    choice = parse_distribution('choice(null, 3, 2.5, true, s3://bucket/w.pt, "a, b", 1e-3)')
    assert choice == CategoricalDistribution([None, 3, 2.5, True, "s3://bucket/w.pt", "a, b", 1e-3])
    for dist in (choice, parse_distribution("int(2, 64, log)"), parse_distribution("uniform(0,1)")):
        assert parse_distribution(format_distribution(dist)) == dist


def test_space_distributions_keyed_by_dotted_key(tmp_path):
    space = space_with(
        tmp_path,
        space={
            "optim.lr": "loguniform(1e-4, 3e-3)",
            "schedule.epochs": "int(2, 4)",
            "model.pretrained": "choice(null, weights.pt)",
            "data.batch_size": "choice(32, 64)",
        },
    )
    dists = space.distributions()
    assert dists["optim.lr"].log and isinstance(dists["optim.lr"], FloatDistribution)
    assert dists["schedule.epochs"] == IntDistribution(2, 4)
    assert dists["model.pretrained"].choices == (None, "weights.pt")
    assert dists["data.batch_size"].choices == (32, 64)


@pytest.mark.parametrize(
    ("key", "text", "problem"),
    [
        ("optim.lr", "loguniform(0, 1)", "log scale needs low > 0"),
        ("augmentation.magnitude", "uniform(2, 1)", "must be smaller than high"),
        ("optim.lr", "gaussian(0,1)", "unknown distribution 'gaussian'"),
        ("optim.lr", "loguniform(1e-4)", "expected loguniform(low, high)"),
        ("schedule.epochs", "int(2.5, 8)", "not an integer"),
        ("augmentation.level", "choice(weak)", "two values or more"),
        ("augmentation.level", "choice(weak, weak)", "appears twice"),
        ("optim.lr", "1e-3 to 1e-2", "is not a distribution"),
    ],
)
def test_bad_distribution_names_key_and_problem(tmp_path, key, text, problem):
    message = error(tmp_path, space=searched(**{key: text}))
    assert f"space.{key}" in message and problem in message


def test_fixed_value_in_space_points_to_base(tmp_path):
    message = error(tmp_path, space=searched(**{"optim.weight_decay": 0.01}))
    assert "space.optim.weight_decay" in message and "fixed value" in message
    assert "base" in message


# ---- keys and values against TrainConfig -----------------------------------------------------


def test_unknown_top_level_key_lists_valid_ones(tmp_path):
    message = error(tmp_path, schedular={})
    assert "unknown key 'schedular'" in message and "scheduler" in message
    assert "source" not in re.findall(r"\w+", message.split("valid keys")[1])


def test_unknown_nested_key(tmp_path):
    message = error(tmp_path, search={"sampler": "tpe", "sed": 1})
    assert "search.sed" in message and "points_to_evaluate" in message


def test_unknown_space_key_lists_section_keys(tmp_path):
    message = error(tmp_path, space=searched(**{"optim.lrr": "uniform(0.1, 1)"}))
    assert "space.optim.lrr" in message and "unknown TrainConfig key" in message
    assert "lr, momentum" in message


def test_section_is_not_a_searchable_key(tmp_path):
    message = error(tmp_path, space=searched(**{"tasks.loss_weights": "uniform(0, 1)"}))
    assert "is a section" in message and "tasks.loss_weights.jigsaw" in message


def test_nested_keys_resolve_and_enable_sections(tmp_path):
    space = space_with(
        tmp_path,
        space=searched(
            **{
                "tasks.loss_weights.jigsaw": "loguniform(0.01, 2.0)",
                "tasks.main.head_pose.weight": "uniform(0.1, 1.0)",
            }
        ),
    )
    cfg = space.trial_config({"tasks.main.head_pose.weight": 0.5, "optim.lr": 1e-3})
    assert cfg.tasks.main.head_pose is not None and cfg.tasks.main.head_pose.weight == 0.5
    with pytest.raises(SpaceError, match="not searched keys optim.momentum"):
        space.trial_config({"optim.momentum": 0.5})


def test_extreme_outside_the_config_range(tmp_path):
    message = error(tmp_path, space=searched(**{"augmentation.magnitude": "uniform(0, 2)"}))
    assert "space.augmentation.magnitude" in message and "2" in message
    assert "less than or equal to 1" in message


def test_choice_value_the_config_refuses(tmp_path):
    message = error(tmp_path, space=searched(**{"augmentation.level": "choice(none, extreme)"}))
    assert "space.augmentation.level" in message and "'extreme'" in message


def test_float_range_on_integer_key(tmp_path):
    message = error(tmp_path, space=searched(**{"data.batch_size": "uniform(16, 64)"}))
    assert "space.data.batch_size" in message and "valid integer" in message


def test_pairs_of_extremes_are_checked(tmp_path):
    message = error(
        tmp_path,
        scheduler=None,
        space=searched(
            **{
                "schedule.epochs": "int(2, 8)",
                "schedule.warmup_epochs": "uniform(0.0, 3.0)",
            }
        ),
    )
    assert "schedule.epochs=2 together with schedule.warmup_epochs=3.0" in message
    assert "warmup_epochs" in message


def test_base_is_validated_and_resolved(tmp_path):
    message = error(tmp_path, base={"optim": {"lr": -1}})
    assert "base" in message and "optim.lr" in message
    (tmp_path / "train.yaml").write_text("schedule: {epochs: 4}\nmodel: {width: 16}\n")
    assert space_with(tmp_path, base="train.yaml").base_tree()["model"]["width"] == 16
    assert space_with(tmp_path, base="demo", scheduler=None).base_tree()["data"]["image_size"]
    message = error(tmp_path, base="nope")
    assert "base" in message and "'nope'" in message and "demo" in message


# ---- points, objectives, scheduler, resources --------------------------------------------------


def test_point_key_not_in_space(tmp_path):
    message = error(tmp_path, search={"points_to_evaluate": [{"optim.momentum": 0.9}]})
    assert "points_to_evaluate[0]" in message and "optim.momentum" in message
    assert "not searched" in message


def test_point_value_out_of_range(tmp_path):
    message = error(tmp_path, search={"points_to_evaluate": [{"optim.lr": 0.5}]})
    assert "points_to_evaluate[0]" in message and "optim.lr=0.5" in message
    assert "outside loguniform(1e-4, 1e-2)" in message
    message = error(tmp_path, search={"points_to_evaluate": [{"augmentation.level": "eval"}]})
    assert "augmentation.level='eval'" in message


def test_mode_must_match_metric(tmp_path):
    message = error(tmp_path, metric=["val/balanced_accuracy", "train/images_per_sec"])
    assert "mode" in message and "does not match" in message
    message = error(tmp_path, metric=["val/accuracy", "val/macro_f1"], mode=["max"])
    assert "mode" in message
    message = error(tmp_path, mode="maximise")
    assert "mode" in message and "'maximise'" in message


def test_test_metrics_are_refused(tmp_path):
    message = error(tmp_path, metric="test/accuracy")
    assert "metric" in message and "test/accuracy" in message and "last epoch" in message
    assert "reported metric key" in error(tmp_path, metric="accuracy")


def test_multi_objective_samplers(tmp_path):
    two = {"metric": ["val/balanced_accuracy", "train/images_per_sec"], "mode": ["max", "max"]}
    message = error(tmp_path, **two, search={"sampler": "cmaes"})
    assert "search.sampler" in message and "cmaes" in message and "nsga2" in message
    assert "nsga2 needs two metrics" in error(tmp_path, search={"sampler": "nsga2"})
    for sampler in ("tpe", "random", "nsga2"):
        space = space_with(tmp_path, **two, search={"sampler": sampler})
        assert space.metrics == two["metric"] and space.modes == ["max", "max"]
        assert ask(space, space.sampler()).params.keys() == space.space.keys()


def test_grace_period_above_max_epochs(tmp_path):
    message = error(tmp_path, scheduler={"max_epochs": 4, "grace_period": 5})
    assert "scheduler.grace_period" in message and "not below max_epochs" in message


def test_max_epochs_is_the_longest_trial(tmp_path):
    message = error(tmp_path, scheduler={"max_epochs": 3})
    assert "scheduler.max_epochs" in message and "longest trial runs 4" in message
    space = space_with(tmp_path, scheduler={"grace_period": 2})
    assert space.scheduler.max_epochs == 4
    space = space_with(
        tmp_path, scheduler={"grace_period": 2}, space=searched(**{"schedule.epochs": "int(3, 8)"})
    )
    assert space.scheduler.max_epochs == 8
    assert space_with(tmp_path, scheduler={"type": "none"}).scheduler is None
    assert space_with(tmp_path, scheduler=None).scheduler is None


def test_resources(tmp_path):
    space = space_with(
        tmp_path, resources={"workers_per_trial": 2, "cpus_per_worker": 0.5, "gpus_per_worker": 0.5}
    )
    assert space.resources.cpus_per_worker == 0.5
    message = error(tmp_path, resources={"gpus_per_worker": 1.5})
    assert "resources.gpus_per_worker" in message and "whole number" in message
    message = error(tmp_path, resources={"workers_per_trial": 0})
    assert "resources.workers_per_trial" in message
    base = {"schedule": {"epochs": 4}, "runtime": {"device": "cuda"}}
    assert "runtime.device is cuda" in error(tmp_path, base=base)
    # runtime.device: cpu written out with GPUs held is asked for (the cluster rehearsal's
    # GPU-less fake GPU nodes); the default, auto, on a GPU node without CUDA is refused at
    # the trial instead (trainables/runtime/device.py).
    cpu = {"schedule": {"epochs": 4}, "runtime": {"device": "cpu"}}
    held = space_with(tmp_path, base=cpu, resources={"gpus_per_worker": 1})
    assert held.resources.gpus_per_worker == 1


def test_wrong_types_name_the_key(tmp_path):
    message = error(tmp_path, num_samples="8")
    assert "num_samples" in message and "valid integer" in message
    assert "name" in error(tmp_path, name="has space")


def test_file_problems(tmp_path):
    with pytest.raises(SpaceError, match="no such search-space file"):
        load_space(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpaceError, match=r"bad.yaml: line \d+ not valid YAML"):
        load_space(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(SpaceError, match="bad.yaml: expected a mapping"):
        load_space(bad)


def test_unknown_shipped_name_lists_shipped_ones():
    with pytest.raises(SpaceError) as err:
        load_space("hmtl_affectnet7")
    message = str(err.value)
    assert "hmtl_affectnet7" in message
    assert all(name in message for name in shipped())


@pytest.mark.parametrize("value", ["fer best", "", "a/b", 3])
def test_register_model_name_is_checked(tmp_path, value):
    with pytest.raises(SpaceError, match=r"study\.yaml.*register_model") as err:
        load_space(str(write(tmp_path, {**VALID, "register_model": value})))
    assert "\n" not in str(err.value)
    named = load_space(str(write(tmp_path, {**VALID, "register_model": "hmtl-fer.best_1"})))
    assert named.register_model == "hmtl-fer.best_1"
