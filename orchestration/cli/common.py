"""What every `hmtl` command shares: the one-line failure, the user-error types, the
command groups (usage errors in one line; subcommands imported only when used).

This module imports click and nothing heavy: `hmtl --help` and tab completion load it.
"""

from __future__ import annotations

import importlib
import sys

import click


def fail(message: str) -> None:
    """Print `hmtl: error: <message>` on stderr and exit 2: bad input, never a traceback."""
    click.echo(f"hmtl: error: {message}", err=True)
    sys.exit(2)


def warn(message: str) -> None:
    """Print `hmtl: warning: <message>` on stderr."""
    click.echo(f"hmtl: warning: {message}", err=True)


def user_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean bad input (a config, a dataset, a checkpoint, a store)."""
    # Lazy: keeps torch (trainables.checkpoint) out of `hmtl --help` and the input checks.
    from hmtl.trainables.checkpoint import CheckpointError
    from hmtl.trainables.config import ConfigError
    from hmtl.trainables.data.prepared import DatasetError
    from hmtl.trainables.data.storage import StorageError

    return (ConfigError, DatasetError, CheckpointError, StorageError, FileNotFoundError)


class OneLineUsageError(click.ClickException):
    """A click usage error (bad option value, missing argument) shown the way every other
    bad input is: `hmtl: error: <command>: <problem>`, exit 2, no usage block. The command
    is named from its subcommand on (`hmtl: error: No such option: --x` for `hmtl` itself,
    `hmtl: error: hmtl sweep: ...` for a subcommand)."""

    exit_code = 2

    def __init__(self, err: click.UsageError) -> None:
        where = err.ctx.command_path + ": " if err.ctx and err.ctx.parent else ""
        super().__init__(where + err.format_message())

    def show(self, file=None) -> None:
        click.echo(f"hmtl: error: {self.format_message()}", err=True)


class OneLineGroup(click.Group):
    """A command group whose usage errors, its own or its subcommands', are one line.
    `hmtl` or `hmtl data` alone still prints the help."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as err:
            raise OneLineUsageError(err) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as err:
            raise OneLineUsageError(err) from None


class LazyGroup(OneLineGroup):
    """A group whose subcommands are imported when one is used, not for `--help`.

    `lazy` maps a command name to `(module:attribute, short help)`; the help list shows the
    short help without importing anything (tests/unit/orchestration/cli/test_instant.py
    checks it is the command's own)."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def resolve_command(self, ctx, args):
        # Help needs no environment check (the group's callback runs before the subcommand
        # parses its own --help); noted here, where the subcommand's arguments are seen.
        ctx.meta["hmtl.help"] = any(arg in ("--help", "-h") for arg in args)
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx) -> list[str]:
        return [*self.lazy, *(name for name in self.commands if name not in self.lazy)]

    def get_command(self, ctx, cmd_name):
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name][0].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx, formatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [
            (
                name,
                click.Command(name, help=self.lazy[name][1]).get_short_help_str(limit)
                if name in self.lazy
                else self.commands[name].get_short_help_str(limit),
            )
            for name in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


# MLflow's tracking stores by URI scheme (mlflow/tracking/_tracking_service/utils.py).
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def tracking_problem(uri: str | None, from_env: bool = False) -> str | None:
    """Why `--tracking-uri` (or MLFLOW_TRACKING_URI, `from_env`) names no MLflow store (None
    when it may): MLflow's own refusal comes as a traceback from the first trial's callback,
    after Ray has started."""
    if uri is None or uri.split("://", 1)[0].split("+", 1)[0] in TRACKING_SCHEMES:
        return None
    where = f"MLFLOW_TRACKING_URI={uri}" if from_env else f"--tracking-uri {uri}"
    return (
        f"{where}: not an MLflow tracking URI "
        "(give http://HOST:PORT of an MLflow server, or sqlite:///PATH)"
    )
