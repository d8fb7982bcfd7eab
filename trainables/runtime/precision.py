"""The numeric format of the forward pass: bf16 autocast and the channels-last memory format.

Both default to `auto`: on on CUDA (tensor cores take bf16, and their convolution kernels
want NHWC), off on the CPU, where fp32 in NCHW is what the CPU results were measured and
checked with (bf16 autocast on a CPU without AMX is slower, not faster)."""

from __future__ import annotations

import contextlib

import torch

from hmtl.trainables.config import RuntimeConfig


def use_bf16(runtime: RuntimeConfig, device: torch.device) -> bool:
    """Whether forward passes run under bf16 autocast (`runtime.precision`)."""
    return runtime.precision == "bf16" or (runtime.precision == "auto" and device.type == "cuda")


def autocast(runtime: RuntimeConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """The context every forward pass runs in: bf16 autocast, or a disabled one (fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16(runtime, device))


def use_channels_last(runtime: RuntimeConfig, device: torch.device) -> bool:
    """Whether the model and its inputs use the channels-last memory format
    (`runtime.channels_last`; null: on CUDA only)."""
    if runtime.channels_last is None:
        return device.type == "cuda"
    return runtime.channels_last
