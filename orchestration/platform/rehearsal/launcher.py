"""One rehearsal's world: the head, S3 on its loopback, the derived config, Ray's CLI.

`Rehearsal(cluster_yaml).open()` makes a temporary folder, starts the head (host.py) and a
moto S3 server in the head's network namespace, writes the config derived from
`cluster_yaml` (swaps.py) and a token; `ray(...)` runs Ray's own CLI on it from this
machine, the way a user runs it from a laptop; `tunnel(...)` forwards local ports to the
head's loopback over SSH. `close()` stops the head, which takes every process it started
along, and removes the folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hmtl.orchestration.platform.rehearsal import swaps
from hmtl.orchestration.platform.rehearsal.host import Head, free_port
from hmtl.orchestration.platform.rehearsal.timeline import TIMELINE, Timeline

S3_PORT = 9000  # on the head's own loopback
BUCKET = "hmtl-rehearsal"


class RehearsalError(RuntimeError):
    """A rehearsal step failed; the message ends with the tail of its log."""


class Rehearsal:
    def __init__(self, cluster_yaml: Path, project: Path, timeline: Timeline = TIMELINE):
        self.cluster_yaml, self.project, self.timeline = cluster_yaml, project, timeline
        self.root = Path(tempfile.mkdtemp(prefix="hmtl-rehearsal-", dir="/var/tmp"))
        self.head = Head(self.root)
        self.laptop = self.root / "laptop"  # HOME of the `ray` commands run from here
        self.token = secrets.token_hex(24)
        self.config_path = self.root / "cluster.yaml"
        self.s3_endpoint = f"http://127.0.0.1:{S3_PORT}"
        self.cluster = swaps.load(cluster_yaml)
        self._background: list[subprocess.Popen] = []

    @property
    def token_file(self) -> Path:
        return self.laptop / ".ray" / "auth_token"

    def open(self) -> Rehearsal:
        site = self._site(proxy_command="")
        with self.timeline.step("head machine (namespaces + sshd) up"):
            self.head.prepare(
                swaps.head_environment(self.cluster, site), swaps.head_volumes(self.cluster)
            )
            self.head.start()
        (self.laptop / ".ray").mkdir(parents=True)
        (self.laptop / "tmp").mkdir()
        self.token_file.write_text(self.token)
        self.token_file.chmod(0o600)
        config = swaps.launcher_config(self.cluster, self._site(self.head.proxy_command))
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        with self.timeline.step("moto S3 on the head's loopback"):
            self._start_s3()
        return self

    def _site(self, proxy_command: str) -> swaps.Site:
        return swaps.Site(
            user=self.head.user,
            key=self.head.key,
            proxy_command=proxy_command,
            bucket=BUCKET,
            s3_endpoint=self.s3_endpoint,
            head_venv=self.head.venv,
        )

    def _start_s3(self) -> None:
        moto = str(Path(sys.executable).with_name("moto_server"))
        self.background(self.head.nsenter([moto, "-H", "127.0.0.1", "-p", str(S3_PORT)]), "s3")
        create = (
            "import boto3, time\n"
            "for _ in range(150):\n"
            "    try:\n"
            f"        boto3.client('s3', endpoint_url='{self.s3_endpoint}', region_name="
            f"'us-east-1', aws_access_key_id='k', aws_secret_access_key='s')"
            f".create_bucket(Bucket='{BUCKET}'); break\n"
            "    except Exception: time.sleep(0.2)\n"
            "else: raise SystemExit('moto_server did not answer')\n"
        )
        subprocess.run(self.head.nsenter([sys.executable, "-c", create]), check=True, timeout=60)

    def background(self, args: list[str], name: str) -> subprocess.Popen:
        """Start `args` in its own process group (stopped by close()); log in the folder."""
        with open(self.root / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env=self.env(), cwd=self.project,
            )  # fmt: skip
        self._background.append(proc)
        return proc

    def env(self) -> dict[str, str]:
        """The environment of commands run from this machine (the user's laptop)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
        env.update(
            HOME=str(self.laptop),
            TMPDIR=str(self.laptop / "tmp"),
            RAY_USAGE_STATS_ENABLED="0",
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        )
        env.pop("HMTL_S3_ENDPOINT", None)
        return env

    def ray(self, *args: str, timeout: float = 600, config: Path | None = None) -> str:
        """`ray ARGS... CONFIG` from the project root; its output, or RehearsalError."""
        ray = str(Path(sys.executable).with_name("ray"))
        command = [ray, *args, str(config or self.config_path)]
        log = self.root / "ray-cli.log"
        with open(log, "a") as out:
            out.write(f"\n$ {' '.join(command)}\n")
        result = subprocess.run(
            command, cwd=self.project, env=self.env(), capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        with open(log, "a") as out:
            out.write(result.stdout + result.stderr)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr)[-3000:]
            raise RehearsalError(f"`ray {' '.join(args)}` failed ({result.returncode}):\n{tail}")
        return result.stdout + result.stderr

    def tunnel(self, *remote_ports: int) -> list[int]:
        """Forward a free local port to each of the head's loopback ports; the local ports."""
        local = [free_port() for _ in remote_ports]
        forwards = []
        for here, there in zip(local, remote_ports, strict=True):
            forwards += ["-L", f"127.0.0.1:{here}:127.0.0.1:{there}"]
        user = f"{self.head.user}@127.0.0.1"
        self.background(
            ["ssh", *self.head.ssh_options(), "-N", "-o", "ExitOnForwardFailure=yes",
             *forwards, user],
            "tunnel",
        )  # fmt: skip
        for port in local:
            _wait_port(port)
        return local

    def close(self) -> None:
        for proc in reversed(self._background):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.head.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _wait_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RehearsalError(f"nothing answers on 127.0.0.1:{port}") from None
            time.sleep(0.2)
