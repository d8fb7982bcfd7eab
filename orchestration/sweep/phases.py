"""Time stamps of a trial's phases inside its process, for benchmarks/startup_profile.py.

Off unless `HMTL_PHASES_DIR` names a folder (set before Ray starts, so trial processes
inherit it). Then every trial writes `<trial id>.json` there when it ends: when its
process started and finished importing the project, when the trial function was entered
and left, and when each `report` was entered and returned (a report blocks until the
driver has handled the result and asked for the next one), and the CPU seconds of the
trial's thread. Wall-clock times (`time.time`),
so they line up with the driver's on the same machine.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from hmtl.trainables.settings import settings, variable

PHASES_ENV = variable("phases_dir")  # HMTL_PHASES_DIR
IMPORTED = time.time()  # the trial function's module is imported: torch, Ray, the project
_trials_here = 0  # trials this process has run (0: a fresh process)


class TrialPhases:
    """Collects one trial's stamps; `save` writes them if `HMTL_PHASES_DIR` is set."""

    def __init__(self, trial_id: str) -> None:
        global _trials_here
        self.folder = settings().phases_dir
        self.trial_id = trial_id
        self.stamps: dict = {"entry": time.time(), "reports": [], "earlier_trials": _trials_here}
        self._cpu = time.thread_time()  # the trial's thread: what it computed, not waited
        _trials_here += 1

    def report(self, entered: float, metrics: dict) -> None:
        """One report: when it was entered, now (it returned) and the trainer's own clock."""
        self.stamps["reports"].append([entered, time.time(), metrics.get("time/train_s")])

    def save(self) -> None:
        if not self.folder:
            return
        self.stamps.update(
            exit=time.time(),
            thread_cpu=time.thread_time() - self._cpu,
            imported=IMPORTED,
            pid=os.getpid(),
            process_start=_started(),
        )
        Path(self.folder, f"{self.trial_id}.json").write_text(json.dumps(self.stamps))


def _started() -> float:
    """When this process started (wall clock), from /proc (Linux) and the boot time."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")
