"""Each option is declared once: the options several commands share come from
orchestration/cli/options.py, and `hmtl mine` / `hmtl distill` take their defaults and bounds
from the study stages' option models, whose settings defaults are the trainables' models'."""

import ast
from pathlib import Path

import click
import pytest
from helpers import refused

from hmtl.orchestration.cli import options
from hmtl.orchestration.cli.distill import distill_command
from hmtl.orchestration.cli.main import main
from hmtl.orchestration.cli.mine import mine_command
from hmtl.orchestration.distill.options import DistillOptions
from hmtl.orchestration.mining.options import MineOptions
from hmtl.trainables.distill import DistillSettings
from hmtl.trainables.mining import MiningSettings

CLI = Path(options.__file__).parent
SHARED = (
    "--storage",
    "--tracking-uri",
    "--address",
    "--set",
    "--out",
    "--verbose",
    "--json",
    "--resume",
)


def declarations(path: Path) -> list[str]:
    """The option names each `click.option(...)` call in `path` declares."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("click.option", "option"):
            found += [a.value for a in node.args if isinstance(a, ast.Constant)]
    return found


def commands(group: click.Group, path: str = "hmtl"):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


def test_shared_options_are_declared_only_in_options_py():
    elsewhere = {
        f"{path.name}: {name}"
        for path in CLI.glob("*.py")
        if path.name != "options.py"
        for name in declarations(path)
        if name in SHARED
    }
    assert elsewhere == set()
    here = declarations(CLI / "options.py")
    assert all(here.count(name) == 1 for name in SHARED), here


@pytest.mark.parametrize("flag", SHARED)
def test_commands_still_take_the_shared_options(flag):
    """The scan above looks at real declarations: the commands do have these options."""
    having = [
        path
        for path, command in commands(main)
        if any(flag in p.opts for p in command.params if isinstance(p, click.Option))
    ]
    assert len(having) >= 2, having


def _defaults(command: click.Command) -> dict:
    return {p.name: p.default for p in command.params if isinstance(p, click.Option)}


def test_mine_defaults_are_the_models():
    cli = _defaults(mine_command)
    for name in ("per_class", "min_similarity", "min_confidence", "agree"):
        assert cli[name] == MineOptions.model_fields[name].default
        assert cli[name] == MiningSettings.model_fields[name].default
    for name in ("exclude_similarity", "prototypes_per_class"):
        assert cli[name] == MiningSettings.model_fields[name].default
    for name in ("engine", "actors"):
        assert cli[name] == MineOptions.model_fields[name].default


def test_mine_bounds_are_the_models():
    params = {p.name: p for p in mine_command.params}
    assert (params["min_similarity"].type.min, params["min_similarity"].type.max) == (-1.0, 1.0)
    assert params["exclude_similarity"].type.min_open
    assert (params["prototypes_per_class"].type.min, params["prototypes_per_class"].type.max) == (
        1,
        64,
    )
    assert list(params["engine"].type.choices) == ["ray", "local"]


def test_distill_defaults_are_the_models():
    cli = _defaults(distill_command)
    settings = DistillSettings(images_per_class=1)
    for name in ("iterations", "lr", "momentum", "real_batch", "width", "depth", "seed"):
        assert cli[name] == getattr(settings, name)
        assert cli[name] == DistillOptions.model_fields[name].default
    assert cli["augment"] == ",".join(settings.augment)
    assert DistillOptions(source="x", images_per_class=1).settings() == settings
    required = {p.name: p.required for p in distill_command.params}
    assert required["images_per_class"]
    assert DistillOptions.model_fields["images_per_class"].is_required()


def test_distill_bounds_are_the_models():
    params = {p.name: p for p in distill_command.params}
    assert params["lr"].type.min == 0 and params["lr"].type.min_open
    assert params["momentum"].type.max == 1 and params["momentum"].type.max_open
    assert (params["depth"].type.min, params["depth"].type.max) == (1, 4)
    assert params["seed"].type is click.INT


@pytest.mark.parametrize(
    "args, needle",
    [
        (["mine", "--model", "m", "--pool", "p", "--labelled", "l", "--per-class", "0"],
         "'--per-class': 0 is not in the range x>=1"),
        (["mine", "--model", "m", "--pool", "p", "--labelled", "l", "--min-similarity", "2"],
         "'--min-similarity': 2.0 is not in the range"),
        (["mine", "--model", "m", "--pool", "p", "--labelled", "l", "--engine", "nope"],
         "'--engine': 'nope' is not one of 'ray', 'local'"),
        (["distill", "d", "--images-per-class", "1", "--lr", "-1"],
         "'--lr': -1.0 is not in the range x>0"),
    ],
)  # fmt: skip
def test_values_outside_a_models_bounds_are_one_line_and_leave_nothing(tmp_path, args, needle):
    out = tmp_path / "out"
    refused([*args, "--out", str(out)], needle)
    assert not out.exists()
