"""The device: `runtime.device: cuda` refused in one line where there is no CUDA, and
host-to-device copies that leave CPU tensors as they are."""

import pytest
import torch

from hmtl.trainables.config import ConfigError, RuntimeConfig
from hmtl.trainables.runtime.device import (
    check_device,
    cuda_refusal,
    held_gpu_refusal,
    pick_device,
)
from hmtl.trainables.runtime.transfer import upload
from hmtl.trainables.sampling import epoch_rows

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@no_cuda
def test_cuda_without_cuda_is_refused_in_one_line():
    with pytest.raises(ConfigError) as refused:
        check_device(RuntimeConfig(device="cuda"))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("runtime.device: cuda, but this machine has no CUDA device")
    assert "set runtime.device: auto or cpu" in message
    with pytest.raises(ConfigError, match="no CUDA device"):
        pick_device("cuda")


def test_auto_and_cpu_are_never_refused():
    for name in ("auto", "cpu"):
        assert cuda_refusal(name) is None
        check_device(RuntimeConfig(device=name))
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@no_cuda
def test_a_worker_holding_a_gpu_without_cuda_is_refused_naming_its_node():
    node = "node 10.0.3.7 (abc123)"
    for name in ("auto", "cuda"):
        message = held_gpu_refusal(name, 1, node)
        assert message is not None and "\n" not in message
        assert message.startswith(f"{node}: this worker holds 1 GPU(s)")
        assert "set runtime.device: cpu" in message
    assert held_gpu_refusal("cpu", 1, node) is None  # asked for: the GPUs idle on purpose
    assert held_gpu_refusal("auto", 0, node) is None  # no GPU held: CPU is what it has


def test_upload_to_the_cpu_is_the_tensor_itself():
    rows = torch.arange(6)
    assert upload(rows, torch.device("cpu")) is rows
    assert upload(rows, "cpu") is rows


def test_epoch_rows_move_as_one():
    rows = epoch_rows(20, 4, torch.Generator().manual_seed(0), pool_size=30)
    moved = rows.to(torch.device("cpu"))
    assert torch.equal(moved.main, rows.main) and torch.equal(moved.aux, rows.aux)
    alone = epoch_rows(20, 4, torch.Generator().manual_seed(0)).to(torch.device("cpu"))
    assert alone.aux is None and torch.equal(alone.main, rows.main)
