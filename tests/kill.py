"""Killing a running `hmtl` command at a chosen moment, for the tests that resume after a kill.

`start` runs `python -m hmtl ...` in its own process group (its Ray driver, trial processes
it started itself and any child die with it); `kill_when` polls a condition and, once it
holds, SIGKILLs the whole group, as a crashed machine or an OOM kill would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest


def start(*args: str) -> subprocess.Popen:
    """`hmtl ARGS` as a subprocess in a new session, output discarded, Tune's old console."""
    return subprocess.Popen(
        [sys.executable, "-m", "hmtl", *args],
        env={**os.environ, "RAY_AIR_NEW_OUTPUT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_when(
    proc: subprocess.Popen,
    ready: Callable[[], object],
    what: str,
    timeout: float = 240,
    poll: float = 0.2,
):
    """SIGKILL `proc`'s process group as soon as `ready()` returns something truthy, and
    return that value; fail the test (naming `what`, the state never reached) on timeout or
    when the command ended on its own first."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        found = ready()
        if found:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return found
        time.sleep(poll)
    ended = proc.poll() is not None
    proc.kill()
    proc.wait()
    pytest.fail(f"{what}: {'the command ended first' if ended else f'not within {timeout:.0f} s'}")
