"""The active-learning loop on a few hundred synthetic faces: budgets, reset policies, the
epoch rule and resuming after an interruption."""

import numpy as np
import pytest
import torch

from hmtl.trainables.active.config import build_active_config
from hmtl.trainables.active.cycle import digest, plateaued
from hmtl.trainables.active.labels import initial_draw
from hmtl.trainables.active.loop import cycle_config, run_active, subset, train_cycle
from hmtl.trainables.active.state import load_state
from hmtl.trainables.data.dataset import load_splits
from hmtl.trainables.session import LocalSession

TIMES = ("al/train_seconds", "al/select_seconds")


@pytest.fixture
def active_config(tiny_config):
    def make(**settings):
        train = tiny_config(**{"schedule": {"epochs": 1, "warmup_epochs": 0.0}})
        tree = {"cycles": 3, "strategy": "entropy", **settings, "train": train.model_dump()}
        return build_active_config(tree)

    return make


def _run(cfg, folder):
    session = LocalSession(folder, log=None)
    return run_active(cfg, session, log=None), session


def _same(history):
    return [{k: v for k, v in h.items() if k not in TIMES} for h in history]


def test_labelled_set_grows_by_exactly_the_budget(active_config, tmp_path):
    cfg = active_config()
    result, session = _run(cfg, tmp_path)
    n = len(result.labelled_map)
    initial, budget = round(0.10 * n), round(0.05 * n)
    assert [h["al/labelled"] for h in result.history] == [
        initial,
        initial + budget,
        initial + 2 * budget,
    ]
    assert np.bincount(result.labelled_map + 1).tolist() == [
        n - initial - 2 * budget,
        initial,
        budget,
        budget,
    ]
    assert [h["epoch"] for h in result.history] == [0, 1, 2]  # the cycle is the step
    assert "al/select_seconds" not in result.history[-1]  # nothing is selected after the last
    state, _ = load_state(session.checkpoints()[1])
    assert np.array_equal(
        state.labelled_map, np.where(result.labelled_map <= 2, result.labelled_map, -1)
    )


def test_initial_draw_is_stratified_and_seeded():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    rows = initial_draw(labels, 20, "stratified", np.random.default_rng(3))
    assert np.bincount(labels[rows]).tolist() == [10, 6, 3, 1]
    assert np.array_equal(rows, initial_draw(labels, 20, "stratified", np.random.default_rng(3)))
    assert len(set(initial_draw(labels, 20, "uniform", np.random.default_rng(3)))) == 20


def test_reset_pretrained_restores_the_snapshot(active_config, tmp_path):
    cfg = active_config(cycles=2, reset="pretrained")
    result, session = _run(cfg, tmp_path)
    first, second = result.history
    assert first["al/trained_weights"] != first["al/start_weights"]  # training moved them
    assert second["al/start_weights"] == first["al/start_weights"]
    state, _ = load_state(session.checkpoints()[-1])
    assert digest(state.snapshot) == first["al/start_weights"]
    # Tensor equality: the weights the next cycle's training starts from are the snapshot.
    splits = load_splits(cfg.train.data)
    rows = np.flatnonzero(state.labelled_map >= 0)
    inner = train_cycle(
        cfg,
        cycle_config(cfg, 1),
        subset(splits.train, rows),
        splits,
        torch.device("cpu"),
        state.snapshot,
        keep_start=True,
    )
    assert all(torch.equal(inner.start_weights[k], v) for k, v in state.snapshot.items())
    trained = inner.model.state_dict()
    assert not all(torch.equal(trained[k], v) for k, v in state.snapshot.items())


def test_reset_warm_continues_and_random_reinitialises(active_config, tmp_path):
    warm, _ = _run(active_config(cycles=2, reset="warm"), tmp_path / "warm")
    assert warm.history[1]["al/start_weights"] == warm.history[0]["al/trained_weights"]
    assert warm.history[1]["al/start_weights"] != warm.history[0]["al/start_weights"]
    fresh, _ = _run(active_config(cycles=2, reset="random"), tmp_path / "random")
    starts = {h["al/start_weights"] for h in fresh.history}
    assert len(starts) == 2 and warm.history[0]["al/trained_weights"] not in starts


def test_activefer_epoch_rule_stops_early_and_logs_the_epochs(active_config, tmp_path):
    cfg = active_config(cycles=1, epochs="activefer", stop_train_accuracy=0.01)
    cfg.train.schedule.epochs = 3
    result, _ = _run(cfg, tmp_path)
    assert result.history[0]["al/epochs"] == 1


def test_plateau_rule():
    assert not plateaued([0.1, 0.2, 0.3], window=3, delta=0.001)
    assert plateaued([0.5, 0.5, 0.5005], window=3, delta=0.001)
    assert not plateaued([0.5, 0.5], window=3, delta=0.001)


class Killed(Exception):
    pass


class DiesAfter(LocalSession):
    """A session whose process dies right after cycle `k`'s checkpoint is published."""

    def __init__(self, folder, k):
        super().__init__(folder, log=None)
        self.k = k

    def report(self, metrics, checkpoint_dir=None):
        super().report(metrics, checkpoint_dir)
        if metrics["epoch"] == self.k:
            raise Killed


@pytest.mark.parametrize("reset", ["pretrained", "warm"])
def test_resume_ends_as_an_uninterrupted_run(active_config, tmp_path, reset):
    cfg = active_config(reset=reset)
    whole, _ = _run(cfg, tmp_path / "whole")
    with pytest.raises(Killed):
        run_active(cfg, DiesAfter(tmp_path / "cut", 0), log=None)
    resumed, _ = _run(cfg, tmp_path / "cut")
    assert np.array_equal(resumed.labelled_map, whole.labelled_map)
    assert _same(resumed.history) == _same(whole.history)


def test_hmtl_active_refuses_bad_input_before_making_anything(tmp_path):
    from helpers import refused

    out = tmp_path / "run"
    refused(["active", "active_quickstart", "--strategy", "vaal", "--out", str(out)], "vaal")
    refused(["active", "active_quickstart", "--set", "cycles=30", "--out", str(out)], "pool")
    refused(["active", "active_quickstart", "--set", "budget=3", "--out", str(out)], "budget")
    refused(["active", "active_quickstart", "--out", str(out), "--resume"], "no completed cycle")
    refused(["active", "active_quickstart", "--resume"], "--resume needs --out")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    refused(["active", str(empty), "--out", str(out)], f"{empty}: empty config file")
    assert not out.exists()


def test_shipped_quickstart_is_the_activefer_protocol():
    from hmtl.orchestration.cli.train import shipped_config
    from hmtl.trainables.active.config import load_active_config

    cfg = load_active_config(shipped_config("active_quickstart"))
    assert (cfg.initial_fraction, cfg.budget_fraction, cfg.cycles) == (0.10, 0.05, 7)
    assert cfg.reset == "pretrained" and cfg.train.data.source == "synthetic"


def test_active_config_needs_the_expression_task():
    from hmtl.trainables.config import ConfigError

    with pytest.raises(ConfigError, match="expression"):
        build_active_config({"train": {"tasks": {"main": {"expression": None, "gender": {}}}}})


def test_max_pool_scores_a_seeded_subsample_and_records_it(active_config, tmp_path):
    cfg = active_config(cycles=2, strategy="margin", max_pool=60)
    result, _ = _run(cfg, tmp_path)
    assert result.history[0]["al/pool_scored"] == 60
    assert (
        result.history[0]["al/selected"]
        == result.history[1]["al/labelled"] - result.history[0]["al/labelled"]
    )
