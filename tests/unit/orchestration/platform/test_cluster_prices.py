"""cluster.yaml's node prices: a Ray node-type label each worker type carries, read by trials
(orchestration/platform/cost.py) for `cost/usd`. Ray's schema check is in test_cluster_yaml.py."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray._private.label_utils import validate_node_label_syntax

from hmtl.orchestration.platform.cost import PRICE_LABEL, parse_price

CLUSTER_YAML = Path(__file__).resolve().parents[4] / "cluster.yaml"


def test_every_worker_type_has_a_price_label_ray_accepts():
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    head = config["head_node_type"]
    workers = {k: v for k, v in config["available_node_types"].items() if k != head}
    assert workers
    for name, node_type in workers.items():
        labels = node_type.get("labels") or {}
        assert PRICE_LABEL in labels, f"node type {name!r} has no {PRICE_LABEL} label"
        validate_node_label_syntax(labels)  # what `ray start` checks; raises on a bad label
        price = parse_price(labels[PRICE_LABEL], f"{name}.labels.{PRICE_LABEL}")
        assert price is not None and price > 0
