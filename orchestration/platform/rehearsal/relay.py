"""SSH ProxyCommand: `python relay.py HOST PORT` joins stdin/stdout to a TCP connection.

Run (by path, so nothing of hmtl is imported) inside the head's network namespace through
`nsenter`, it is how Ray's SSH runner, rsync and `ray dashboard` reach the head's sshd
(swaps.py: Ray's runner has no SSH port setting, ProxyCommand is its supported way).
"""

from __future__ import annotations

import os
import socket
import sys
import threading


def _pump(read, write) -> None:
    while True:
        data = read(65536)
        if not data:
            break
        write(data)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    conn = socket.create_connection((host, port))
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()

    def upstream() -> None:
        _pump(lambda n: os.read(stdin, n), conn.sendall)
        conn.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream, daemon=True).start()

    def write_all(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(stdout, view) :]

    _pump(conn.recv, write_all)


if __name__ == "__main__":
    main()
