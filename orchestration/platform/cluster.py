"""Connecting to Ray and planning trial resources against what the cluster has.

Local Ray starts with the dashboard bound to 127.0.0.1: Train V2 cleans up finished
runs through the state API the dashboard serves, and without it a sweep hangs
(STACK-NOTES.md). Resource plans are checked before anything starts, so a request
that can never be placed is refused with a message instead of waiting forever.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from hmtl.orchestration.platform.credentials import keep_credentials_out_of_runtime_envs
from hmtl.trainables.settings import settings

if TYPE_CHECKING:
    from hmtl.orchestration.sweep.space import SearchSpace

# The trial driver of a multi-worker trial only builds a TorchTrainer and waits.
DRIVER_CPUS = 0.05
# On a cluster from cluster.yaml the head offers this custom resource and no CPU, so trial
# drivers land there and nothing that trains does.
DRIVER_RESOURCE = "hmtl_driver"
DRIVER_SHARE = 0.01


class InfeasibleError(ValueError):
    """A resource request no node of the cluster can ever satisfy."""


@dataclass(frozen=True)
class NodeShape:
    """Resources of one node, existing or launchable (autoscaler node type)."""

    name: str
    cpus: float
    gpus: float
    max_count: int = 1


@dataclass(frozen=True)
class Plan:
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    max_concurrent: int
    use_train: bool
    """True: TorchTrainer per trial. False: one worker runs inside the Tune function."""
    driver_resource: bool = False
    """The cluster offers DRIVER_RESOURCE (the head of cluster.yaml): drivers ask for it."""
    placement: str = "PACK"
    """How a multi-worker trial's workers are placed (Ray's placement strategy): STRICT_PACK,
    on one node, where one node type holds them all (DDP without the network between
    nodes; the autoscaler launches a node that big, e.g. gpu_4x, rather than several small
    ones); PACK otherwise."""

    def trial_resources(self) -> dict[str, float]:
        if self.use_train and self.driver_resource:
            return {DRIVER_RESOURCE: DRIVER_SHARE}
        if self.use_train:
            return {"CPU": DRIVER_CPUS}
        return {"CPU": self.cpus_per_worker, "GPU": self.gpus_per_worker}


def plan_resources(
    workers: int,
    cpus: float,
    gpus: float,
    nodes: list[NodeShape],
    cap: int | None = None,
    force_train: bool = False,
    driver_resource: bool = False,
) -> Plan:
    """How trials run and how many at once, or InfeasibleError naming what is missing."""
    fits = [n for n in nodes if n.cpus >= cpus and n.gpus >= gpus]
    if not fits:
        raise InfeasibleError("resources cannot be placed: " + _missing(cpus, gpus, nodes))
    slots = sum(_per_node(n, cpus, gpus) * n.max_count for n in fits)
    use_train = workers > 1 or force_train
    concurrent = slots // workers
    if use_train and not driver_resource:
        # Every trial also holds a driver's sliver of CPU beside its worker group.
        total_cpus = sum(n.cpus * n.max_count for n in nodes)
        concurrent = min(concurrent, math.floor(total_cpus / (workers * cpus + DRIVER_CPUS)))
    if concurrent < 1:
        raise InfeasibleError(
            f"resources cannot be placed: {workers} workers x ({cpus:g} CPU, {gpus:g} GPU) "
            f"per trial, but the cluster holds {slots} such workers"
        )
    placement = "PACK"
    whole = sum(_per_node(n, cpus, gpus) // workers * n.max_count for n in fits)
    if use_train and whole >= 1:
        placement, concurrent = "STRICT_PACK", min(concurrent, whole)
    if cap is not None:
        concurrent = min(concurrent, cap)
    return Plan(workers, cpus, gpus, concurrent, use_train, driver_resource, placement)


def _per_node(node: NodeShape, cpus: float, gpus: float) -> int:
    by_cpu = math.floor(node.cpus / cpus + 1e-9) if cpus else 1024
    by_gpu = math.floor(node.gpus / gpus + 1e-9) if gpus else 1024
    return min(by_cpu, by_gpu)


def _missing(cpus: float, gpus: float, nodes: list[NodeShape]) -> str:
    biggest_gpu = max((n.gpus for n in nodes), default=0)
    biggest_cpu = max((n.cpus for n in nodes), default=0)
    missing = []
    if gpus > biggest_gpu:
        missing.append(f"{gpus:g} GPUs per worker but the largest node has {biggest_gpu:g}")
    if cpus > biggest_cpu:
        missing.append(f"{cpus:g} CPUs per worker but the largest node has {biggest_cpu:g}")
    return "; ".join(missing) or "no single node has both the CPUs and the GPUs per worker"


def address_problem(address: str | None) -> str | None:
    """Why `--address` is not something Ray can join (None when it is): `auto`, HOST:PORT or
    ray://HOST:PORT. Checked up front: Ray's own refusal is a traceback after imports."""
    if address in (None, "auto"):
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if host and "/" not in host and port.isdigit() and 0 < int(port) < 65536:
        return None
    return f"--address {address}: give auto (the cluster this machine belongs to) or HOST:PORT"


def local_node(num_cpus: int | None = None) -> NodeShape:
    """This machine as local Ray started here would offer it: `num_cpus`, else the CPUs this
    process may run on (its affinity mask), and the CUDA GPUs torch sees."""
    # Lazy: keeps torch out of the checks that run before Ray starts.
    import torch

    if num_cpus is None:
        try:
            num_cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # no affinity mask outside Linux
            num_cpus = os.cpu_count() or 1
    return NodeShape("this machine", float(num_cpus), float(torch.cuda.device_count()))


def check_local_resources(
    workers: int,
    cpus: float,
    gpus: float,
    num_cpus: int | None = None,
    force_train: bool = False,
) -> Plan:
    """The plan on this machine alone, or InfeasibleError before local Ray starts.

    On the embedded default (no `--address`) the machine's CPUs and GPUs are known without
    Ray, so a request it can never hold is refused in a second instead of after Ray's start."""
    node = local_node(num_cpus)
    try:
        return plan_resources(workers, cpus, gpus, [node], force_train=force_train)
    except InfeasibleError as err:
        raise InfeasibleError(
            f"{err} (this machine: {node.cpus:g} CPUs, {node.gpus:g} GPUs; "
            "--address joins a cluster)"
        ) from None


def embedded_default(address: str | None) -> bool:
    """Whether a sweep would start local Ray on this machine: no --address, no RAY_ADDRESS
    (which ray.init joins), and no Ray already started in this process (as in tests)."""
    ray = sys.modules.get("ray")  # not imported yet: certainly not started
    started = ray is not None and ray.is_initialized()
    return address is None and not os.environ.get("RAY_ADDRESS") and not started


def check_local(
    space: SearchSpace, address: str | None, num_cpus: int | None = None, force_train: bool = False
) -> None:
    """On the embedded default, refuse resources this machine cannot hold, naming the space
    file, before Ray is imported or started; elsewhere the joined cluster is judged."""
    if not embedded_default(address):
        return
    r = space.resources
    try:
        check_local_resources(
            r.workers_per_trial, r.cpus_per_worker, r.gpus_per_worker, num_cpus, force_train
        )
    except InfeasibleError as err:
        raise InfeasibleError(f"{space.source or space.name}: {err}") from None


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join a running cluster (`auto` or HOST:PORT) or start local Ray on 127.0.0.1.

    Either way, trials will not carry AWS credentials in their runtime envs."""
    # Lazy: keeps ray out of the checks that run before Ray starts.
    import ray

    keep_credentials_out_of_runtime_envs()
    if ray.is_initialized():
        return
    if address:
        # A cluster `hmtl` started listens on 127.0.0.1 only; outside single-machine mode
        # Ray would turn that address into the machine's own and never reach it.
        joining = _loopback_only() if _is_loopback(address) else contextlib.nullcontext()
        with joining:
            ray.init(address=address, log_to_driver=True)
        return
    with _loopback_only():
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            _node_ip_address="127.0.0.1",
            log_to_driver=True,
        )


# Ray 2.60 turns a node IP of 127.0.0.1 into the machine's address (`resolve_ip_for_localhost`)
# unless it runs as a single-machine "cluster" (its Windows/macOS default). Then its node IP
# is 127.0.0.1, and gcs_server, raylet, core workers and both agents bind to it instead of
# all interfaces or the external address.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _is_loopback(address: str) -> bool:
    """Whether `address` (HOST:PORT, or `auto`: the cluster this machine last started) is a
    Ray on this machine's loopback interface. Ray Client addresses (ray://) are not."""
    if address == "auto":
        # Lazy: keeps ray out of the checks that run before Ray starts.
        from ray._private.services import get_ray_address_from_environment

        try:
            address = get_ray_address_from_environment("auto", None) or ""
        except (ConnectionError, OSError, ValueError):
            return False
    if address.startswith("ray://"):
        return False
    host = address.rpartition(":")[0] or address
    return host == "localhost" or host.startswith("127.")


@contextlib.contextmanager
def _loopback_only():
    """While local Ray starts: single-machine mode in this process (Ray's module constant,
    read when it was imported) and in the processes it spawns (their environment). Undone
    afterwards, so that a later `ray start --address` from this environment still works."""
    # Lazy: keeps ray out of the checks that run before Ray starts.
    from ray._private import ray_constants

    saved_env, saved_flag = os.environ.get(LOOPBACK_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = saved_env


def joining(address: str):
    """The context to join the Ray at `address` in: loopback-only for a Ray on this
    machine's loopback interface (as `init_ray` joins it), else nothing."""
    return _loopback_only() if _is_loopback(address) else contextlib.nullcontext()


def cluster_nodes() -> list[NodeShape]:
    """Node shapes the sweep may use: alive nodes, plus launchable autoscaler node types."""
    # Lazy: keeps ray out of the checks that run before Ray starts.
    import ray

    shapes = [
        NodeShape(
            n["NodeManagerAddress"], n["Resources"].get("CPU", 0), n["Resources"].get("GPU", 0)
        )
        for n in ray.nodes()
        if n.get("Alive")
    ]
    return shapes + autoscaler_node_types()


def has_driver_resource() -> bool:
    """Whether the connected cluster offers the trial-driver resource (see cluster.yaml)."""
    # Lazy: keeps ray out of the checks that run before Ray starts.
    import ray

    return ray.cluster_resources().get(DRIVER_RESOURCE, 0) > 0


def autoscaler_node_types(path: str | None = None) -> list[NodeShape]:
    """Node types an autoscaling cluster can launch, from its bootstrap config.

    On a `ray up` cluster the head holds `~/ray_bootstrap_config.yaml` (the cluster
    YAML as launched); sweeps run on the head, so a cluster scaled to zero is judged by
    what it can start. Local Ray has no such file: only alive nodes count.
    """

    path = path or os.path.expanduser(settings().bootstrap_config)  # HMTL_BOOTSTRAP_CONFIG
    try:
        with open(path) as f:
            config = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return []
    shapes = []
    for name, node_type in (config.get("available_node_types") or {}).items():
        resources = node_type.get("resources") or {}
        count = int(node_type.get("max_workers", 0) or 0)
        if count > 0:
            shapes.append(
                NodeShape(
                    name, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)), count
                )
            )
    return shapes
