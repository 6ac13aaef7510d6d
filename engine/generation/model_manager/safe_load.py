"""Read model weights without ever executing code from them.

Two formats are accepted:

* ``.safetensors``: a 8-byte little-endian header length, a JSON header naming each tensor's
  dtype, shape and byte range, then the raw data.  :func:`read_safetensors_header` reads and
  checks only the header (a few kB, even for a 7 GB checkpoint), so identification and the
  truncation check cost nothing.
* pickled PyTorch files (``.ckpt``, ``.pt``, ``.pth``, ``.bin``): loaded **only** with
  ``torch.load(weights_only=True)``, whose unpickler accepts tensors and plain containers and
  refuses any other global, so a ``__reduce__`` payload is never run.

Errors are :class:`~engine.errors.ModelError` (or :class:`~engine.errors.CorruptModelError`
for a truncated or damaged file), each naming the file and what to do.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import CorruptModelError, ModelError

__all__ = [
    "PICKLE_SUFFIXES",
    "SAFETENSORS_SUFFIXES",
    "SafetensorsHeader",
    "TensorMeta",
    "load_state_dict",
    "read_safetensors_header",
    "tensor_shapes",
]

log = logging.getLogger(__name__)

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# A safetensors header is JSON of a few hundred kB at most for the largest checkpoints;
# anything far larger is not a safetensors file (and must not be read into memory).
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


def _redownload_hint() -> str:
    return (
        "download it again (or run `apex-director models verify` to compare it with the "
        "manifest's SHA-256)"
    )


@dataclass(frozen=True, slots=True)
class TensorMeta:
    """Name-independent facts about one stored tensor."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SafetensorsHeader:
    """The parsed header of a ``.safetensors`` file.

    Attributes
    ----------
    path : Path
        The file.
    tensors : Mapping[str, TensorMeta]
        Every tensor's dtype, shape and byte range (relative to the data section).
    metadata : Mapping[str, str]
        The free-form ``__metadata__`` strings (``modelspec.*``, ``ss_*`` training notes...).
    data_bytes : int
        Size of the data section on disk.
    """

    path: Path
    tensors: Mapping[str, TensorMeta]
    metadata: Mapping[str, str]
    data_bytes: int


def read_safetensors_header(path: Path | str) -> SafetensorsHeader:
    """Read and check a ``.safetensors`` header without reading any tensor data.

    Parameters
    ----------
    path : Path or str
        The file.

    Returns
    -------
    SafetensorsHeader
        Names, dtypes, shapes and byte ranges of every tensor, and the metadata.

    Raises
    ------
    ModelError
        The file does not exist or is not a file.
    CorruptModelError
        The file is too short, the header length runs past the end of the file, the header is
        not JSON, or a tensor's byte range lies outside the data (a truncated download).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found", path=path, error_code="missing")
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CorruptModelError(
                f"{path}: only {size} bytes, too short to be a safetensors file; "
                + _redownload_hint(),
                path=path,
                error_code="corrupt",
            )
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > size - 8 or header_len > _MAX_HEADER_BYTES:
            raise CorruptModelError(
                f"{path}: truncated or not a safetensors file (header says {header_len} bytes, "
                f"the file has {size}); " + _redownload_hint(),
                path=path,
                error_code="corrupt",
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as err:
        raise CorruptModelError(
            f"{path}: damaged safetensors header ({err}); " + _redownload_hint(),
            path=path,
            error_code="corrupt",
        ) from err
    data_bytes = size - 8 - header_len
    metadata = header.pop("__metadata__", None) or {}
    tensors: dict[str, TensorMeta] = {}
    furthest = 0
    for name, entry in header.items():
        try:
            dtype = str(entry["dtype"])
            shape = tuple(int(d) for d in entry["shape"])
            start, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as err:
            raise CorruptModelError(
                f"{path}: damaged safetensors header entry {name!r}; " + _redownload_hint(),
                path=path,
                error_code="corrupt",
            ) from err
        count = 1
        for dim in shape:
            count *= dim
        width = _DTYPE_BYTES.get(dtype)
        if start < 0 or end < start or (width is not None and end - start != count * width):
            raise CorruptModelError(
                f"{path}: tensor {name!r} has an inconsistent byte range; " + _redownload_hint(),
                path=path,
                error_code="corrupt",
            )
        furthest = max(furthest, end)
        tensors[name] = TensorMeta(dtype=dtype, shape=shape, start=start, end=end)
    if furthest > data_bytes:
        raise CorruptModelError(
            f"{path}: truncated: the tensors need {furthest} bytes of data but the file holds "
            f"{data_bytes} (an interrupted download?); " + _redownload_hint(),
            path=path,
            error_code="corrupt",
        )
    return SafetensorsHeader(
        path=path,
        tensors=tensors,
        metadata={str(k): str(v) for k, v in dict(metadata).items()},
        data_bytes=data_bytes,
    )


def _unwrap(obj: Any, path: Path) -> dict[str, Any]:
    """Find the tensor dict inside a pickled checkpoint's usual wrappers."""
    import torch

    # Original SD checkpoints nest weights under "state_dict"; Real-ESRGAN .pth files under
    # "params_ema" (preferred: the averaged weights) or "params".
    for key in ("state_dict", "params_ema", "params", "model", "module"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            inner = obj[key]
            if any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping):
        raise ModelError(
            f"{path}: holds a {type(obj).__name__}, not a dictionary of tensors",
            path=path,
            error_code="unknown_format",
        )
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            out[str(key)] = value
        elif isinstance(value, Mapping):
            # IP-Adapter .bin files nest {"image_proj": {...}, "ip_adapter": {...}}; the
            # safetensors versions of the same weights use the flattened names.
            for inner_key, inner in value.items():
                if isinstance(inner, torch.Tensor):
                    out[f"{key}.{inner_key}"] = inner
    return out


def load_state_dict(path: Path | str, *, device: str = "cpu") -> dict[str, Any]:
    """Load a weights file as ``{name: tensor}``, never running code from it.

    Parameters
    ----------
    path : Path or str
        A ``.safetensors`` file, or a pickled ``.ckpt`` / ``.pt`` / ``.pth`` / ``.bin``.
    device : str
        Where the tensors go (``"cpu"`` by default).

    Returns
    -------
    dict[str, torch.Tensor]
        The tensors.  Wrappers such as ``{"state_dict": ...}`` or ``{"params_ema": ...}``
        are unwrapped.

    Raises
    ------
    ModelError
        Missing file, unknown extension, or a pickle that asks to run code (refused by
        ``torch.load(weights_only=True)``; the payload never runs).
    CorruptModelError
        A truncated or damaged file.
    BackendError
        torch or safetensors is not installed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ModelError(f"{path}: model file not found", path=path, error_code="missing")
    _import_torch()  # a clear error when the sd extra is missing
    if suffix in SAFETENSORS_SUFFIXES:
        read_safetensors_header(path)  # the cheap truncation check first
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device=device))
        except Exception as err:  # safetensors raises its own SafetensorError
            raise CorruptModelError(
                f"{path}: cannot read the tensors ({err}); " + _redownload_hint(),
                path=path,
                error_code="corrupt",
            ) from err
    if suffix in PICKLE_SUFFIXES:
        return _unwrap(_torch_load(path, device=device, mmap=False), path)
    raise ModelError(
        f"{path}: unknown weights format {suffix or '(no extension)'!r}; expected "
        f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)}",
        path=path,
        error_code="unknown_format",
    )


def tensor_shapes(path: Path | str) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Names and shapes of a weights file's tensors, plus its metadata.

    A ``.safetensors`` file is answered from its header alone.  A pickled file is opened
    with ``torch.load(weights_only=True, mmap=True)`` so its tensors are mapped, not read.

    Raises
    ------
    ModelError, CorruptModelError
        As :func:`load_state_dict`.
    """
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        header = read_safetensors_header(path)
        return {k: v.shape for k, v in header.tensors.items()}, dict(header.metadata)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not path.is_file():
            raise ModelError(f"{path}: model file not found", path=path, error_code="missing")
        tensors = _unwrap(_torch_load(path, device="cpu", mmap=True), path)
        return {k: tuple(v.shape) for k, v in tensors.items()}, {}
    return load_state_dict(path), {}  # raises the unknown-format error


def _torch_load(path: Path, *, device: str, mmap: bool) -> Any:
    """``torch.load(weights_only=True)`` with its failures turned into typed errors."""
    import pickle

    torch = _import_torch()
    try:
        try:
            return torch.load(path, map_location=device, weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            # mmap needs the zip format; legacy files are read plainly
            return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ModelError(
            f"{path}: refused: this pickled file asks to run code or to build objects other "
            "than tensors, and pickled code is never executed here; use a .safetensors "
            "version of the model instead",
            path=path,
            error_code="unsafe",
        ) from err
    except (EOFError, RuntimeError, OSError, ValueError) as err:
        raise CorruptModelError(
            f"{path}: cannot read this PyTorch file ({err}); " + _redownload_hint(),
            path=path,
            error_code="corrupt",
        ) from err


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as err:
        from engine.errors import BackendError

        raise BackendError(
            "PyTorch is needed to read this model file; install the `sd` extra: "
            "pip install 'apex-director[sd]'",
            backend_name="diffusers",
        ) from err
    return torch
