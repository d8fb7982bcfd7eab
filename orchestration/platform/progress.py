"""Progress bars for long work (`hmtl data prepare`, mining's embedding, distillation).

One rule for every command: a tqdm bar on stderr, drawn only when stderr is a terminal.
Piped into a file, a Ray job's log or CI, a bar's carriage returns are noise, so nothing is
drawn there; the commands print their own summary lines either way, on stdout, which a bar
on stderr never mixes into.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TextIO, TypeVar

if TYPE_CHECKING:
    from tqdm.std import tqdm

T = TypeVar("T")


def enabled(stream: TextIO | None = None) -> bool:
    """Whether a bar would be drawn on `stream` (default stderr): only on a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def bar(
    total: int | None = None, desc: str = "", unit: str = " it", stream: TextIO | None = None
) -> tqdm:
    """A tqdm bar on `stream` (default stderr), or a disabled one (it draws nothing) when the
    stream is not a terminal. `unit` reads after the counts and in the rate (" images" gives
    "1,234 images/s"). Use it as a context manager, or call `close()`."""
    # Lazy: tqdm's import (about 0.1 s, through importlib.metadata) stays out of `hmtl --help`.
    from tqdm.std import tqdm

    stream = sys.stderr if stream is None else stream
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=stream,
        disable=not enabled(stream),
        dynamic_ncols=True,
        mininterval=0.2,
    )


def counted(
    items: Iterable[T],
    size: Callable[[T], int],
    total: int | None = None,
    desc: str = "",
    unit: str = " it",
    stream: TextIO | None = None,
) -> Iterator[T]:
    """`items` unchanged, advancing a bar by `size(item)` after each one is consumed (a block
    of rows counts its rows, so the rate is rows per second, not blocks)."""
    with bar(total, desc, unit, stream) as progress:
        for item in items:
            yield item
            progress.update(size(item))


def maker(
    desc: str, unit: str = " it", stream: TextIO | None = None
) -> Callable[[int | None], tqdm] | None:
    """`total -> bar`, for work that counts its total only when a bar will be drawn (counting
    can mean reading the source once more); None when the stream is not a terminal."""
    if not enabled(stream):
        return None
    return lambda total: bar(total, desc, unit, stream)
