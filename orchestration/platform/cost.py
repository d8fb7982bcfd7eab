"""What a trial or an `hmtl train` run holds and costs: the rate its session multiplies by.

`train` reports its cumulative wall time and images (trainables/accounting.py); the
sessions here turn the wall time into ``cost/device_seconds`` (GPU-seconds where the run
holds GPUs, CPU core-seconds otherwise, over all its workers) and ``cost/usd``.

The price comes from the node the run trains on: cluster.yaml gives each node type a
label ``hmtl-usd-per-hour`` (Ray's node-type ``labels``, which its schema allows and
`ray up` sets on the node). Where a node has no such label (this machine, a cluster
started otherwise) the environment variable ``HMTL_USD_PER_HOUR`` is the price of the
node; neither set means no ``cost/usd``. A run pays the share of the node it holds (its
GPUs of the node's GPUs, or its CPUs of the node's CPUs); the workers of a multi-worker
trial are priced like rank 0's node.
"""

from __future__ import annotations

import math
import os

import torch

from hmtl.trainables.accounting import CostRate
from hmtl.trainables.config import ConfigError, TrainConfig
from hmtl.trainables.settings import SettingsError, settings, variable

PRICE_LABEL = "hmtl-usd-per-hour"
PRICE_ENV = variable("usd_per_hour")  # HMTL_USD_PER_HOUR


def parse_price(text: str | None, where: str) -> float | None:
    """A price per hour from a label or variable (None when unset), or ConfigError."""
    if text is None or not text.strip():
        return None
    try:
        price = float(text)
    except ValueError:
        price = math.nan
    if not math.isfinite(price) or price < 0:
        raise ConfigError(f"{where}: {text!r} is not a price per hour in USD (e.g. 1.21)")
    return price


def env_price() -> float | None:
    """The price per hour set in HMTL_USD_PER_HOUR, if any (ConfigError for a bad value)."""
    try:
        return settings().usd_per_hour
    except SettingsError as err:
        raise ConfigError(str(err)) from None


def price_problem() -> str | None:
    """Why HMTL_USD_PER_HOUR cannot be used (None when unset or fine): checked up front."""
    try:
        env_price()
    except ConfigError as err:
        return str(err)
    return None


def rate_for(
    cpus: float,
    gpus: float,
    workers: int = 1,
    price: float | None = None,
    node_cpus: float = 0.0,
    node_gpus: float = 0.0,
) -> CostRate:
    """The rate of `workers` workers of (`cpus`, `gpus`) each on nodes of the given price and
    size: devices are their GPUs, or their CPU cores when they hold no GPU."""
    held, node_total = (gpus, node_gpus) if gpus > 0 else (cpus, node_cpus)
    usd = None
    if price is not None:
        share = min(held / node_total, 1.0) if node_total > 0 else 1.0
        usd = price * share * workers
    return CostRate(devices=held * workers, usd_per_hour=usd)


def ray_rate(cpus: float, gpus: float, workers: int = 1) -> CostRate:
    """`rate_for` on the Ray node this process runs on: its price label (or the variable)
    and its CPU and GPU totals. Call it inside a trial or a Train worker."""
    # Lazy: `hmtl train` runs without Ray.
    import ray

    context = ray.get_runtime_context()  # (1) the node this trial or worker was placed on
    label = context.get_node_labels().get(PRICE_LABEL)
    try:
        price = parse_price(label, f"node label {PRICE_LABEL}") if label else env_price()
    except ConfigError:
        price = None  # a bad label costs the estimate, never the trial
    if price is None:
        return rate_for(cpus, gpus, workers)
    node_id = context.get_node_id()
    node = next((n for n in ray.nodes() if n.get("NodeID") == node_id), {})  # (2)
    resources = node.get("Resources", {})
    return rate_for(
        cpus, gpus, workers, price, resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    )


def local_rate(cfg: TrainConfig) -> CostRate:
    """The rate of `hmtl train` on this machine: one GPU when it trains on CUDA, else the
    CPU cores torch computes with; priced by HMTL_USD_PER_HOUR as a share of the machine."""

    device = cfg.runtime.device
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return rate_for(0, 1, 1, env_price(), 0, torch.cuda.device_count())
    threads = cfg.runtime.num_threads or torch.get_num_threads()
    return rate_for(threads, 0, 1, env_price(), os.cpu_count() or threads, 0)
