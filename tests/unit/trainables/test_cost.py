"""Compute accounting: cost/* metrics per epoch, cumulative across a resume; rates and prices."""

from __future__ import annotations

import json
import os

import pytest
import torch
from helpers import refused

from hmtl.orchestration.platform.cost import PRICE_ENV, local_rate, parse_price, rate_for
from hmtl.trainables.accounting import (
    DEVICE_SECONDS,
    IMAGES_SEEN,
    USD,
    WALL_SECONDS,
    CostRate,
    InputCounter,
    costs,
)
from hmtl.trainables.config import ConfigError
from hmtl.trainables.models import build_backbone
from hmtl.trainables.session import LocalSession
from hmtl.trainables.train import train


class Interrupted(Exception):
    pass


class StopAfter(LocalSession):
    """Dies right after publishing epoch `k`, like a killed process."""

    def __init__(self, out_dir, k, rate):
        super().__init__(out_dir, log=None)
        self.k, self.cost_rate = k, rate

    def report(self, metrics, checkpoint_dir=None):
        super().report(metrics, checkpoint_dir)
        if metrics["epoch"] == self.k:
            raise Interrupted


RATE = CostRate(devices=2.0, usd_per_hour=3.6)  # 3.6 USD/h: 0.001 USD per second


def test_cost_metrics_grow_every_epoch_and_count_auxiliary_inputs(tiny_config, tmp_path):
    # 640 faces, 80% train = 512 rows, batch 64: 8 steps. Rotation alone at aux budget 1
    # passes as many rotated images as main images, so 2 x 64 per step go in.
    cfg = tiny_config("tasks.loss_weights.rotation=0.5")
    session = LocalSession(tmp_path, log=None)
    session.cost_rate = RATE
    train(cfg, session)
    history = session.history
    assert [m[IMAGES_SEEN] for m in history] == [1024, 2048]
    walls = [m[WALL_SECONDS] for m in history]
    assert walls == sorted(walls) and walls[0] > 0
    for m in history:
        assert m[DEVICE_SECONDS] == pytest.approx(2.0 * m[WALL_SECONDS])
        assert m[USD] == pytest.approx(0.001 * m[WALL_SECONDS])
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m[DEVICE_SECONDS] for m in logged] == [m[DEVICE_SECONDS] for m in history]


def test_main_task_alone_counts_the_batch(tiny_config, tmp_path):
    session = LocalSession(tmp_path, log=None)
    train(tiny_config(), session)
    assert [m[IMAGES_SEEN] for m in session.history] == [512, 1024]
    assert DEVICE_SECONDS not in session.history[0]  # no rate given: no device-seconds


def test_counts_continue_across_a_resume(tiny_config, tmp_path):
    cfg = tiny_config("schedule.epochs=3")
    with pytest.raises(Interrupted):
        train(cfg, StopAfter(tmp_path, k=1, rate=RATE))
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    resumed = LocalSession(tmp_path, log=None)
    resumed.cost_rate = RATE
    train(cfg, resumed)
    assert [m["epoch"] for m in resumed.history] == [2, 3]
    assert [m[IMAGES_SEEN] for m in resumed.history] == [1024, 1536]
    # The resumed process's wall time adds to the first one's, it does not restart from 0.
    assert resumed.history[0][WALL_SECONDS] > first[WALL_SECONDS]
    assert resumed.history[0][WALL_SECONDS] > resumed.history[0]["time/train_s"]
    assert resumed.history[1][DEVICE_SECONDS] > resumed.history[0][DEVICE_SECONDS]
    assert resumed.history[0][DEVICE_SECONDS] > first[DEVICE_SECONDS]


def test_input_counter_sees_every_entry_point() -> None:
    backbone = build_backbone("small_cnn", 1, width=8).eval()
    seen = InputCounter(backbone)
    with torch.no_grad():
        backbone(torch.zeros(3, 1, 48, 48))
        backbone.forward_features(torch.zeros(2, 1, 48, 48))
    assert seen.count == 5


def test_costs_need_a_wall_time_and_a_rate() -> None:
    assert costs({}, RATE) == {}
    assert costs({WALL_SECONDS: 10.0}, None) == {}
    assert costs({WALL_SECONDS: 10.0}, CostRate(4.0)) == {DEVICE_SECONDS: 40.0}


def test_rates_count_gpus_else_cpu_cores_and_price_the_share_held() -> None:
    # One GPU of a 4-GPU node at 5.67 USD/h: a quarter of the node's price.
    gpu = rate_for(cpus=8, gpus=1, workers=1, price=5.67, node_cpus=48, node_gpus=4)
    assert gpu.devices == 1 and gpu.usd_per_hour == pytest.approx(5.67 / 4)
    # Two workers of 2 CPUs each on 16-CPU nodes at 0.8 USD/h: 4 cores, a quarter of a node.
    cpu = rate_for(cpus=2, gpus=0, workers=2, price=0.8, node_cpus=16)
    assert cpu.devices == 4 and cpu.usd_per_hour == pytest.approx(0.2)
    assert rate_for(cpus=2, gpus=0).usd_per_hour is None


def test_price_parsing_and_local_rate(tiny_config, monkeypatch) -> None:
    assert parse_price(None, "x") is None and parse_price("1.21", "x") == 1.21
    for bad in ("cheap", "-1", "nan", "inf"):
        with pytest.raises(ConfigError, match=f"x: '{bad}' is not a price per hour"):
            parse_price(bad, "x")
    cfg = tiny_config("runtime.device=cpu", "runtime.num_threads=1")
    monkeypatch.delenv(PRICE_ENV, raising=False)
    assert local_rate(cfg) == CostRate(devices=1.0, usd_per_hour=None)
    monkeypatch.setenv(PRICE_ENV, "2.0")
    assert local_rate(cfg).usd_per_hour == pytest.approx(2.0 / os.cpu_count())


def test_a_bad_price_variable_is_refused_in_one_line(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(PRICE_ENV, "lots")
    line = refused(["train", "demo", "--out", str(tmp_path / "run")], PRICE_ENV)
    assert line.endswith(f"{PRICE_ENV}='lots': not a price per hour in USD (e.g. 1.21)")
    assert not (tmp_path / "run").exists()
    refused(["sweep", "quickstart", "--storage", str(tmp_path)], "='lots': not a price")


def test_a_resume_on_another_rate_pays_each_its_own_part(tiny_config, tmp_path):
    """Killed after epoch 1 at RATE, resumed where 4 devices cost 7.2 USD/h: what epoch 1
    cost keeps its price, the time since is priced at the new rate."""
    cfg = tiny_config("schedule.epochs=2")
    with pytest.raises(Interrupted):
        train(cfg, StopAfter(tmp_path, k=1, rate=RATE))
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    resumed = LocalSession(tmp_path, log=None)
    resumed.cost_rate = CostRate(devices=4.0, usd_per_hour=7.2)
    train(cfg, resumed)
    (last,) = resumed.history
    since = last[WALL_SECONDS] - first[WALL_SECONDS]
    assert since > 0
    assert last[DEVICE_SECONDS] == pytest.approx(first[DEVICE_SECONDS] + 4.0 * since)
    assert last[USD] == pytest.approx(first[USD] + 0.002 * since)


def test_costs_before_keep_their_price():
    before = {WALL_SECONDS: 10.0, DEVICE_SECONDS: 20.0, USD: 0.01}
    now = {WALL_SECONDS: 15.0}
    assert costs(now, CostRate(4.0, 7.2), before) == pytest.approx(
        {DEVICE_SECONDS: 40.0, USD: 0.02}
    )
    # A checkpoint that carries no cost: everything at today's rate, as before.
    assert costs(now, CostRate(4.0), {WALL_SECONDS: 10.0}) == {DEVICE_SECONDS: 60.0}
