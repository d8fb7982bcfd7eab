"""Where a command's output goes: human text on stdout, or with `--json` one JSON object on
stdout and every human line (Ray's progress table too) on stderr. docs/cli.md holds the
schemas; each object carries `"schema": "hmtl.<kind>/1"`."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import click


class Output:
    """One command's output channel, JSON or human."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def echo(self, text: str = "", nl: bool = True) -> None:
        """A human line: stdout, or stderr when the summary is JSON."""
        click.echo(text, nl=nl, err=self.as_json)

    @contextlib.contextmanager
    def human(self) -> Iterator[None]:
        """While work prints (Ray's progress table, log lines): to stderr when JSON."""
        if not self.as_json:
            yield
            return
        with contextlib.redirect_stdout(sys.stderr):
            yield

    def result(self, kind: str, payload: dict[str, Any]) -> None:
        """The JSON summary, one line on stdout (nothing without --json)."""
        if self.as_json:
            click.echo(json.dumps({"schema": f"hmtl.{kind}/1", **payload}, default=str))
