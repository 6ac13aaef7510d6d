"""Still-image QC: each defect made on purpose is found with its measure; a clean picture passes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from engine.errors import MediaInputError, ParameterError
from engine.qa import QualityValidator
from engine.qa.image_checks import BANDING_HIGH, BLOCKING_HIGH, NOISE_HIGH, SHARPNESS_BLURRY


def _scene(w: int = 640, h: int = 480) -> np.ndarray:
    """Shapes, text and a gradient with a little grain: a sharp, clean picture."""
    import cv2

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([40 + 120 * xx / w, 60 + 100 * yy / h, 150 - 80 * xx / w], -1)
    img = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
    for i in range(25):
        colour = tuple(int(v) for v in rng.integers(20, 235, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if i % 2:
            size = (x + int(rng.integers(20, 120)), y + int(rng.integers(20, 120)))
            cv2.rectangle(img, (x, y), size, colour, -1)
        else:
            cv2.circle(img, (x, y), int(rng.integers(10, 60)), colour, -1, lineType=cv2.LINE_AA)
    cv2.putText(img, "APEX QC 123", (40, 240), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (230,) * 3, 3)
    return img


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    _ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _checks(report: object) -> set[str]:
    return {i.check for i in report.issues}  # type: ignore[attr-defined]


def test_clean_picture_passes(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "clean.png"
    cv2.imwrite(str(path), _scene())
    report = QualityValidator().validate_image(path, ["640x480"])
    assert report.passed and report.issues == [], [i.message for i in report.issues]
    assert report.overall_score > 0.9
    assert report.artifacts == []
    assert set(report.detailed_scores) >= {
        "resolution", "sharpness", "noise", "exposure", "contrast", "banding", "blocking",
        "colour_cast", "legal_range",
    }  # fmt: skip
    assert QualityValidator().detect_artifacts(path) == []


def test_blurred_picture_is_soft() -> None:
    import cv2

    sharp = QualityValidator().validate_image(_scene())
    blurred = QualityValidator().validate_image(cv2.GaussianBlur(_scene(), (0, 0), 3.0))
    assert sharp.measurements["sharpness"] > 2 * SHARPNESS_BLURRY
    assert blurred.measurements["sharpness"] < SHARPNESS_BLURRY / 5
    assert "sharpness" in _checks(blurred) and "sharpness" not in _checks(sharp)
    assert blurred.detailed_scores["sharpness"] < 0.1
    assert blurred.overall_score < sharp.overall_score
    assert any("regenerate" in r or "upscale" in r for r in blurred.recommendations)


def test_sharpness_is_measured_at_a_fixed_size() -> None:
    """A 2048 px picture reads like its own 1024 px reduction; an upscaled small picture
    reads soft."""
    import cv2

    from engine.qa.image_checks import sharpness

    big = cv2.cvtColor(_scene(2048, 1536), cv2.COLOR_RGB2GRAY)
    half = cv2.resize(big, (1024, 768), interpolation=cv2.INTER_AREA)
    assert sharpness(big) == pytest.approx(sharpness(half), rel=0.05)
    assert sharpness(big) > SHARPNESS_BLURRY
    upscaled = cv2.resize(_scene(320, 240), (2048, 1536), interpolation=cv2.INTER_CUBIC)
    gray = cv2.cvtColor(upscaled, cv2.COLOR_RGB2GRAY)
    assert sharpness(gray) < SHARPNESS_BLURRY


def test_blocky_picture_and_where() -> None:
    scene = _scene()
    report = QualityValidator().validate_image(_jpeg(scene, 5))
    assert report.measurements["blockiness"] > BLOCKING_HIGH
    assert "blocking" in _checks(report)
    # Only the right half compressed hard: the artifact region is on the right.
    half = scene.copy()
    half[:, 320:] = _jpeg(scene, 4)[:, 320:]
    found = QualityValidator().detect_artifacts(half)
    blocks = [a for a in found if a.kind == "blocking"]
    assert blocks, found
    for artifact in blocks:
        x, _y, w, _h = artifact.region
        assert x >= 256 and x + w <= 640 and 0 < artifact.severity <= 1
    assert QualityValidator().validate_image(_jpeg(scene, 95)).measurements["blockiness"] < 1.3


def test_noise_estimate_reads_the_added_sigma() -> None:
    rng = np.random.default_rng(7)
    flat = np.full((480, 640, 3), 120, np.uint8)
    noisy = np.clip(flat + rng.normal(0, 10.0, flat.shape), 0, 255).astype(np.uint8)
    report = QualityValidator().validate_image(noisy)
    # Luma of three independent noisy channels: sigma 10 * sqrt(.2126²+.7152²+.0722²).
    assert report.measurements["noise_sigma"] == pytest.approx(7.5, abs=0.8)
    assert report.measurements["noise_sigma"] > NOISE_HIGH and "noise" in _checks(report)


def test_banding_in_a_posterised_gradient() -> None:
    xx = np.tile(np.arange(640), (480, 1))
    smooth = ((xx * 200 // 640) + 20).astype(np.uint8)
    banded = (smooth // 12 * 12).astype(np.uint8)
    rgb = lambda g: np.repeat(g[:, :, None], 3, axis=2)  # noqa: E731
    clean = QualityValidator().validate_image(rgb(smooth))
    report = QualityValidator().validate_image(rgb(banded))
    assert clean.measurements["banding"] == 0.0
    assert report.measurements["banding"] > 2 * BANDING_HIGH and "banding" in _checks(report)
    assert any(a.kind == "banding" for a in report.artifacts)


def test_exposure_clipping_contrast_and_cast() -> None:
    img = _scene()
    img[:120] = 255
    report = QualityValidator().validate_image(img)
    clipped = next(i for i in report.issues if i.check == "exposure")
    assert clipped.measured == pytest.approx(25.0, abs=1.0)  # a quarter of the pixels
    assert any(a.kind == "clipped_highlights" and a.region[1] == 0 for a in report.artifacts)

    flat = np.full((200, 200, 3), 128, np.uint8)
    assert "contrast" in _checks(QualityValidator().validate_image(flat))

    import cv2

    gray = cv2.cvtColor(cv2.cvtColor(_scene(), cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    neutral = QualityValidator().validate_image(gray)
    warm = QualityValidator().validate_image(
        np.clip(gray.astype(int) + np.array([25, 0, -25]), 0, 255).astype(np.uint8)
    )
    assert "colour_cast" not in _checks(neutral)
    assert "colour_cast" in _checks(warm) and warm.measurements["cast_b"] > 10


def test_resolution_and_legal_range_against_standards() -> None:
    report = QualityValidator().validate_image(_scene(), ["hd"])
    issue = next(i for i in report.issues if i.check == "resolution")
    assert (
        issue.severity == "fail" and issue.measured == "640x480" and ">= 1920x1080" in issue.limit
    )
    assert not report.passed and report.overall_score <= 0.5
    assert any("apex-director upscale" in r for r in report.recommendations)
    portrait = QualityValidator().validate_image(np.full((1920, 1080, 3), 100, np.uint8), ["hd"])
    assert "resolution" not in _checks(portrait)
    full_range = np.zeros((1080, 1920, 3), np.uint8)
    full_range[:, 960:] = 255
    broadcast = QualityValidator().validate_image(full_range, ["broadcast"])
    assert "legal_range" in _checks(broadcast) and not broadcast.broadcast_compliant
    with pytest.raises(ParameterError, match="standards"):
        QualityValidator().validate_image(_scene(), ["ebu_r999"])


def _png_0x0(path: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def test_bad_images_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaInputError, match="empty"):
        QualityValidator().validate_image(_png_0x0(tmp_path / "zero.png"))
    with pytest.raises(MediaInputError, match="empty"):
        QualityValidator().validate_image(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(MediaInputError, match="empty"):
        QualityValidator().detect_artifacts(_png_0x0(tmp_path / "zero2.png"))
    with pytest.raises(MediaInputError, match="not found"):
        QualityValidator().validate_image(tmp_path / "missing.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(MediaInputError):
        QualityValidator().validate_image(broken)
