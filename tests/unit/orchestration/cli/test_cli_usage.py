"""Usage errors (a wrong option type, a missing argument, an unknown command) are one
`hmtl: error:` line naming the command, like every other bad input; help stays help."""

import pytest
from click.testing import CliRunner

from hmtl.orchestration.cli.main import main


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["sweep", "quickstart", "--num-samples", "abc"], "hmtl sweep: Invalid value"),
        (["sweep"], "hmtl sweep: Missing argument 'SPACE'"),
        (["data", "prepare", "nosuchformat", "x", "--out", "y"], "'nosuchformat' is not one"),
        (["submit", "quickstart"], "hmtl submit: Missing option '--address'"),
        (["data", "nosuch"], "hmtl data: No such command 'nosuch'"),
        (["nosuch"], "No such command 'nosuch'"),
    ],
)
def test_usage_errors_are_one_line(args, needle):
    result = CliRunner().invoke(main, args, prog_name="hmtl")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hmtl: error: ") and needle in lines[0]


@pytest.mark.parametrize("args", [[], ["data"], ["sweep", "--help"]])
def test_help_is_still_help(args):
    result = CliRunner().invoke(main, args, prog_name="hmtl")
    assert result.output.startswith("Usage: hmtl")
    assert "hmtl: error" not in result.output
