"""Where the code runs and at what size: choosing the device, naming the hardware, checking a render size.

Training, the CLI and the inference pipeline share these, so each question has one answer.
"""

from __future__ import annotations

import platform
from typing import Union

import torch

__all__ = ["choose_device", "hardware_name", "check_render_size"]


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
