"""Every command the README and docs show can be typed as written.

Each `hmtl ...` line of a fenced shell block (```sh, README.md and docs/*.md; a trailing
backslash continues it) is parsed by the real command line, the way `hmtl` parses it before
running: the command exists, every option exists and takes a value of its type, every
required option and argument is there (an `export NAME=value` line of the same file counts,
as it would in the reader's shell). A usage synopsis (a line with `[--option ...]`) is
checked for its command and option names only. A line ending in `--help` is run for real
and must exit 0. A
`make TARGET` line names a target of the Makefile. Runs of the `--smoke` lines themselves
belong to the integration tier (the shipped spaces and studies are each run there in smoke
mode), so they are parsed here, not run.
"""

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hmtl.orchestration.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL = {"sh", "bash", "console", "shell"}


def shell_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, command) for each command line of the file's fenced shell blocks."""
    found, block, pending, start = [], None, "", 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = FENCE.match(line.strip())
        if fence:
            block = None if block is not None else fence.group(1)
            continue
        if block is None or block not in SHELL:
            continue
        text = line.strip()
        if text.startswith("$ "):
            text = text[2:]
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        found.append((start, pending + text))
        pending = ""
    return found


def commands(prefix: str) -> list[tuple[str, str]]:
    rows = []
    for path in DOCS:
        for number, text in shell_lines(path):
            head = text.split()[:3]
            if not head or not (
                head[0].endswith("hmtl")
                or head[0] == "make"
                or head[:3] == ["python", "-m", "hmtl"]
            ):
                continue
            words = shlex.split(text, comments=True)
            if words and words[0].endswith("/hmtl"):
                words[0] = "hmtl"
            if words[:2] == ["python", "-m"] and words[2:3] == ["hmtl"]:
                words = words[2:]
            if words and words[0] == prefix:
                rows.append((f"{path.relative_to(ROOT)}:{number}", words))
    return rows


HMTL = commands("hmtl")
MAKE = commands("make")


def parse(words: list[str]) -> None:
    """Parse `hmtl ...` as the command line does, down to the last subcommand; no callback."""
    args = words[1:]
    command: click.Command = main
    ctx = command.make_context("hmtl", list(args), resilient_parsing=False)
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=False)


def test_the_docs_show_commands():
    assert len(HMTL) >= 20 and MAKE, (len(HMTL), len(MAKE))


def exports(where: str) -> dict[str, str]:
    path = ROOT / where.partition(":")[0]
    return dict(re.findall(r"^\s*export (\w+)=(\S+)", path.read_text(), re.MULTILINE))


def check_synopsis(where: str, words: list[str]) -> None:
    """`hmtl CMD ARG [--option X] ...`: the command path and every option named exist."""
    command: click.Command = main
    for word in words[1:]:
        if not isinstance(command, click.Group) or word.startswith(("-", "[")):
            break
        command = command.get_command(click.Context(command), word)
        assert command is not None, f"{where}: {shlex.join(words)}: no command {word!r}"
    names = {name for param in command.params for name in param.opts + param.secondary_opts}
    for word in words:
        option = word.strip("[]").split("=")[0]
        if option.startswith("--"):
            assert option in names, f"{where}: {shlex.join(words)}: no option {option}"


@pytest.mark.parametrize("where, words", HMTL, ids=[where for where, _ in HMTL])
def test_each_hmtl_command_parses(where, words, monkeypatch):
    for name, value in exports(where).items():
        monkeypatch.setenv(name, value)
    if any(word.startswith("[") for word in words):
        check_synopsis(where, words)
        return
    if words[-1] in ("--help", "-h"):
        result = CliRunner().invoke(main, words[1:])
        assert result.exit_code == 0, f"{where}: {shlex.join(words)}\n{result.output}"
        return
    try:
        parse(words)
    except click.exceptions.Exit:
        pass  # --version and the like end parsing on purpose
    except click.ClickException as err:
        pytest.fail(f"{where}: {shlex.join(words)}: {err.format_message()}")


def test_each_make_target_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w.-]+):", makefile, re.MULTILINE))
    for where, words in MAKE:
        for target in words[1:]:
            if "=" not in target and not target.startswith("-"):
                assert target in targets, f"{where}: make {target}: no such target"
