"""What every `hmtl` command shares: the one-line failure and the user-error types."""

from __future__ import annotations

import sys

import click

from trainables.checkpoint import CheckpointError
from trainables.config import ConfigError
from trainables.data.prepared import DatasetError
from trainables.data.storage import StorageError

USER_ERRORS = (ConfigError, DatasetError, CheckpointError, StorageError, FileNotFoundError)


def fail(message: str) -> None:
    """Print `hmtl: error: <message>` on stderr and exit 2: bad input, never a traceback."""
    click.echo(f"hmtl: error: {message}", err=True)
    sys.exit(2)
