"""Read images safely: the pixel size is checked from the file header before decoding.

A "decompression bomb" is a small file whose header promises an enormous image (a
PNG of 100000 x 100000 zeros compresses to a few megabytes but decodes to 30 GB).
:func:`read_image_safely` reads only the header first (our own parser for PNG, JPEG,
WebP, BMP, GIF and TIFF, so the check needs no optional dependency; Pillow's lazy
``Image.open`` for any other format when Pillow is installed), refuses images over
``max_pixels`` pixels or ``max_side`` pixels on a side with a
:class:`~engine.errors.MediaInputError` that says what to do, and only then decodes
with OpenCV.  A missing, empty, truncated or unrecognised file is a
:class:`~engine.errors.MediaInputError` too.

Examples
--------
>>> image = read_image_safely("shot.png")  # doctest: +SKIP
>>> image.shape, image.dtype  # doctest: +SKIP
((432, 768, 3), dtype('uint8'))
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from engine.errors import MediaInputError

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_SIDE", "probe_image_size", "read_image_safely"]

log = logging.getLogger(__name__)

#: 80 megapixels: above any still a music video needs (8K UHD is 33 MP) yet far below
#: what would exhaust memory when decoded (80 MP RGB is 240 MB).
DEFAULT_MAX_PIXELS = 80_000_000
#: Longest side accepted (a 16384-pixel panorama is fine; 100000 is not).
DEFAULT_MAX_SIDE = 16_384

_HEADER_BYTES = 64


def _png(head: bytes, handle: BinaryIO) -> tuple[int, int] | None:
    del handle
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _gif(head: bytes, handle: BinaryIO) -> tuple[int, int] | None:
    del handle
    if head[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    width, height = struct.unpack("<HH", head[6:10])
    return width, height


def _bmp(head: bytes, handle: BinaryIO) -> tuple[int, int] | None:
    del handle
    if head[:2] != b"BM" or len(head) < 26:
        return None
    (dib_size,) = struct.unpack("<I", head[14:18])
    if dib_size == 12:  # BITMAPCOREHEADER (OS/2)
        width, height = struct.unpack("<HH", head[18:22])
        return width, height
    width, height = struct.unpack("<ii", head[18:26])
    return abs(width), abs(height)  # negative height means top-down rows


def _webp(head: bytes, handle: BinaryIO) -> tuple[int, int] | None:
    del handle
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP" or len(head) < 30:
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
        return width, height
    if chunk == b"VP8L":
        if head[20] != 0x2F:
            return None
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg(head: bytes, handle: BinaryIO) -> tuple[int, int] | None:
    if head[:2] != b"\xff\xd8":
        return None
    handle.seek(2)
    # Walk the marker segments up to the first start-of-frame (SOF0..SOF15 except the
    # DHT/JPG/DAC markers C4, C8, CC), which holds the frame size.
    while True:
        byte = handle.read(1)
        if not byte:
            return None
        if byte != b"\xff":
            continue
        marker = handle.read(1)
        while marker == b"\xff":  # fill bytes
            marker = handle.read(1)
        if not marker:
            return None
        code = marker[0]
        if code in (0x01, 0xD8) or 0xD0 <= code <= 0xD7:
            continue  # markers without a length
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            frame = handle.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return width, height
        if code == 0xDA:  # start of scan before any frame header: not a valid JPEG
            return None
        handle.seek(length - 2, 1)


def _tiff(head: bytes, handle: BinaryIO) -> tuple[int, int] | None:
    if head[:4] == b"II*\x00":
        order = "<"
    elif head[:4] == b"MM\x00*":
        order = ">"
    else:
        return None
    (ifd_offset,) = struct.unpack(order + "I", head[4:8])
    handle.seek(ifd_offset)
    count_bytes = handle.read(2)
    if len(count_bytes) < 2:
        return None
    (count,) = struct.unpack(order + "H", count_bytes)
    width = height = None
    for _ in range(count):
        entry = handle.read(12)
        if len(entry) < 12:
            return None
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag not in (256, 257):
            continue
        if kind == 3:  # SHORT
            (value,) = struct.unpack(order + "H", entry[8:10])
        elif kind == 4:  # LONG
            (value,) = struct.unpack(order + "I", entry[8:12])
        else:
            return None
        if tag == 256:
            width = value
        else:
            height = value
    if width is None or height is None:
        return None
    return width, height


_PARSERS = (_png, _jpeg, _webp, _bmp, _gif, _tiff)


def _pillow_size(path: Path) -> tuple[int, int] | None:
    """Header size through Pillow's lazy ``Image.open``, when Pillow is installed."""
    try:
        from PIL import Image
    except ImportError:
        return None
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                return int(width), int(height)
    except Image.DecompressionBombError:
        # Pillow refuses to even open it: certainly over our limit too.
        return (2**31 - 1, 2**31 - 1)
    except (OSError, ValueError, SyntaxError):
        return None


def probe_image_size(path: Path | str) -> tuple[int, int]:
    """The ``(width, height)`` an image file declares, read from its header only.

    Raises
    ------
    MediaInputError
        The file is missing, empty, or not an image whose header we can read.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaInputError(path, "image not found; check the path")
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEADER_BYTES)
            if not head:
                raise MediaInputError(path, "the image file is empty; re-export it")
            for parser in _PARSERS:
                handle.seek(0)
                try:
                    size = parser(head, handle)
                except (struct.error, OSError, ValueError):
                    size = None
                if size is not None:
                    return size
    except OSError as err:
        raise MediaInputError(path, f"cannot be read ({err.strerror}); check permissions") from err
    size = _pillow_size(path)
    if size is None:
        raise MediaInputError(
            path,
            "is not a readable image (PNG, JPEG, WebP, BMP, GIF or TIFF expected); "
            "re-export it in one of those formats",
        )
    return size


def read_image_safely(
    path: Path | str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
) -> np.ndarray:
    """Decode an image as RGB uint8 after checking its declared size.

    Parameters
    ----------
    path : Path or str
        The image file.
    max_pixels : int
        Most pixels (width x height) accepted; default 80 MP.
    max_side : int
        Longest side accepted, in pixels; default 16384.

    Returns
    -------
    numpy.ndarray
        ``(height, width, 3)`` uint8 RGB (alpha dropped, 16-bit scaled to 8-bit, EXIF
        orientation applied by OpenCV).

    Raises
    ------
    MediaInputError
        Missing, empty, truncated or unrecognised file; or an image larger than the
        limits (a possible decompression bomb), with what to do about it.
    """
    path = Path(path)
    width, height = probe_image_size(path)
    if width <= 0 or height <= 0:
        raise MediaInputError(path, f"declares an empty image ({width}x{height}); re-export it")
    if width * height > max_pixels or max(width, height) > max_side:
        raise MediaInputError(
            path,
            f"declares {width}x{height} pixels ({width * height / 1e6:.0f} MP), over the "
            f"safe limit of {max_pixels / 1e6:.0f} MP and {max_side} px per side; it may be a "
            "decompression bomb. Resize it below the limit (e.g. to 7680x4320) before using it",
        )
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise MediaInputError(
            path, "cannot be decoded (truncated or damaged?); re-export or replace it"
        )
    if image.shape[1] * image.shape[0] > max_pixels:  # pragma: no cover - header lied
        raise MediaInputError(path, "decoded larger than its header said; replace the file")
    log.debug("read %s (%dx%d)", path, image.shape[1], image.shape[0])
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
