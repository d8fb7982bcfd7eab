"""What every `hmtl` command shares: the one-line failure and the user-error types."""

from __future__ import annotations

import sys

import click

from hmtl.trainables.checkpoint import CheckpointError
from hmtl.trainables.config import ConfigError
from hmtl.trainables.data.prepared import DatasetError
from hmtl.trainables.data.storage import StorageError

USER_ERRORS = (ConfigError, DatasetError, CheckpointError, StorageError, FileNotFoundError)


def fail(message: str) -> None:
    """Print `hmtl: error: <message>` on stderr and exit 2: bad input, never a traceback."""
    click.echo(f"hmtl: error: {message}", err=True)
    sys.exit(2)


class OneLineUsageError(click.ClickException):
    """A click usage error (bad option value, missing argument) shown the way every other
    bad input is: `hmtl: error: <command>: <problem>`, exit 2, no usage block."""

    exit_code = 2

    def __init__(self, err: click.UsageError) -> None:
        where = err.ctx.command_path + ": " if err.ctx else ""
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


# MLflow's tracking stores by URI scheme (mlflow/tracking/_tracking_service/utils.py).
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def tracking_problem(uri: str | None) -> str | None:
    """Why `--tracking-uri` names no MLflow store (None when it may): MLflow's own refusal
    comes as a traceback from the first trial's callback, after Ray has started."""
    if uri is None or uri.split("://", 1)[0].split("+", 1)[0] in TRACKING_SCHEMES:
        return None
    return (
        f"--tracking-uri {uri}: not an MLflow tracking URI "
        "(give http://HOST:PORT of an MLflow server, or sqlite:///PATH)"
    )
