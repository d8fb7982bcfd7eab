"""What happened when in a rehearsal: one line per event, printed at the end."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Timeline:
    start: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, what: str) -> None:
        self.events.append((time.monotonic() - self.start, what))

    @contextmanager
    def step(self, what: str):
        """Mark the start and the end of `what`, with how long it took."""
        began = time.monotonic()
        self.mark(f"{what} ...")
        try:
            yield
        except BaseException:
            self.mark(f"{what}: FAILED after {time.monotonic() - began:.1f} s")
            raise
        self.mark(f"{what}: done in {time.monotonic() - began:.1f} s")

    def lines(self) -> list[str]:
        return [f"{at:8.1f} s  {what}" for at, what in self.events]


# One timeline per process: the rehearsal's fixtures and checks all write to it.
TIMELINE = Timeline()
