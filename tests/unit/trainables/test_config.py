import pytest
from click.testing import CliRunner

from hmtl.orchestration.cli.main import main
from hmtl.trainables.config import ConfigError, TrainConfig, build_config, load_config


def test_defaults_validate_and_flatten():
    cfg = TrainConfig()
    flat = cfg.flat()
    assert flat["optim.lr"] == cfg.optim.lr
    assert flat["tasks.main.expression.weight"] == 1.0


def test_unknown_key_names_key_and_valid_ones():
    with pytest.raises(ConfigError) as err:
        build_config({"optim": {"lrr": 0.1}})
    message = str(err.value)
    assert "optim.lrr" in message
    assert "lr" in message and "weight_decay" in message


def test_unknown_section_names_sections():
    with pytest.raises(ConfigError, match="unknown key 'optimiser'.*augmentation"):
        build_config({"optimiser": {}})


def test_wrong_type_names_field():
    with pytest.raises(ConfigError, match="schedule.epochs"):
        build_config({"schedule": {"epochs": "many"}})


def test_out_of_range_names_field():
    with pytest.raises(ConfigError, match="data.image_size"):
        build_config({"data": {"image_size": 300}})
    with pytest.raises(ConfigError, match="augmentation.magnitude"):
        build_config(overrides=["augmentation.magnitude=1.5"])


def test_warmup_must_fit_in_epochs():
    with pytest.raises(ConfigError, match="warmup_epochs"):
        build_config({"schedule": {"epochs": 2, "warmup_epochs": 2}})


def test_overrides_are_typed_yaml_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.01\nmodel:\n  backbone: resnet18\n")
    cfg = load_config(
        path,
        [
            "optim.lr=3e-4",
            "schedule.epochs=7",
            "model.pretrained=null",
            "augmentation.level=strong",
        ],
    )
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.schedule.epochs == 7
    assert cfg.model.backbone == "resnet18"
    assert cfg.augmentation.level == "strong"


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        build_config(overrides=["optim.lr"])


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml.*not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "optim.nope=1"], "unknown key 'optim.nope'"),
        (["--set", "schedule.epochs=0"], "schedule.epochs"),
    ],
)
def test_cli_bad_config_is_one_line_and_exit_2(tmp_path, args, needle):
    path = tmp_path / "c.yaml"
    path.write_text("schedule:\n  epochs: 1\n")
    result = CliRunner().invoke(main, ["train", str(path), *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_cli_finds_shipped_config_by_name():
    result = CliRunner().invoke(main, ["train", "demo", "--set", "optim.bogus=1"])
    assert result.exit_code == 2
    assert "demo.yaml" in result.output and "optim.bogus" in result.output


def test_build_config_leaves_the_callers_tree_alone():
    tree = {"schedule": {"epochs": 2}, "data": {"batch_size": 8}}
    cfg = build_config(tree, ["schedule.epochs=5", "data.batch_size=4"])
    assert (cfg.schedule.epochs, cfg.data.batch_size) == (5, 4)
    assert tree == {"schedule": {"epochs": 2}, "data": {"batch_size": 8}}
