"""Progress bars: drawn on a terminal, nothing at all anywhere else."""

import io

from hmtl.orchestration.platform.progress import bar, counted, enabled, maker


class Terminal(io.StringIO):
    """A stream that says it is a terminal (and remembers what was drawn on it)."""

    def isatty(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")  # as a real stream does
        return True


def test_only_a_terminal_gets_bars():
    assert enabled(Terminal())
    assert not enabled(io.StringIO())  # a file, a pipe, a Ray job's log, CI
    closed = Terminal()
    closed.close()
    assert not enabled(closed)
    assert not enabled(object())  # no isatty at all


def test_nothing_is_written_off_a_terminal():
    stream = io.StringIO()
    with bar(10, "prepare x", " rows", stream) as progress:
        progress.update(10)
    assert list(counted(range(3), lambda i: 1, 3, "embed y", " images", stream)) == [0, 1, 2]
    assert stream.getvalue() == ""
    assert maker("prepare x", " rows", stream) is None  # so the source is not even counted


def test_a_terminal_gets_counts_and_a_rate_in_the_unit():
    stream = Terminal()
    blocks = [[0] * 4, [0] * 4, [0] * 2]
    assert list(counted(blocks, len, 10, "embed pool", " images", stream)) == blocks
    drawn = stream.getvalue()
    assert "embed pool" in drawn and "10/10" in drawn and " images/s" in drawn
    assert drawn.endswith("\n")  # the finished bar stays, on its own line


def test_maker_makes_bars_with_the_counted_total():
    stream = Terminal()
    make = maker("prepare fer2013", " rows", stream)
    with make(7) as progress:
        progress.update(7)
        assert progress.total == 7
    assert "prepare fer2013" in stream.getvalue() and "7/7" in stream.getvalue()
