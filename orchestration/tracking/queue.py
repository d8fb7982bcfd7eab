"""One worker thread that delivers a sweep's MLflow operations, so tracking never blocks
training.

Tune callbacks `put` named operations (orchestration/tracking/ops.py) and return at once.
The worker delivers them in order. When the server is away it keeps the newest operations
in memory (at most `max_backlog`), tries a cheap request with growing pauses, and once the
outage has lasted `budget_s` (or the backlog is full) moves them to a spool file beside the
sweep's state, `<storage>/sweeps/<sweep>/hmtl-tracking-spool.jsonl`, one JSON operation a
line. When the server answers again the spool is replayed first, then the backlog; every
operation is idempotent, so a spool replayed twice (a crash mid-replay, `hmtl resume`)
adds nothing. A worker starts by replaying what an earlier one left in the spool.

An operation the server rejects (a 4xx answer, a checkpoint file that is gone) is reported
in one line and skipped; when it came in a batch of metric rows, the batch is sent again a
row at a time, so only the bad row is lost.

MLflow's client retries a failing call for minutes; the worker sets it to fail fast
(`MLFLOW_HTTP_REQUEST_*`) because this loop does the waiting.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from hmtl.orchestration.platform.store import StorageError, Store
from hmtl.orchestration.tracking.ops import OPS, ROW_OPS, Delivery, log_rows
from hmtl.orchestration.tracking.probe import cause, transient
from hmtl.trainables.settings import settings, variable

BUDGET_ENV = variable("tracking_budget_s")  # HMTL_TRACKING_BUDGET_S, 300 s by default
SPOOL = "hmtl-tracking-spool.jsonl"
FAST_FAIL = {  # per request: no client-side retries, a short timeout
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
_STOP = object()


def budget_s() -> float:
    """How long an outage may last before queued operations go to the spool."""
    return settings().tracking_budget_s


def _is_row(op: dict[str, Any]) -> bool:
    return op["op"] in ROW_OPS


class Spool:
    """Operations not yet delivered, in order, as JSON lines in one file of a Store (object
    storage has no append, so adding rewrites the file; it is written during outages only)."""

    def __init__(self, store: Store, sweep: str) -> None:
        self.store = store
        self.name = f"sweeps/{sweep}/{SPOOL}"

    @property
    def where(self) -> str:
        return self.store.display(self.name)

    def load(self) -> list[dict[str, Any]]:
        try:
            text = self.store.read_text(self.name)
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def save(self, ops: list[dict[str, Any]]) -> None:
        """Make the file hold exactly `ops` (none: remove it)."""
        if ops:
            self.store.write_text(self.name, "".join(json.dumps(op) + "\n" for op in ops))
            return
        with contextlib.suppress(FileNotFoundError):
            self.store.fs.delete_file(self.store.path(self.name))


def spooled(store: Store, sweep: str) -> int:
    """How many tracking operations of a sweep wait in its spool."""
    try:
        return len(Spool(store, sweep).load())
    except (StorageError, ValueError):
        return 0


class TrackingQueue:
    """Delivers operations in order from one thread; `put` never waits on MLflow."""

    def __init__(
        self,
        make_delivery: Callable[[], Delivery],
        spool: Spool,
        server: str,
        budget: float | None = None,
        max_backlog: int = 5000,
        pause: tuple[float, float] = (0.5, 5.0),
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.make_delivery = make_delivery
        self.spool = spool
        self.server = server
        self.budget = budget_s() if budget is None else budget
        self.max_backlog = max_backlog
        self.pause = pause
        self.notify = notify or (lambda line: print(line, file=sys.stderr, flush=True))
        self.delivered = 0
        self.dropped = 0
        self._inbox: queue.Queue = queue.Queue(maxsize=max_backlog)
        self._backlog: deque[dict[str, Any]] = deque()
        self._replay: deque[dict[str, Any]] = deque()
        self._on_disk = False
        self._one_by_one = 0  # after a rejected batch: its rows again, each on its own
        self._batch = 0  # rows in the delivery being tried
        self._thread: threading.Thread | None = None

    def put(self, name: str, **args: Any) -> None:
        """Queue operation `name` (a key of OPS) with JSON-serialisable arguments."""
        if name not in OPS:
            raise KeyError(f"no tracking operation named {name!r}")
        self.start()
        self._inbox.put({"op": name, "args": json.loads(json.dumps(args))})

    def start(self) -> None:
        if self._thread is None:
            for key, value in FAST_FAIL.items():
                os.environ.setdefault(key, value)
            self._thread = threading.Thread(target=self._work, name="hmtl-tracking", daemon=True)
            self._thread.start()

    def close(self) -> int:
        """Deliver what is queued (waiting at most the budget if the server is away), spool
        the rest, stop the worker. Returns how many operations are left in the spool."""
        self.start()
        self._inbox.put(_STOP)
        self._thread.join()
        return len(self._backlog) + (len(self.spool.load()) if self._on_disk else 0)

    # The worker --------------------------------------------------------------------------

    def _work(self) -> None:
        delivery = None
        down_since: float | None = None
        pause = self.pause[0]
        stopping = False
        try:
            self._on_disk = bool(self.spool.load())
        except StorageError:
            self._on_disk = True  # unknown until storage answers: look again then
        while True:
            idle = not (self._on_disk or self._replay or self._backlog)
            stopping |= self._take(block=idle and not stopping, wait=None)
            if not (self._on_disk or self._replay or self._backlog):
                if stopping:
                    return
                continue
            self._batch = 0
            try:
                delivery = delivery or self.make_delivery()
                if down_since is not None:
                    delivery.client.search_experiments(max_results=1)  # a cheap probe
                    self._came_back(down_since)
                    down_since, pause = None, self.pause[0]
                self._deliver_next(delivery)
            except Exception as err:  # classified below, never raised
                if not transient(err):
                    if self._batch > 1:  # one row of the batch is bad: find it, keep the rest
                        self._one_by_one = self._batch
                    else:
                        self._drop(err)
                    continue
                if delivery is not None:
                    delivery.forget()
                if down_since is None:
                    down_since = time.monotonic()
                    self.notify(
                        f"hmtl: MLflow at {self.server} is unreachable ({cause(err)}); "
                        f"training goes on, tracking is queued (spooled to {self.spool.where} "
                        f"if it lasts over {self.budget:.0f} s)"
                    )
                self._park()
                outage = time.monotonic() - down_since
                if outage >= self.budget or len(self._backlog) >= self.max_backlog:
                    self._spill()
                    if stopping and outage >= self.budget:
                        return  # the sweep is over and the budget spent: all is spooled
                if self._take(block=True, wait=pause) and not stopping:
                    stopping = True
                    self.notify(
                        f"hmtl: the sweep is over; waiting up to {self.budget:.0f} s in all for "
                        f"MLflow at {self.server} before spooling what is left"
                    )
                pause = min(pause * 2, self.pause[1])

    def _deliver_next(self, delivery: Delivery) -> None:
        if self._on_disk and not self._replay:
            self._replay.extend(self.spool.load())
            self._on_disk = bool(self._replay)
        if not (self._replay or self._backlog):
            return
        source = self._replay or self._backlog
        most = 1 if self._one_by_one else 500
        rows = list(itertools.islice(itertools.takewhile(_is_row, source), most))
        self._batch = len(rows)
        if rows:
            log_rows(delivery, rows)  # idempotent: a batch tried again adds nothing twice
        else:
            delivery.apply(source[0]["op"], source[0]["args"])
        for _ in rows or [None]:
            self._advance()
            self.delivered += 1

    def _advance(self) -> dict[str, Any]:
        """Take the head operation off (the spool's first); remove the spool once replayed."""
        op = (self._replay or self._backlog).popleft()
        self._one_by_one = max(self._one_by_one - 1, 0)
        if self._on_disk and not self._replay:
            self.spool.save([])
            self._on_disk = False
        return op

    def _take(self, block: bool, wait: float | None) -> bool:
        """Move what arrived into the backlog (waiting up to `wait` s for the first one if
        `block`); True once the stop mark came."""
        stop = False
        try:
            item = self._inbox.get(timeout=wait) if block else self._inbox.get_nowait()
            while True:
                if item is _STOP:
                    stop = True
                else:
                    self._backlog.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return stop

    def _park(self) -> None:
        """A replay cut short: what is left of it is on disk already, so free the memory."""
        if self._replay:
            self.spool.save(list(self._replay))
            self._replay.clear()

    def _spill(self) -> None:
        if not self._backlog:
            return
        ops = (self.spool.load() if self._on_disk else []) + list(self._backlog)
        try:
            self.spool.save(ops)
        except StorageError as err:
            self.notify(f"hmtl: could not write the tracking spool ({err}); keeping it in memory")
            return
        if not self._on_disk:
            self.notify(
                f"hmtl: MLflow at {self.server} still unreachable after {self.budget:.0f} s: "
                f"tracking spooled to {self.spool.where}, replayed when it is back"
            )
        self._backlog.clear()
        self._on_disk = True

    def _came_back(self, since: float) -> None:
        waiting = len(self._backlog) + (len(self.spool.load()) if self._on_disk else 0)
        self.notify(
            f"hmtl: MLflow at {self.server} is reachable again after "
            f"{time.monotonic() - since:.0f} s; delivering {waiting} queued tracking calls"
        )

    def _drop(self, err: Exception) -> None:
        """An operation the server rejected, or one whose input is gone (a checkpoint file):
        retrying cannot help, so say so and go on."""
        op = self._advance() if self._replay or self._backlog else {"op": "?"}
        self.dropped += 1
        if hasattr(err, "get_http_status_code"):  # an MlflowException: the server's answer
            self.notify(f"hmtl: MLflow at {self.server} rejected {op['op']}: {cause(err)}")
        else:
            self.notify(f"hmtl: could not track {op['op']}, skipped: {cause(err)}")
