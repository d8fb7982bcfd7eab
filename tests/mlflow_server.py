"""A real `mlflow server` on 127.0.0.1 that tests and benchmarks stop and start again on the
same port (SQLite runs and local artifacts survive the restart), to stage an outage.

Imported as `from mlflow_server import MlflowServer` (tests/ is on `sys.path`, see helpers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from ray.tune import Callback

from hmtl.orchestration.tracking.probe import create_local_store


class MlflowServer:
    def __init__(
        self, folder: Path, artifacts: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        """Runs in SQLite under `folder`; artifacts in `artifacts` (default: the folder's
        artifacts/); `env` adds to the server's environment."""
        self.artifacts = artifacts or (Path(folder) / "artifacts").as_uri()
        self.env = dict(env or {})
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.folder / "server.log"
        self.proc: subprocess.Popen | None = None
        self.startup_s = 0.0
        """How long the last start took (the outage starts the next one that much early)."""

    def start(self, timeout: float = 120) -> None:
        """Start the server and wait until it answers its health check. The database schema
        is created first, in this process, so that every start takes about as long."""
        database = f"sqlite:///{self.folder / 'mlflow.db'}"
        create_local_store(database)  # a copy of the cached empty database, if any
        command = [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            database,
            "--artifacts-destination",
            self.artifacts,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        begun = time.monotonic()
        with open(self.log, "ab") as out:
            # Its own process group: the CLI runs uvicorn and a job runner as children.
            # Without the job runner (GenAI jobs, not needed here): its executors start
            # their own sessions, which a stop of the group would not reach.
            env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.env}
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        deadline = begun + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1).close()
                self.startup_s = time.monotonic() - begun
                return
            except OSError as err:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"mlflow server did not start: {self.log.read_text()[-2000:]}"
                    ) from err
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server; its port refuses connections until `start`."""
        if self.proc is None:
            return
        group = self.proc.pid  # the group this server leads (start_new_session)
        os.killpg(group, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # children still shutting down
            os.killpg(group, signal.SIGKILL)
        self.proc = None

    def outage(self, seconds: float) -> tuple[float, float]:
        """Stop the server, and start it again so that it answers about `seconds` after it
        stopped: the new process is launched 3/4 of the last start-up time early (it refuses
        connections until it is ready; start-up times vary on a busy machine). Returns the
        monotonic times at which it stopped answering and answered again."""
        down = time.monotonic()  # it stops answering as soon as it is told to stop
        self.stop()
        time.sleep(max(0.0, seconds - 0.75 * self.startup_s - (time.monotonic() - down)))
        self.start()
        return down, time.monotonic()


class OutageAtFirstResult(Callback):
    """A Tune callback that takes `server` away for `seconds` (in a thread) when the sweep's
    first epoch result arrives; `seconds=None` leaves it stopped, `server=None` only notes
    when training ended."""

    def __init__(
        self,
        server: MlflowServer | None,
        seconds: float | None,
    ) -> None:
        self.server, self.seconds = server, seconds
        self.thread: threading.Thread | None = None
        self.window: tuple[float, float] | None = None
        self.trained: float | None = None
        """When the last trial finished training (monotonic): tracking may still be busy."""
        self.results: list[float] = []
        """When each epoch result reached the driver (monotonic)."""

    def __getstate__(self) -> dict:
        return {}  # Tune pickles callbacks with the experiment; a server process does not

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.append(time.monotonic())
        if self.thread is None and self.server is not None:
            self.thread = threading.Thread(target=self._outage, daemon=True)
            self.thread.start()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.trained = time.monotonic()

    def _outage(self) -> None:
        if self.seconds is None:
            self.server.stop()
            return
        self.window = self.server.outage(self.seconds)


def epochs_lasting(folder: Path, seconds: float) -> int:
    """How many epochs of `tiny_space` make a trial train for about `seconds` on this
    machine, from three epochs timed in this process after one that draws the data: a
    sweep that must outlast an outage is sized by time, not by a count that only fits one
    machine's speed (trials in Ray also save checkpoints, so they take somewhat longer)."""
    from helpers import tiny_space

    from hmtl.trainables.session import LocalSession
    from hmtl.trainables.train import train

    params = {"optim.lr": 1e-3, "tasks.loss_weights.rotation": 0.5}
    for epochs in (1, 3):
        cfg = tiny_space(folder, name="clock", epochs=epochs).trial_config(params)
        start = time.monotonic()
        train(cfg, LocalSession(Path(folder) / f"clock-{epochs}", log=None))
    return max(10, min(300, round(seconds / ((time.monotonic() - start) / 3))))
