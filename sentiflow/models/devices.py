"""Which accelerators this process can use, without making torch a hard dependency.

The node starts one classifier actor per visible CUDA device and a single CPU classifier when
there is none, so it needs the device list before any model is loaded. torch is imported inside
the functions: the embedded default tier, the API and the tests run without torch installed.
"""

from __future__ import annotations

import re
from typing import Final

_DEVICE_PATTERN: Final = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


class DeviceUnavailableError(RuntimeError):
    """A device was asked for by name but this process cannot use it (no CUDA, bad index)."""


def _torch_cuda_count() -> int:
    """Number of visible CUDA devices; 0 when torch is missing, CPU-only or broken."""
    try:
        import torch
    except (ImportError, OSError):  # OSError: a torch wheel whose native libraries fail to load
        return 0
    if not torch.cuda.is_available():
        return 0
    return int(torch.cuda.device_count())


def cuda_devices() -> list[str]:
    """Visible CUDA devices as torch device strings (``["cuda:0", "cuda:1"]``), else ``[]``.

    Honours ``CUDA_VISIBLE_DEVICES`` (torch does): indices are the process's own numbering.
    """
    return [f"cuda:{index}" for index in range(_torch_cuda_count())]


def resolve_device(device: str) -> str:
    """Validate a device name and make it explicit: ``"auto"`` -> first CUDA device or ``"cpu"``,
    ``"cuda"`` -> ``"cuda:0"``.

    Raises ``ValueError`` for a name that is not a device (``"gpu"``, ``"cuda:x"``) and
    :class:`DeviceUnavailableError` for a CUDA device this process cannot see, so that a
    misconfigured node fails at start with a clear reason instead of at the first batch.
    """
    name = device.strip().lower()
    if name == "auto":
        visible = cuda_devices()
        return visible[0] if visible else "cpu"
    match = _DEVICE_PATTERN.fullmatch(name)
    if match is None:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        if index is not None:
            raise ValueError(f"unknown device {device!r}: the CPU device takes no index")
        return "cpu"
    visible = cuda_devices()
    wanted = f"cuda:{int(index) if index is not None else 0}"
    if wanted not in visible:
        seen = ", ".join(visible) if visible else "none"
        raise DeviceUnavailableError(f"device {device!r} is not available (CUDA devices: {seen})")
    return wanted
