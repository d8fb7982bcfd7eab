"""cluster.yaml: Ray's own schema check, offline, and the project's rules for the cluster.

Ray's YAML tests validate a cluster config with `prepare_config` (merge the provider's
defaults.yaml, fill node types) then `validate_config` (ray-schema.json plus Ray's
cross-field checks). Both are private to the pinned Ray (constraints.txt) and read only
local files; the test blocks network connections to prove it needs no cloud or credentials.
"""

from __future__ import annotations

import copy
import re
import socket
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from hmtl.orchestration.platform.cluster import DRIVER_RESOURCE

ROOT = Path(__file__).resolve().parents[4]
CLUSTER_YAML = ROOT / "cluster.yaml"
PROJECT_DIR = "/home/ray/hmtl"
# Ports that must never be reachable from outside the cluster's own security group.
PRIVATE_PORTS = {8265: "dashboard/jobs API", 10001: "Ray client", 6379: "GCS", 5000: "MLflow"}
PUBLIC_CIDRS = {"0.0.0.0/0", "::/0"}


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def pinned_ray_version() -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.strip().partition("==")
        if name.lower() == "ray":
            return version
    raise AssertionError("constraints.txt pins no ray version")


def worker_types(config: dict) -> dict[str, dict]:
    head = config["head_node_type"]
    return {name: t for name, t in config["available_node_types"].items() if name != head}


def start_commands(config: dict) -> list[str]:
    return config["head_start_ray_commands"] + config["worker_start_ray_commands"]


def all_commands(config: dict) -> list[str]:
    keys = ["initialization_commands", "setup_commands", "head_setup_commands"]
    keys += ["worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands"]
    return [command for key in keys for command in config.get(key) or []]


def exposed_ports(rule: dict) -> tuple[set[int], set[str]]:
    """The watched ports an ingress rule opens and the CIDRs it opens them to.

    Rules between security groups (UserIdGroupPairs) open nothing to an address range."""
    cidrs = {r["CidrIp"] for r in rule.get("IpRanges", [])}
    cidrs |= {r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])}
    cidrs |= {r["PrefixListId"] for r in rule.get("PrefixListIds", [])}
    if str(rule.get("IpProtocol")) == "-1":
        ports = set(PRIVATE_PORTS) | {22}
    else:
        low, high = rule.get("FromPort", 0), rule.get("ToPort", 65535)
        ports = {p for p in set(PRIVATE_PORTS) | {22} if low <= p <= high}
    return (ports if cidrs else set()), cidrs


def ingress_violations(rules: list[dict]) -> list[str]:
    problems = []
    for rule in rules:
        ports, cidrs = exposed_ports(rule)
        for port in sorted(ports & set(PRIVATE_PORTS)):
            problems.append(f"port {port} ({PRIVATE_PORTS[port]}) open to {sorted(cidrs)}")
        if cidrs & PUBLIC_CIDRS:
            problems.append(f"{rule} opens ports to the whole internet")
    return problems


def test_passes_rays_own_schema_validation_offline(config, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f"validation tried to reach the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)  # raises jsonschema.ValidationError naming the bad field
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_every_node_type_declares_cpu_and_gpu_for_the_planner(config):
    # orchestration/platform/cluster.py plans a scaled-to-zero cluster from these numbers.
    for name, node_type in config["available_node_types"].items():
        resources = node_type.get("resources") or {}
        assert {"CPU", "GPU"} <= set(resources), (
            f"node type {name!r} must declare CPU and GPU in `resources`, has {resources}"
        )


def test_head_has_no_gpu_and_offers_the_trial_driver_resource(config):
    head = config["available_node_types"][config["head_node_type"]]["resources"]
    assert head["GPU"] == 0, f"the head must not advertise GPUs: {head}"
    assert head.get(DRIVER_RESOURCE, 0) >= 1, (
        f"the head must offer {DRIVER_RESOURCE!r} (trial drivers ask for it): {head}"
    )


def test_head_advertises_no_cpu_so_nothing_that_trains_lands_there(config):
    head = config["available_node_types"][config["head_node_type"]]["resources"]
    assert head["CPU"] == 0, f"the head must advertise CPU 0 (no training work): {head}"


def test_every_worker_type_has_a_gpu(config):
    for name, node_type in worker_types(config).items():
        gpus = node_type["resources"].get("GPU", 0)
        assert gpus >= 1, f"worker type {name!r} has GPU {gpus}; workers train on GPUs"


def test_gpu_worker_types_scale_to_zero(config):
    for name, node_type in worker_types(config).items():
        assert node_type.get("min_workers", 0) == 0, (
            f"worker type {name!r} has min_workers {node_type['min_workers']}: idle GPUs cost"
        )
        assert node_type.get("max_workers", 0) >= 1, f"worker type {name!r} can never start"


def test_docker_image_is_rays_image_for_the_pinned_version_and_python(config):
    expected = f"rayproject/ray:{pinned_ray_version()}-py311"
    docker = config["docker"]
    images = [docker["image"], docker.get("head_image"), docker.get("worker_image")]
    images += [t.get("docker", {}).get("worker_image") for t in worker_types(config).values()]
    for image in filter(None, images):
        assert image.startswith(expected), f"image {image!r} must start with {expected!r}"
        assert re.fullmatch(re.escape(expected) + r"-cu\d{3}", image), (
            f"image {image!r} must be a CUDA build (-cuXYZ) for the GPU workers"
        )


def test_token_authentication_is_on_for_every_ray_start_and_the_container(config):
    for command in start_commands(config):
        if "ray start" in command:
            assert "RAY_AUTH_MODE=token" in command, f"ray start without token auth: {command}"
    assert "--env=RAY_AUTH_MODE=token" in config["docker"]["run_options"], (
        "the container must run with RAY_AUTH_MODE=token (jobs, autoscaler, ray attach shells)"
    )
    mounts = config["file_mounts"]
    assert mounts.get("/home/ray/.ray/auth_token") == "~/.ray/auth_token", (
        f"every node needs the same token at Ray's default path; file_mounts: {mounts}"
    )


def test_the_token_itself_is_never_in_the_file_and_auth_is_never_disabled(config):
    text = CLUSTER_YAML.read_text()
    assert "RAY_AUTH_TOKEN=" not in text, "cluster.yaml must not carry the token itself"
    assert "RAY_AUTH_MODE=disabled" not in text


def test_no_security_group_rule_exposes_ray_or_mlflow_ports_or_opens_to_the_internet(config):
    rules = (config["provider"].get("security_group") or {}).get("IpPermissions") or []
    problems = ingress_violations(rules)
    assert not problems, "security group rules: " + "; ".join(problems)


def test_every_node_type_names_its_security_group_so_ray_creates_none(config):
    # A group Ray creates always gets SSH open to 0.0.0.0/0 besides the configured rules.
    groups = {}
    for name, node_type in config["available_node_types"].items():
        groups[name] = node_type["node_config"].get("SecurityGroupIds")
        assert groups[name], f"node type {name!r} needs SecurityGroupIds (see provider comments)"
    assert len({tuple(g) for g in groups.values()}) == 1, (
        f"all node types must share one group (traffic within it is allowed): {groups}"
    )


def test_the_rule_checker_catches_exposed_ports_and_public_ranges():
    ssh_from_office = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}
    ssh_from_office["IpRanges"] = [{"CidrIp": "203.0.113.0/24"}]
    within_group = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-1"}]}
    assert ingress_violations([ssh_from_office, within_group]) == []
    dashboard = {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 9000}
    dashboard["IpRanges"] = [{"CidrIp": "10.0.0.0/8"}]
    assert "port 8265" in ingress_violations([dashboard])[0]
    world_ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}
    world_ssh["Ipv6Ranges"] = [{"CidrIpv6": "::/0"}]
    assert ingress_violations([world_ssh])
    everything = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "198.51.100.7/32"}]}
    assert len(ingress_violations([everything])) == len(PRIVATE_PORTS)


def test_dashboard_binds_loopback_only(config):
    head_start = [c for c in config["head_start_ray_commands"] if "ray start --head" in c]
    assert len(head_start) == 1, f"one `ray start --head` expected: {head_start}"
    assert "--dashboard-host=127.0.0.1" in head_start[0], head_start[0]
    for command in all_commands(config):
        assert "0.0.0.0" not in command, f"nothing may bind every interface: {command}"


def test_every_node_type_has_an_instance_profile(config):
    for name, node_type in config["available_node_types"].items():
        profile = node_type["node_config"].get("IamInstanceProfile") or {}
        assert profile.get("Arn") or profile.get("Name"), (
            f"node type {name!r} needs an IamInstanceProfile (S3 access without keys)"
        )


def test_setup_installs_the_mounted_project_with_the_constraints_on_every_node(config):
    assert config["file_mounts"].get(PROJECT_DIR) == ".", (
        f"the project folder must be mounted at {PROJECT_DIR} (ray up from the project root)"
    )
    prepared = prepare_config(copy.deepcopy(config))
    for key in ("head_setup_commands", "worker_setup_commands"):
        installs = [
            c
            for c in prepared[key]
            if "pip install" in c and f"-c {PROJECT_DIR}/constraints.txt" in c and PROJECT_DIR in c
        ]
        assert installs, f"{key} must `pip install -c {PROJECT_DIR}/constraints.txt` the project"


def test_local_virtualenv_and_runs_are_never_synced(config):
    excluded = set(config.get("rsync_exclude") or [])
    assert {".venv", "hmtl-runs", ".git"} <= excluded, f"rsync_exclude: {sorted(excluded)}"


def test_mlflow_server_starts_with_ray_on_loopback_with_s3_artifacts(config):
    servers = [c for c in config["head_start_ray_commands"] if "mlflow server" in c]
    assert len(servers) == 1, "the head's start commands (rerun by every ray up) start MLflow"
    command = servers[0]
    assert "--host 127.0.0.1" in command, f"MLflow must bind 127.0.0.1: {command}"
    assert "--port 5000" in command, f"MLflow's port is the one kept closed above: {command}"
    assert "--artifacts-destination s3://" in command, f"artifacts belong in S3: {command}"
    assert "HMTL_MLFLOW_DB" in command, "a database URI from the environment must be possible"
