"""The command line starts instantly: `hmtl --help`, `python -m hmtl` and every
`hmtl CMD --help` import neither torch nor Ray nor MLflow; `--version` names the commit; the
help list is each command's own; shipped names complete."""

import inspect
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from hmtl.orchestration.cli.main import COMMANDS, main

HEAVY = ("torch", "ray", "mlflow")

EVERY_HELP = f"""
import json, sys
HEAVY = {HEAVY!r}
from hmtl.orchestration.cli.main import COMMANDS, main
runs = [["--help"], ["data", "prepare", "--help"], ["data", "inspect", "--help"]]
runs += [[name, "--help"] for name in COMMANDS]
for args in runs:
    try:
        main(args, prog_name="hmtl")
    except SystemExit as end:
        assert end.code in (0, None), (args, end.code)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)))
"""


def test_every_help_imports_no_torch_ray_or_mlflow():
    done = subprocess.run(
        [sys.executable, "-c", EVERY_HELP], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_python_m_hmtl_is_the_command_and_imports_nothing_heavy():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "hmtl", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.startswith("Usage: hmtl")
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert imported.isdisjoint(HEAVY)


def test_version_names_the_version_and_the_commit():
    result = CliRunner().invoke(main, ["--version"], prog_name="hmtl")
    assert result.exit_code == 0
    assert result.output.startswith("hmtl 0.") and "(commit " in result.output


@pytest.mark.parametrize("args", [["--nope"], ["sweep", "--nope"], ["nosuch"]])
def test_an_unknown_option_is_one_line_without_a_doubled_prefix(args):
    result = CliRunner().invoke(main, args, prog_name="hmtl")
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("hmtl: error: ") and "hmtl: error: hmtl:" not in line


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_help_list_is_each_commands_own_first_paragraph(name):
    command = main.get_command(click.Context(main), name)
    first = inspect.cleandoc(command.help).split("\n\n")[0].replace("\n", " ")
    assert COMMANDS[name][1] == first


def complete(words: str) -> list[str]:
    env = {"_HMTL_COMPLETE": "bash_complete", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    result = CliRunner().invoke(main, [], prog_name="hmtl", env=env)
    return [line.split(",", 1)[1] for line in result.output.splitlines() if "," in line]


def test_shipped_spaces_studies_and_configs_complete():
    assert "quickstart" in complete("hmtl sweep quick")
    assert "quickstart_study" in complete("hmtl study quick")
    assert "demo" in complete("hmtl train de")
    assert {"sweep", "study", "status"} <= set(complete("hmtl st") + complete("hmtl sw"))
