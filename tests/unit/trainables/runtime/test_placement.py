"""`runtime.data_placement`: training rows kept in host memory train exactly as rows
resident on the device (on the CPU both are the host; the host path's copies and lookups
must change nothing)."""

import pytest

from hmtl.trainables.session import LocalSession
from hmtl.trainables.train import train

SEMI = ("data.label_fraction=0.5", "tasks.loss_weights.rotation=0.5")
PRETRAIN = ("tasks.main.expression=null", "tasks.loss_weights.rotation=1")


def scalars(metrics):
    return {
        k: v for k, v in metrics.items() if "images_per_sec" not in k and not k.startswith("time/")
    }


@pytest.mark.parametrize("extra", [SEMI, PRETRAIN], ids=["semi-supervised", "pretrain"])
def test_host_rows_train_exactly_as_device_rows(tiny_config, tmp_path, extra):
    runs = {}
    for placement in ("device", "host"):
        cfg = tiny_config(f"runtime.data_placement={placement}", "schedule.epochs=1", *extra)
        runs[placement] = train(cfg, LocalSession(tmp_path / placement, log=None))
    assert scalars(runs["host"].metrics) == scalars(runs["device"].metrics)
