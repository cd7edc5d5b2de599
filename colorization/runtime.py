"""Where the code runs and at what size: choosing the device, naming the hardware, checking a render size.

Training, the CLI and the inference pipeline share these, so each question has one answer.
"""

from __future__ import annotations

import math
import os
import platform
from typing import Union

import torch

__all__ = ["choose_device", "hardware_name", "check_render_size", "max_activation_bytes", "ACTIVATION_VARIABLE"]

# The memory one pass of the network may take for its activations, in gigabytes (10**9 bytes); a render size that
# needs more is refused (a 55 M-parameter U-Net whose weights file asked for render size 2048 passed 9 GB on a
# 300 x 200 photo: about 21 GB by the estimate). 5 GB lets every shipped model render at any size the app offers
# (up to 512) on any photo shape: the classification model's 2048 x 512 for a 4:1 strip is the most, 4.4 GB. At
# 1024 on a 3:2 photo the regression models need 1.4-2.6 GB, the classification model 6.7 GB.
ACTIVATION_VARIABLE = "COLORIZE_MAX_ACTIVATION_GB"
DEFAULT_MAX_ACTIVATION_GB = 5.0


def choose_device(name: Union[str, torch.device, None] = None) -> torch.device:
    """``name`` as a device; ``None`` or ``"auto"`` is CUDA when there is a GPU, else the CPU."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def hardware_name(device: torch.device) -> str:
    """What ``device`` is, for records: the GPU's name, or the CPU's model and torch's thread count."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {cpu}, {torch.get_num_threads()} threads"


def check_render_size(size: int) -> int:
    """``size`` if it is a valid render size (a multiple of 32, at least 32); else ValueError."""
    if size < 32 or size % 32:
        raise ValueError(f"render size must be a multiple of 32 and at least 32, got {size}")
    return size


def max_activation_bytes() -> float:
    """The activation memory one pass may take, in bytes: ``COLORIZE_MAX_ACTIVATION_GB`` gigabytes when set, else 5."""
    text = os.environ.get(ACTIVATION_VARIABLE)
    if text is None:
        return DEFAULT_MAX_ACTIVATION_GB * 1e9
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{ACTIVATION_VARIABLE} must be a positive number of gigabytes, got {text!r}")
    return value * 1e9
