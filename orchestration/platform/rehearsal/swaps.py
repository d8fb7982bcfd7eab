"""The rehearsal's config, derived from cluster.yaml when the rehearsal runs, and its swaps.

Everything `ray up` runs comes from cluster.yaml as it is on disk: file_mounts,
rsync_exclude/rsync_filter, initialization_commands, setup_commands, head_start_ray_commands,
worker_start_ray_commands. Only what cannot exist on this machine is swapped, and every swap
is one entry of `SWAPS`, with its reason; `launcher_config` and `head_environment` make
exactly those swaps and nothing else (tests/unit/orchestration/platform/rehearsal checks
that every other key comes through unchanged).
"""

from __future__ import annotations

import copy
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUCKET_PLACEHOLDER = "YOUR-BUCKET"
# The head's own CPUs in the `ray up` part: no worker node comes up over SSH there, so the
# smoke sweep's trials, which would run on a gpu_1x node, run on the head.
HEAD_TRIAL_CPUS = 2


@dataclass(frozen=True)
class Swap:
    what: str
    becomes: str
    why: str


SWAPS: tuple[Swap, ...] = (
    Swap(
        "provider: aws (EC2 instances)",
        "Ray's `local` provider, head_ip 127.0.0.1, no worker_ips",
        "no AWS here; the local provider is Ray's own launcher path over SSH",
    ),
    Swap(
        "the head VM",
        "sshd (Debian's openssh-server) in its own PID, mount and network namespaces",
        "cluster.yaml's `ray stop` stops every Ray process it can see: in its own PID "
        "namespace it sees only the head's; its own loopback keeps the fixed ports (6379, "
        "8076, 8265, 5000) of cluster.yaml from colliding with other Ray instances here",
    ),
    Swap(
        "auth: ssh_user ubuntu, EC2 key pair",
        "the current user, an ed25519 key made in the rehearsal's temporary folder, "
        "auth.ssh_proxy_command entering the head's network namespace",
        "Ray's SSH runner has no port setting; ProxyCommand (auth.ssh_proxy_command) is its "
        "supported way to reach an sshd that is not on port 22 of the node IP",
    ),
    Swap(
        "docker: rayproject/ray:2.60.0-py311-cu128",
        "no container: commands run in the head's shell; docker.run_options' --env become "
        "the head's environment, head_run_options' --volume a symlink; --ulimit is dropped",
        "no image registry is reachable here (and no Docker daemon)",
    ),
    Swap(
        "the image's Python with Ray",
        "a virtual environment over the project's .venv packages, pip offline "
        "(PIP_NO_INDEX, no build isolation)",
        "no package index is reachable; setup_commands' pip install then installs only the "
        "project, as on the image, where everything else is already there",
    ),
    Swap(
        "available_node_types (head, gpu_1x, gpu_4x)",
        "the local provider's own node type; the head's resources plus "
        f"{HEAD_TRIAL_CPUS} CPUs set as RAY_OVERRIDE_RESOURCES in the head's environment; "
        "the worker types go to Ray's fake multi-node autoscaler (autoscaling.py)",
        "the local provider refuses node types and passes no resources; no GPU node comes "
        "up over SSH, so the `ray up` part runs the smoke sweep's trials on the head",
    ),
    Swap(
        "GPU worker nodes launched on EC2 by the autoscaler",
        "Ray's fake multi-node provider (loaded as an `external` provider) launching "
        "local `ray start` nodes with each type's resources and labels, on the head machine",
        "no EC2 and no GPU here; the autoscaler deciding when to launch and remove nodes is "
        "Ray's real one, as v1 (`ray up` clusters run v2: under the fake provider v2 needs "
        "a testing hook for the head's node id, with which the head timed out starting). "
        "The `fake_multinode` type reads a defaults file (example.yaml) that Ray 2.60's "
        "wheel does not ship; the `external` type loads the same class without it, and "
        "provider.use_node_id_as_ip (set in that file) tells the nodes on 127.0.0.1 apart",
    ),
    Swap(
        "setup_commands' `pip install -e` of the project on the fake GPU nodes",
        "the project's own editable install made visible to the fake cluster head's Python "
        "(a .pth file, autoscaling.py), which every fake node's workers run",
        "the fake nodes are started by the autoscaler inside the head, not over SSH, so no "
        "setup command runs on them; the `ray up` part runs the real pip install",
    ),
    Swap(
        "the trials' runtime.device (auto: CUDA where the node has it) on GPU nodes",
        "runtime.device: cpu in the sweeps the fake autoscaler's nodes run",
        "the fake nodes advertise GPUs they do not have; with auto (or cuda) a trial that "
        "holds a GPU and finds no CUDA fails in one line naming its node, as it should on "
        "a broken node of a real cluster",
    ),
    Swap(
        "idle_timeout_minutes: 10",
        "0.25 (15 s), in the fake autoscaler's config only",
        "scale-down is seen in seconds instead of minutes",
    ),
    Swap(
        "the head's 8 vCPUs (m6i.2xlarge)",
        "this machine's 2 cores: MLFLOW_WORKERS=1 in the head's environment (the MLflow "
        "server's own setting; the command in cluster.yaml is unchanged)",
        "four MLflow workers importing at once on 2 busy cores took over 3 minutes to answer",
    ),
    Swap(
        f"s3://{BUCKET_PLACEHOLDER}, the instance profiles",
        "a bucket on a moto_server on the head's loopback, fake AWS keys in the head's "
        "environment, HMTL_S3_ENDPOINT and MLFLOW_S3_ENDPOINT_URL pointing at it",
        "no AWS; moto is a real S3 HTTP endpoint",
    ),
    Swap(
        "/home/ubuntu, /home/ray, the login user's home, /tmp on the head",
        "folders of the rehearsal's temporary folder, bind-mounted there in the head's "
        "mount namespace; the login user's home is /home/ray, as the image's user's is",
        "nothing outside the temporary folder is written; the paths in cluster.yaml stay "
        "(~/.ray/auth_token and ~/ray_bootstrap_config.yaml are where the container has them)",
    ),
    Swap(
        "~/.ray/auth_token on your machine",
        "a token file in a temporary HOME for the `ray` commands run from this machine",
        "the user's own token and ~/.ray are never touched",
    ),
)


@dataclass(frozen=True)
class Site:
    """What the rehearsal's machine provides in place of AWS."""

    user: str
    key: Path
    proxy_command: str
    bucket: str
    s3_endpoint: str
    head_venv: Path


def load(path: Path) -> dict[str, Any]:
    # Lazy: yaml is only needed when a rehearsal runs.
    import yaml

    return yaml.safe_load(path.read_text())


def _replace(tree: Any, old: str, new: str) -> Any:
    if isinstance(tree, str):
        return tree.replace(old, new)
    if isinstance(tree, list):
        return [_replace(item, old, new) for item in tree]
    if isinstance(tree, dict):
        return {key: _replace(value, old, new) for key, value in tree.items()}
    return tree


def launcher_config(cluster: dict[str, Any], site: Site) -> dict[str, Any]:
    """cluster.yaml as `ray up` gets it in the rehearsal: the SWAPS made, nothing else."""
    config = _replace(copy.deepcopy(cluster), BUCKET_PLACEHOLDER, site.bucket)
    config.pop("docker", None)
    config["provider"] = {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    config["auth"] = {
        "ssh_user": site.user,
        "ssh_private_key": str(site.key),
        "ssh_proxy_command": site.proxy_command,
    }
    # The local provider makes its own single node type (resources: what Ray detects) and
    # refuses others; the head's resources reach `ray start` as RAY_OVERRIDE_RESOURCES.
    config.pop("available_node_types", None)
    config.pop("head_node_type", None)
    config["max_workers"] = 0
    return config


def head_resources(cluster: dict[str, Any]) -> dict[str, float]:
    """cluster.yaml's head resources, plus the CPUs the `ray up` part runs trials on."""
    head = cluster["available_node_types"][cluster["head_node_type"]]
    resources = dict(head.get("resources") or {})
    resources["CPU"] = resources.get("CPU", 0) + HEAD_TRIAL_CPUS
    return resources


def _docker_options(cluster: dict[str, Any], prefix: str) -> list[str]:
    docker = cluster.get("docker") or {}
    found = []
    for option in (docker.get("run_options") or []) + (docker.get("head_run_options") or []):
        for word in shlex.split(option):
            if word.startswith(prefix):
                found.append(word[len(prefix) :])
    return found


def head_environment(cluster: dict[str, Any], site: Site) -> dict[str, str]:
    """The head's login environment: what the image, `docker run` and the instance give."""
    env = dict(item.split("=", 1) for item in _docker_options(cluster, "--env="))
    env.update(
        PATH=f"{site.head_venv / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        RAY_OVERRIDE_RESOURCES=json.dumps(head_resources(cluster)),
        AWS_ACCESS_KEY_ID="AKIAREHEARSALKEY",
        AWS_SECRET_ACCESS_KEY="rehearsal-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        MLFLOW_WORKERS="1",
        HMTL_S3_ENDPOINT=site.s3_endpoint,
        MLFLOW_S3_ENDPOINT_URL=site.s3_endpoint,
        RAY_USAGE_STATS_ENABLED="0",
    )
    return env


def head_volumes(cluster: dict[str, Any]) -> list[tuple[str, str]]:
    """(host folder, container folder) pairs of docker.head_run_options' --volume."""
    pairs = []
    for spec in _docker_options(cluster, "--volume="):
        host, container = spec.split(":")[:2]
        pairs.append((host, container))
    return pairs
