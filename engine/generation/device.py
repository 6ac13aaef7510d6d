"""Pick the torch device and dtype for image generation, once, when asked.

Nothing here runs at import time: torch is imported inside :func:`select_device`, so
``import engine.generation.device`` costs nothing on a machine without the ``sd`` extra.

Order of preference: CUDA, then Apple's MPS, then the CPU.  Half precision (fp16) on
CUDA and MPS, bf16 where the caller asks for it and the device supports it, fp32 on the
CPU (CPU fp16 convolutions are slow or missing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from engine.errors import BackendError, ParameterError

__all__ = ["DeviceInfo", "select_device", "torch_dtype"]

log = logging.getLogger(__name__)

DeviceKind = Literal["cuda", "mps", "cpu"]
Precision = Literal["auto", "fp16", "bf16", "fp32"]

_INSTALL_HINT = "install the sd extra: pip install 'apex-director[sd]'"


@dataclass(frozen=True, kw_only=True)
class DeviceInfo:
    """The device generation runs on, for logs and system stats.

    Attributes
    ----------
    kind : {"cuda", "mps", "cpu"}
    torch_device : str
        What ``torch.device(...)`` takes (``"cuda:0"``, ``"mps"``, ``"cpu"``).
    name : str
        Human name (``"NVIDIA H100 80GB HBM3"``, ``"Apple MPS"``, ``"CPU"``).
    total_memory_bytes : int | None
        Device memory; ``None`` where torch cannot tell (MPS, CPU).
    dtype_name : str
        ``"float16"``, ``"bfloat16"`` or ``"float32"``: the dtype weights are loaded in.
    """

    kind: DeviceKind
    torch_device: str
    name: str
    total_memory_bytes: int | None
    dtype_name: str

    @property
    def total_memory_gib(self) -> float | None:
        """Device memory in GiB, or ``None``."""
        if self.total_memory_bytes is None:
            return None
        return self.total_memory_bytes / 2**30

    def as_stats(self) -> dict[str, object]:
        """A flat dict for system-stats displays."""
        return {
            "kind": self.kind,
            "device": self.torch_device,
            "device_name": self.name,
            "total_memory_gib": None
            if self.total_memory_gib is None
            else round(self.total_memory_gib, 1),
            "dtype": self.dtype_name,
        }


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise BackendError(
            f"torch is not installed; {_INSTALL_HINT}", backend_name="diffusers"
        ) from err
    return torch


def select_device(device: str = "auto", precision: Precision = "auto") -> DeviceInfo:
    """Choose the device and dtype.

    Parameters
    ----------
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), or an explicit ``"cuda"``, ``"cuda:1"``,
        ``"mps"`` or ``"cpu"``.
    precision : {"auto", "fp16", "bf16", "fp32"}
        ``"auto"`` is fp16 on CUDA/MPS and fp32 on the CPU.  ``"bf16"`` falls back to
        fp16 (with a warning) on a device without bf16 support.

    Returns
    -------
    DeviceInfo

    Raises
    ------
    ParameterError
        Unknown device or precision, or an explicit device that is not available here.
    BackendError
        torch is not installed.
    """
    if precision not in ("auto", "fp16", "bf16", "fp32"):
        raise ParameterError("precision", precision, "auto, fp16, bf16 or fp32")
    torch = _import_torch()
    requested = device.strip().lower()
    mps_ok = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if requested == "auto":
        if torch.cuda.is_available():
            requested = "cuda:0"
        elif mps_ok:
            requested = "mps"
        else:
            requested = "cpu"
    if requested == "cuda":
        requested = "cuda:0"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError("device", device, "auto or cpu (no CUDA GPU is visible to torch)")
        index = int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ParameterError("device", device, f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
        props = torch.cuda.get_device_properties(index)
        kind: DeviceKind = "cuda"
        name, total = str(props.name), int(props.total_memory)
        bf16_ok = bool(torch.cuda.is_bf16_supported())
    elif requested == "mps":
        if not mps_ok:
            raise ParameterError("device", device, "auto or cpu (MPS is not available)")
        kind, name, total, bf16_ok = "mps", "Apple MPS", None, True
    elif requested == "cpu":
        kind, name, total, bf16_ok = "cpu", "CPU", None, True
    else:
        raise ParameterError("device", device, "auto, cuda, cuda:N, mps or cpu")

    if precision == "auto":
        dtype_name = "float32" if kind == "cpu" else "float16"
    elif precision == "bf16":
        dtype_name = "bfloat16" if bf16_ok else "float16"
        if not bf16_ok:
            log.warning("%s has no bf16 support; using fp16", name)
    elif precision == "fp16":
        dtype_name = "float16"
    else:
        dtype_name = "float32"
    info = DeviceInfo(
        kind=kind,
        torch_device=requested,
        name=name,
        total_memory_bytes=total,
        dtype_name=dtype_name,
    )
    # Said once per distinct answer: status displays ask every few seconds.
    if info not in _ANNOUNCED:
        _ANNOUNCED.add(info)
        log.info("image generation on %s (%s, %s)", info.name, info.torch_device, dtype_name)
    return info


_ANNOUNCED: set[DeviceInfo] = set()


def torch_dtype(info: DeviceInfo) -> Any:
    """The ``torch.dtype`` named by ``info.dtype_name``."""
    torch = _import_torch()
    return getattr(torch, info.dtype_name)
