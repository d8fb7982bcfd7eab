"""The head "machine" of the rehearsal: sshd in its own namespaces on this machine.

`unshare` gives the head its own PID namespace (cluster.yaml's `ray stop` sees only the
head's processes, never another Ray on this machine), its own network namespace (its own
127.0.0.1, so cluster.yaml's fixed ports are free) and its own mount namespace, in which
/home, the login user's home, /tmp and /run are folders of the rehearsal's temporary
folder. sshd listens on 127.0.0.1 there, on a free port, with a host key and an
authorized key made in that folder; ssh reaches it through `relay.py` run by `nsenter`
(auth.ssh_proxy_command). Stopping the head kills the namespace's first process, which
takes every process of the namespace with it: nothing the head started outlives it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
RELAY = Path(__file__).with_name("relay.py")
# Programs the head needs from this machine: a missing one skips the rehearsal.
NEEDED = ("unshare", "nsenter", "ip", "ssh", "ssh-keygen", "rsync")


def missing_tools() -> str | None:
    """Why the rehearsal cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "the rehearsal needs root (it makes Linux namespaces for the head)"
    absent = [tool for tool in NEEDED if shutil.which(tool) is None]
    if not Path(SSHD).exists():
        absent.append(SSHD)
    if absent:
        return f"not installed: {', '.join(absent)} (make ssh installs openssh-server, rsync)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Head:
    """A head node made of namespaces; `start()` it, `stop()` it."""

    def __init__(self, root: Path, port: int = 2222):
        self.root = root
        self.port = port  # inside the head's own network namespace: any port is free
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.home = Path(pwd.getpwuid(os.getuid()).pw_dir)
        self.fs = root / "head"  # what the head's /home, ~, /tmp and /run are
        self.ssh = root / "ssh"
        self.key = self.ssh / "id_ed25519"
        self.venv = self.fs / "venv"
        # The login user's home on the head is the image's user's home, /home/ray: Ray's
        # token path (~/.ray/auth_token) and ~/ray_bootstrap_config.yaml are where
        # cluster.yaml's container has them.
        self.user_home = self.fs / "home" / "ray"
        self.proc: subprocess.Popen | None = None

    # ------------------------------------------------------------------ the machine

    def prepare(self, env: dict[str, str], volumes: list[tuple[str, str]]) -> None:
        """Folders, keys, sshd's config, the head's Python and login environment."""
        for folder in ("home/ray", "tmp", "run"):
            (self.fs / folder).mkdir(parents=True, exist_ok=True)
        (self.fs / "tmp").chmod(0o1777)
        self.ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in ("id_ed25519", "host_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.ssh / name)],
                check=True,
            )
        shutil.copy(self.ssh / "id_ed25519.pub", self.ssh / "authorized_keys")
        (self.ssh / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.ssh / 'host_key'}",
                    f"AuthorizedKeysFile {self.ssh / 'authorized_keys'}",
                    "PidFile none",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "AllowTcpForwarding yes",
                    "MaxSessions 50",
                    "MaxStartups 50",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        # docker.head_run_options' --volume HOST:CONTAINER: the container path points at
        # the host path (both are under /home on the head).
        for host, container in volumes:
            link = self.fs / "home" / Path(container).relative_to("/home")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(host)
        self._make_python()
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        for name in (".bashrc", ".profile"):
            (self.user_home / name).write_text(exports)

    def _make_python(self) -> None:
        """The image's Python: a venv that sees the project's installed packages (not the
        project itself, which setup_commands install), with their command-line tools."""
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--without-pip", str(self.venv)], check=True)
        ours = Path(sys.prefix)
        site = next((ours / "lib").glob("python3*/site-packages"))
        target = next((self.venv / "lib").glob("python3*/site-packages"))
        (target / "image-packages.pth").write_text(f"{site}\n")
        shebang = f"#!{ours / 'bin' / 'python'}"
        for script in (ours / "bin").iterdir():
            if script.name == "hmtl" or (self.venv / "bin" / script.name).exists():
                continue
            try:
                text = script.read_text()
            except (UnicodeDecodeError, IsADirectoryError):
                continue
            if text.startswith(shebang):
                new = self.venv / "bin" / script.name
                new.write_text(f"#!{self.venv / 'bin' / 'python'}" + text[len(shebang) :])
                new.chmod(0o755)

    def start(self, timeout_s: float = 30) -> None:
        binds = [(self.fs / "home", "/home"), (self.user_home, str(self.home))]
        binds += [(self.fs / "tmp", "/tmp"), (self.fs / "run", "/run")]
        # The Python the venvs are made from (pyenv keeps it in the login home), the
        # project's .venv and the checkout stay visible where they live under a folder the
        # head replaces (a clone in /tmp, say): each is bound into the replacing folder
        # first, then carried along by --rbind.
        project = Path(__file__).resolve().parents[3]
        keep = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), project}
        for path in sorted(keep):
            for src, dst in list(binds):
                if path.is_relative_to(dst):
                    inside = Path(src) / path.relative_to(dst)
                    inside.mkdir(parents=True, exist_ok=True)
                    binds.insert(0, (path, str(inside)))
                    break
        mounts = " && ".join(
            f"mount --rbind {shlex.quote(str(src))} {shlex.quote(dst)}" for src, dst in binds
        )
        script = (
            f"ip link set lo up && {mounts} && mkdir -p /run/sshd && "
            f"exec {SSHD} -D -e -f {shlex.quote(str(self.ssh / 'sshd_config'))}"
        )
        log = open(self.root / "sshd.log", "wb")  # noqa: SIM115 (kept open by the child)
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--net", "--mount",
             "--propagation", "private", "sh", "-c", script],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout_s
        while self.run("true", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd did not start: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self) -> str:
        path = self.root / "sshd.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        """Kill the namespace's first process: the kernel kills all of the namespace."""
        if self.proc is None:
            return
        init = self._init_pid()
        for pid in (init, self.proc.pid):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        self.proc = None

    def _init_pid(self) -> int | None:
        """The host pid of the namespace's PID 1 (unshare's forked child)."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return None
        first = children.split()
        return int(first[0]) if first else None

    # ------------------------------------------------------------------ reaching it

    @property
    def proxy_command(self) -> str:
        target = self._init_pid() or (self.proc.pid if self.proc else 0)
        return f"nsenter --target {target} --net -- {sys.executable} {RELAY} 127.0.0.1 {self.port}"

    def ssh_options(self) -> list[str]:
        return [
            "-i", str(self.key),
            "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes",
            "-o", f"ProxyCommand={self.proxy_command}",
        ]  # fmt: skip

    def run(self, command: str, check: bool = True, timeout: float = 60):
        """Run `command` in a login shell on the head; the CompletedProcess (text)."""
        return subprocess.run(
            ["ssh", *self.ssh_options(), f"{self.user}@127.0.0.1", command],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def nsenter(self, args: list[str]) -> list[str]:
        """`args` run on this machine but inside the head's network namespace."""
        return ["nsenter", "--target", str(self._init_pid()), "--net", "--", *args]
