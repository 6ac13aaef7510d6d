"""BT.709 limited-range Y'CbCr 4:2:0 (I420) frames: conversion, warps and mixes on planes.

The encoder wants yuv420p.  Converting every composed RGB frame costs about as much CPU
as warping it (swscale: ~5 ms per 1080p frame), and a bilinear warp of the three
planes of a 4:2:0 picture touches half the bytes of the RGB one.  So the renderer
converts each still **once** and does the per-frame work (the camera move, crossfades,
dips) on the planes, handing the encoder finished I420 frames.

An I420 frame here is one contiguous ``(height * 3 // 2, width)`` uint8 array: the Y
plane, then Cb and Cr, each ``(height // 2) * (width // 2)`` bytes (PyAV's ``yuv420p``
ndarray layout).  Chroma samples are centred between their four luma samples (the
2x2 average), and warps place them there too.

The matrix is BT.709 (Kr = 0.2126, Kb = 0.0722), limited ("TV") range: Y' in 16..235,
Cb/Cr in 16..240 around 128, as the stream's VUI says.
"""

from __future__ import annotations

import numpy as np

from engine.errors import ParameterError

__all__ = [
    "BLACK",
    "WHITE",
    "i420_planes",
    "i420_to_rgb",
    "new_i420",
    "rgb_to_i420",
    "warp_i420",
]

_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB
_Y_SCALE, _C_SCALE = 219.0 / 255.0, 224.0 / 255.0
# Rows: Y', Cb, Cr from R, G, B (0..255) plus offset.
_RGB_TO_YCC = np.array(
    [
        [_KR * _Y_SCALE, _KG * _Y_SCALE, _KB * _Y_SCALE, 16.0],
        [
            -_KR / (2 * (1 - _KB)) * _C_SCALE,
            -_KG / (2 * (1 - _KB)) * _C_SCALE,
            0.5 * _C_SCALE,
            128.0,
        ],
        [
            0.5 * _C_SCALE,
            -_KG / (2 * (1 - _KR)) * _C_SCALE,
            -_KB / (2 * (1 - _KR)) * _C_SCALE,
            128.0,
        ],
    ],
    dtype=np.float64,
)
BLACK = (16.0, 128.0, 128.0)
WHITE = (235.0, 128.0, 128.0)


def new_i420(width: int, height: int) -> np.ndarray:
    """An uninitialised I420 frame."""
    if width % 2 or height % 2:
        raise ParameterError("size", (width, height), "an even width and height for 4:2:0")
    return np.empty((height * 3 // 2, width), dtype=np.uint8)


def i420_planes(frame: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Views of the Y, Cb and Cr planes of an I420 ``frame`` (writable, contiguous)."""
    if frame.shape != (height * 3 // 2, width) or frame.dtype != np.uint8:
        raise ParameterError(
            "frame", (frame.shape, frame.dtype), f"a ({height * 3 // 2}, {width}) uint8 I420 frame"
        )
    quarter = (height // 2) * (width // 2)
    flat = frame.reshape(-1)
    luma = width * height
    return (
        flat[:luma].reshape(height, width),
        flat[luma : luma + quarter].reshape(height // 2, width // 2),
        flat[luma + quarter :].reshape(height // 2, width // 2),
    )


def rgb_to_i420(rgb: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` uint8 RGB (full range) to a BT.709 limited-range I420 frame.

    Chroma is the mean of each 2x2 block; everything is computed in float and rounded
    once.  About 15 ms at 1080p: meant for stills, once each, not for every frame.
    """
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ParameterError("rgb", (rgb.shape, rgb.dtype), "an (h, w, 3) uint8 image")
    height, width = rgb.shape[:2]
    out = new_i420(width, height)
    y, cb, cr = i420_planes(out, width, height)
    ycc = cv2.transform(rgb.astype(np.float32), _RGB_TO_YCC.astype(np.float32))
    np.copyto(y, np.clip(ycc[..., 0] + 0.5, 0, 255).astype(np.uint8), casting="unsafe")
    chroma = cv2.resize(ycc[..., 1:], (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    np.copyto(cb, np.clip(chroma[..., 0] + 0.5, 0, 255).astype(np.uint8))
    np.copyto(cr, np.clip(chroma[..., 1] + 0.5, 0, 255).astype(np.uint8))
    return out


def i420_to_rgb(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """The inverse of :func:`rgb_to_i420` (chroma upsampled bilinearly), for checks and
    previews of I420 frames."""
    import cv2

    y, cb, cr = i420_planes(frame, width, height)
    size = (width, height)
    ycc = np.dstack(
        [
            y.astype(np.float32),
            cv2.resize(cb, size, interpolation=cv2.INTER_LINEAR).astype(np.float32),
            cv2.resize(cr, size, interpolation=cv2.INTER_LINEAR).astype(np.float32),
        ]
    )
    inverse = np.linalg.inv(np.vstack([_RGB_TO_YCC, [0.0, 0.0, 0.0, 1.0]]))[:3]
    rgb = cv2.transform(ycc, inverse.astype(np.float32))
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def warp_i420(
    source: np.ndarray,
    matrix: np.ndarray,
    *,
    source_size: tuple[int, int],
    out: np.ndarray,
    out_size: tuple[int, int],
) -> np.ndarray:
    """Warp every plane of the I420 frame ``source`` by the luma ``matrix`` into ``out``.

    ``matrix`` is the 2x3 affine map from source to output luma pixel indices (the one
    :func:`~engine.assembly.motion.motion_transform` gives for RGB); chroma planes get
    the same map in their own half-resolution coordinates, where chroma sample ``i``
    sits at luma ``2 i + 0.5``.  Bilinear, edge pixels replicated, as the RGB warp.
    """
    import cv2

    src_w, src_h = source_size
    out_w, out_h = out_size
    planes = i420_planes(source, src_w, src_h)
    targets = i420_planes(out, out_w, out_h)
    m = np.asarray(matrix, dtype=np.float64)
    chroma = m.copy()
    # X = 2 Xc + 0.5 and x = 2 xc + 0.5 in  X = a x + b y + t  =>  Xc = a xc + b yc + t'.
    chroma[:, 2] = (m[:, 0] * 0.5 + m[:, 1] * 0.5 + m[:, 2] - 0.5) / 2.0
    for index, (plane, target) in enumerate(zip(planes, targets, strict=True)):
        size = (out_w, out_h) if index == 0 else (out_w // 2, out_h // 2)
        cv2.warpAffine(
            plane,
            m if index == 0 else chroma,
            size,
            dst=target,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return out
