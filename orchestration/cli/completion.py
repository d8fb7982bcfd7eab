"""Tab completion of the names `hmtl` ships: search spaces, studies and training configs.

Click completes commands and options itself (docs/cli.md: `eval "$(_HMTL_COMPLETE=bash_source
hmtl)"`); these complete the arguments that take a shipped name or a file. Read from the
package folders with importlib.resources only, so completing stays instant.
"""

from __future__ import annotations

from importlib import resources

import click
from click.shell_completion import CompletionItem


def _names(package: str, *folder: str) -> list[str]:
    root = resources.files(package).joinpath(*folder)
    return sorted(f.name[: -len(".yaml")] for f in root.iterdir() if f.name.endswith(".yaml"))


def shipped_spaces() -> list[str]:
    return _names("hmtl.search_spaces")


def shipped_studies() -> list[str]:
    return _names("hmtl.search_spaces", "studies")


def shipped_configs() -> list[str]:
    return _names("hmtl.trainables", "configs")


def _completer(names):
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str):
        found = [CompletionItem(n, help="shipped") for n in names() if n.startswith(incomplete)]
        return [*found, CompletionItem(incomplete, type="file")]

    return complete


complete_space = _completer(shipped_spaces)
complete_study = _completer(shipped_studies)
complete_config = _completer(shipped_configs)
complete_space_or_study = _completer(lambda: sorted({*shipped_spaces(), *shipped_studies()}))
