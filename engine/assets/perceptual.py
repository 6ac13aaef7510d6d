"""Perceptual hashes of images, to find near-identical ones (re-encoded, resized).

The hash is the 64-bit pHash: the image in grey, shrunk to 32x32, its 2-D DCT, and one
bit per low-frequency coefficient (the 8x8 top-left block) saying whether it is above
their median.  Re-encoding and resizing move few bits; different pictures differ in
about half of them.  OpenCV and numpy are imported when a hash is computed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["hamming", "image_phash", "to_signed", "to_unsigned"]

_SIGN = 1 << 63


def image_phash(data: bytes) -> int | None:
    """The 64-bit pHash of an encoded image (PNG, JPEG, WebP...), or ``None`` if unreadable."""
    import cv2
    import numpy as np

    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        return None
    image: Any = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        return None
    small = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    # The DC term (overall brightness) is left out of the median, as in the usual pHash.
    bits = low > np.median(low[1:])
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    """How many of the 64 bits differ."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as SQLite's signed INTEGER."""
    return value - (1 << 64) if value & _SIGN else value


def to_unsigned(value: int) -> int:
    """Back from :func:`to_signed`."""
    return value + (1 << 64) if value < 0 else value
