"""`hmtl sweep` refusals that happen before Ray is imported or started."""

import pytest
from click.testing import CliRunner

from hmtl.orchestration.cli.main import main


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["quickstart", "--name", "bad name!"], "--name 'bad name!'"),
        (["quickstart", "--storage", "s3://bucket/x"], "needs --tracking-uri"),
        (["no_such_space"], "no_such_space"),
    ],
)
def test_sweep_refuses_bad_input_in_one_line(tmp_path, args, needle):
    result = CliRunner().invoke(main, ["sweep", *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
