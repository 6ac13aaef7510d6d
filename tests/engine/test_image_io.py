from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import MediaInputError
from engine.generation.image_io import probe_image_size, read_image_safely
from engine.generation.stills import read_rgb


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png_of_zeros(path: Path, width: int, height: int, *, bit_depth: int, colour_type: int) -> None:
    """A complete, valid PNG of black pixels, compressed in a streaming way (tiny on disk)."""
    channels = {0: 1, 2: 3}[colour_type]
    row = b"\x00" + bytes((width * channels * bit_depth + 7) // 8)  # filter byte + pixels
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def _write(path: Path, image: np.ndarray) -> Path:
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def _gradient(width: int = 64, height: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 4 % 256, y * 5 % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def test_header_that_claims_100000_squared_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(1 + 300_000) * 4)  # only a few rows: decoding would fail late
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )
    assert bomb.stat().st_size < 10_000
    with pytest.raises(MediaInputError, match=r"100000x100000 .*decompression bomb.*Resize"):
        read_image_safely(bomb)


def test_complete_valid_100_megapixel_png_of_zeros_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "zeros.png"
    _png_of_zeros(bomb, 10_000, 10_000, bit_depth=1, colour_type=0)
    assert bomb.stat().st_size < 100_000  # 100 MP in a few kB
    assert probe_image_size(bomb) == (10_000, 10_000)
    with pytest.raises(MediaInputError, match="100 MP"):
        read_image_safely(bomb)


def test_limits_are_parameters(tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    _png_of_zeros(small, 300, 200, bit_depth=8, colour_type=2)
    assert read_image_safely(small).shape == (200, 300, 3)
    with pytest.raises(MediaInputError, match="decompression bomb"):
        read_image_safely(small, max_pixels=50_000)
    with pytest.raises(MediaInputError, match="250 px per side"):
        read_image_safely(small, max_side=250)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_header_sizes_and_decoding_for_every_format(tmp_path: Path, suffix: str) -> None:
    image = _gradient(64, 48)
    path = _write(tmp_path / f"a{suffix}", image)
    assert probe_image_size(path) == (64, 48)
    decoded = read_image_safely(path)
    assert decoded.shape == (48, 64, 3) and decoded.dtype == np.uint8
    if suffix in (".png", ".bmp", ".tif"):  # lossless formats round-trip exactly
        np.testing.assert_array_equal(decoded, image)


def test_lossless_webp_header_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "lossless.webp"
    ok, data = cv2.imencode(".webp", _gradient(70, 30), [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert ok
    path.write_bytes(data.tobytes())
    assert path.read_bytes()[12:16] == b"VP8L"
    assert probe_image_size(path) == (70, 30)


def test_unreadable_files_are_media_input_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaInputError, match="not found"):
        read_image_safely(tmp_path / "missing.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(MediaInputError, match="empty"):
        read_image_safely(empty)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    with pytest.raises(MediaInputError, match="not a readable image"):
        read_image_safely(text)
    good = _write(tmp_path / "good.png", _gradient())
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(MediaInputError, match="cannot be decoded"):
        read_image_safely(truncated)


def test_stills_read_rgb_skips_a_bomb_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bomb = tmp_path / "bomb.png"
    _png_of_zeros(bomb, 10_000, 10_000, bit_depth=1, colour_type=0)
    with caplog.at_level("WARNING"):
        assert read_rgb(bomb) is None
    assert "decompression bomb" in caplog.text
    good = _write(tmp_path / "good.png", _gradient())
    np.testing.assert_array_equal(read_rgb(good), _gradient())
