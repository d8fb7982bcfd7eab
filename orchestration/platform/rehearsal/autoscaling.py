"""cluster.yaml's worker node types under Ray's fake multi-node autoscaler.

Ray's fake multi-node provider (ray/autoscaler/_private/fake_multi_node) under the real
autoscaler (v1; swaps.py says why not v2) launches nodes as local Ray nodes with exactly
the resources and labels of their type. The config comes from
cluster.yaml when the rehearsal runs: every worker type keeps its resources (GPU counts
included), labels (`hmtl-usd-per-hour`), min/max workers; max_workers and upscaling_speed
are cluster.yaml's; only the idle timeout is shortened, so that scale-down is seen in
seconds. The head is cluster.yaml's head type (no CPU, `hmtl_driver`). It runs on the
rehearsal's head machine (host.py), whose own PID namespace and loopback keep it apart
from any other Ray on this machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FAKE_HEAD_NODE_TYPE = "ray.head.default"
FAKE_PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"
IDLE_TIMEOUT_MINUTES = 0.25  # 15 s instead of cluster.yaml's minutes


def fake_cluster_config(cluster: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling config for `RAY_FAKE_CLUSTER=1 ray start --head` (swaps.py lists
    why): cluster.yaml's node types, the fake provider, a short idle timeout."""
    types = cluster["available_node_types"]
    head_type = cluster["head_node_type"]
    node_types: dict[str, Any] = {}
    for name, spec in types.items():
        if name == head_type:
            continue
        node_types[name] = {
            "resources": dict(spec.get("resources") or {}),
            "labels": dict(spec.get("labels") or {}),
            "min_workers": spec.get("min_workers", 0),
            "max_workers": spec.get("max_workers", 0),
            "node_config": {},
        }
    node_types[FAKE_HEAD_NODE_TYPE] = {
        "resources": dict(types[head_type].get("resources") or {}),
        "node_config": {},
        "max_workers": 0,
    }
    return {
        "cluster_name": cluster["cluster_name"],
        "max_workers": cluster["max_workers"],
        "upscaling_speed": cluster.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": IDLE_TIMEOUT_MINUTES,
        # Ray's `external` type loads the fake provider's class: the `fake_multinode` type
        # reads defaults from an example.yaml that Ray 2.60's wheel does not ship.
        "provider": {
            "type": "external",
            "module": FAKE_PROVIDER,
            # Every fake node is on 127.0.0.1: the autoscaler tells them apart by node id
            # (what the missing example.yaml sets).
            "use_node_id_as_ip": True,
            "disable_launch_config_check": True,
            "disable_node_updaters": True,
        },
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": node_types,
        "head_node_type": FAKE_HEAD_NODE_TYPE,
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def head_start_command(cluster: dict[str, Any], config_path: str) -> str:
    """The shell command that starts the fake cluster's head with the autoscaler."""
    head = dict(cluster["available_node_types"][cluster["head_node_type"]]["resources"])
    cpus, gpus = head.pop("CPU", 0), head.pop("GPU", 0)
    env = {
        "RAY_FAKE_CLUSTER": "1",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        "RAY_enable_autoscaler_v2": "0",
    }
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    resources = json.dumps(head).replace("'", "")
    # The head machine's environment sets the `ray up` head's resources; not this one's.
    return (
        f"unset RAY_OVERRIDE_RESOURCES; {exports} ray start --head --port=6379 "
        f"--dashboard-host=127.0.0.1 --num-cpus={cpus:g} --num-gpus={gpus:g} "
        f"--resources='{resources}' --autoscaling-config={config_path} --disable-usage-stats"
    )


def project_on_head_python(head_venv: Path, project_venv: Path) -> None:
    """Make the project importable by the head's Python (and so by every fake node, whose
    workers run that Python) through the project's own editable install, as setup_commands'
    `pip install -e` makes it on a `ray up` head (swaps.py says why it is not run here)."""
    source = next((project_venv / "lib").glob("python3*/site-packages/__editable__.hmtl-*.pth"))
    target = next((head_venv / "lib").glob("python3*/site-packages"))
    # Read after image-packages.pth (alphabetical), which puts the finder on the path.
    (target / "zz-hmtl-editable.pth").write_text(source.read_text())
