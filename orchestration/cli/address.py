"""`--address` (or RAY_ADDRESS), read the same way by every command.

A cluster is named either by its Ray address (`auto`, HOST:PORT of its GCS, or a Ray Client
`ray://HOST:PORT`) or by its dashboard's URL (`http(s)://HOST:PORT`, the jobs API). The form
is checked locally, before anything is imported or sent. Then:

- commands that run their driver here and join the cluster (`sweep`, `resume`, `study`,
  `mine`) need a Ray address: a dashboard URL is refused with the command that runs the
  work on that cluster instead (`hmtl submit`);
- the jobs commands (`submit`, `logs`, `stop`) need the dashboard URL: a Ray address is
  converted as Ray's own `ray job` does (ray.dashboard.utils.get_address_for_submission_client:
  the GCS is asked where its dashboard is; a Ray Client address is asked through a client).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from hmtl.orchestration.cli.common import fail
from hmtl.orchestration.cli.options import ADDRESS_ENV

PROBE_TIMEOUT_S = 3
FORMS = (
    "give auto, HOST:PORT or ray://HOST:PORT (a Ray cluster) or http://HOST:PORT (its dashboard)"
)


@dataclass(frozen=True)
class Address:
    text: str
    dashboard: bool
    """An http(s):// dashboard URL (else a Ray address)."""
    where: str
    """How the user gave it, for messages: `--address X` or `RAY_ADDRESS=X`."""


def named(text: str, from_env: bool) -> str:
    return f"{ADDRESS_ENV}={text}" if from_env else f"--address {text}"


def address_problem(text: str) -> str | None:
    """Why `text` is no Ray address and no dashboard URL (None when it is one)."""
    text = text.strip()
    if text == "auto":
        return None
    if text.startswith(("http://", "https://")):
        parts = urlsplit(text.rstrip("/"))
        try:
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError:
            return FORMS
        return None if parts.hostname and parts.path in ("", "/") else FORMS
    host, _, port = text.removeprefix("ray://").rpartition(":")
    if host and "/" not in host and "://" not in host and port.isdigit():
        return None if 0 < int(port) < 65536 else FORMS
    return FORMS


def parse_address(text: str | None, from_env: bool = False) -> Address | None:
    """The address as given (None when none was), or exit 2 with one line."""
    if text is None or not text.strip():
        return None
    where = named(text, from_env)
    problem = address_problem(text)
    if problem:
        fail(f"{where}: {problem}")
    text = text.strip()
    return Address(text.rstrip("/"), text.startswith(("http://", "https://")), where)


def ray_address(address: Address | None, command: str) -> str | None:
    """The Ray address a driver here joins (None: local Ray), or exit 2 for a dashboard URL."""
    if address is None:
        return None
    if address.dashboard:
        fail(
            f"{address.where}: a dashboard URL, but `hmtl {command}` runs its driver here and "
            f"joins a cluster by its Ray address (auto, HOST:PORT); to run it on that cluster "
            f"as a Ray job: hmtl submit ... --address {address.text}"
        )
    return address.text


def dashboard_url(address: Address) -> str:
    """The jobs API URL of the cluster, converted from a Ray address as `ray job` does (this
    asks the cluster, so it comes after every local check); exit 2 when it cannot be."""
    if address.dashboard:
        return address.text
    if address.text != "auto" and not address.text.startswith("ray://"):
        # Ray waits about 40 s for a GCS that is not there; a refused port is known at once.
        host, _, port = address.text.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
        except OSError as err:
            fail(f"{address.where}: nothing answers there ({err.strerror or err})")
    # Lazy: keeps ray out of `hmtl --help` and the input checks.
    from ray.dashboard.utils import (
        ray_address_to_api_server_url,
        ray_client_address_to_api_server_url,
    )

    # Lazy: keeps ray out of `hmtl --help` and the input checks.
    from hmtl.orchestration.platform.cluster import joining

    try:
        if address.text.startswith("ray://"):
            return ray_client_address_to_api_server_url(address.text)
        with joining(address.text):
            return ray_address_to_api_server_url(address.text)
    except Exception as err:  # Ray raises ConnectionError, ValueError, RuntimeError here
        why = (str(err).strip().splitlines() or [type(err).__name__])[0]
        fail(f"{address.where}: no Ray dashboard found through it ({why})")
    raise AssertionError("unreachable")
