"""Easing curves and the full motion effect (base move + shake + beat pulse)."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from engine.assembly.easing import EASINGS, ease, ease_speed
from engine.assembly.motion import (
    MOTION_KINDS,
    MOTIONS,
    MotionSpec,
    apply_motion,
    motion_matrix,
    motion_transform,
    pulse_envelope,
    render_motion,
    shake_offset,
)
from engine.audio.types import SpectralFeatures
from engine.errors import ParameterError

OUT = (320, 180)


def _texture(width: int, height: int, *, seed: int = 0) -> np.ndarray:
    """Smooth random texture: detail everywhere, no aliasing at these scales."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _to_still(matrix: np.ndarray, x: float, y: float) -> tuple[float, float]:
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))
    sx, sy, _ = inverse @ np.array([x, y, 1.0])
    return float(sx), float(sy)


# ----------------------------------------------------------------------------- easing


@pytest.mark.parametrize("name", EASINGS)
def test_easing_endpoints_and_monotonic(name: str) -> None:
    assert ease(name, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert ease(name, 1.0) == pytest.approx(1.0, abs=1e-12)
    values = [ease(name, i / 200) for i in range(201)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values))
    assert ease(name, -3.0) == ease(name, 0.0) and ease(name, 7.0) == ease(name, 1.0)
    assert 0.0 <= ease_speed(name, 0.37) <= 1.0 + 1e-9


def test_easing_shapes() -> None:
    assert ease("linear", 0.3) == pytest.approx(0.3)
    assert ease("ease_in", 0.5) == pytest.approx(0.125)
    assert ease("ease_out", 0.5) == pytest.approx(0.875)
    for name in ("ease_in_out", "smoothstep", "sine"):
        assert ease(name, 0.5) == pytest.approx(0.5)
        assert ease(name, 0.25) + ease(name, 0.75) == pytest.approx(1.0)  # symmetric
        assert ease_speed(name, 0.5) == pytest.approx(1.0, abs=1e-3)  # fastest mid-way
        assert ease_speed(name, 0.0) < 0.01  # starts at rest


def test_unknown_easing_is_rejected() -> None:
    with pytest.raises(ParameterError, match=r"easing='bounce'.*linear"):
        ease("bounce", 0.5)
    with pytest.raises(ParameterError, match="easing='bounce'"):
        MotionSpec(easing="bounce")


# ----------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "spin"}, "kind='spin'"),
        ({"amount": 1.5}, "amount=1.5.*0..1"),
        ({"amount": -0.1}, "amount=-0.1"),
        ({"start_rect": (0.0, 0.0, 0.5, 0.5)}, "end_rect=None.*both"),
        (
            {"start_rect": (0, 0, 1, 1), "end_rect": (0.2, 0.2, 0.5, 0.4)},
            "end_rect.*width == height",
        ),
        ({"start_rect": (0, 0, 1, 1), "end_rect": (0.7, 0.2, 0.5, 0.5)}, "inside the picture"),
        ({"start_rect": (0, 0, 1, 1), "end_rect": (0, 0, 0, 0)}, "width and height in"),
        ({"kind": "zoom_in", "start_rect": (0, 0, 1, 1), "end_rect": (0, 0, 1, 1)}, "ken_burns"),
        ({"seed": -1}, "seed=-1"),
        ({"shake": 500.0}, "shake=500.0"),
        ({"shake_frequency": 0.0}, "shake_frequency=0.0"),
        ({"pulse": 0.9}, "pulse=0.9"),
        ({"pulse_decay": 0.0}, "pulse_decay=0.0"),
        ({"pulse_source": "treble"}, "pulse_source='treble'.*beats"),
    ],
)
def test_motion_spec_validates(kwargs: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        MotionSpec(**kwargs)


def test_motion_spec_is_frozen_and_keyword_only() -> None:
    spec = MotionSpec(kind="zoom_in")
    with pytest.raises(AttributeError):
        spec.kind = "zoom_out"  # type: ignore[misc]
    with pytest.raises(TypeError):
        MotionSpec("zoom_in")  # type: ignore[misc]


def test_seeded_ken_burns_is_deterministic_and_varied() -> None:
    assert MotionSpec(seed=3).rects() == MotionSpec(seed=3).rects()
    moves = {MotionSpec(seed=s, amount=0.2).rects() for s in range(12)}
    assert len(moves) == 12
    for start, end in moves:
        for x, y, w, h in (start, end):
            assert w == pytest.approx(h) and x >= 0 and y >= 0 and x + w <= 1 and y + h <= 1
    given = ((0.0, 0.0, 1.0, 1.0), (0.5, 0.5, 0.5, 0.5))
    assert MotionSpec(start_rect=given[0], end_rect=given[1]).rects() == given


# ----------------------------------------------------------------------------- legacy moves


@pytest.mark.parametrize("motion", MOTIONS)
def test_legacy_moves_unchanged(motion: str) -> None:
    # The issue-2 matrices, pinned: scale about the centre, pans across the margin.
    width, height, amount = OUT[0], OUT[1], 0.1
    for progress in (0.0, 0.3, 1.0):
        m = motion_matrix(motion, progress, width=width, height=height, amount=amount)
        scale = {
            "zoom_in": 1 + amount * progress,
            "zoom_out": 1 + amount * (1 - progress),
            "static": 1.0,
        }.get(motion, 1 + amount)
        margin = (scale - 1) * width / 2
        shift = {"pan_right": margin * (1 - 2 * progress), "pan_left": margin * (2 * progress - 1)}
        cx, cy = (width - 1) / 2, (height - 1) / 2
        expected = [
            [scale, 0, cx - scale * cx + shift.get(motion, 0.0)],
            [0, scale, cy - scale * cy],
        ]
        np.testing.assert_allclose(m, expected, atol=1e-12)
        # The new renderer reproduces the same move exactly for the same names.
        new = motion_transform(
            MotionSpec(kind=motion, amount=amount),
            time=progress * 4.0,
            shot_start=0.0,
            shot_end=4.0,
            still_size=OUT,
            out_size=OUT,
        )
        np.testing.assert_allclose(new, m, atol=1e-9)


def test_legacy_frames_match_render_motion() -> None:
    still = _texture(*OUT)
    for motion in ("zoom_in", "pan_left"):
        old = apply_motion(still, motion, 0.4, amount=0.1)
        new = render_motion(
            still,
            MotionSpec(kind=motion, amount=0.1),
            time=0.4,
            shot_start=0.0,
            shot_end=1.0,
            out_size=OUT,
        )
        assert np.abs(old.astype(int) - new).max() <= 1


# ----------------------------------------------------------------------------- no border


@pytest.mark.parametrize(
    "still_size",
    [OUT, (352, 198), (160, 90), (400, 180), (320, 240)],
    ids=["same", "1.1x", "smaller", "wider", "taller"],
)
def test_no_border_ever_shown(still_size: tuple[int, int]) -> None:
    beats = np.arange(0.0, 6.0, 0.47)
    width, height = OUT
    for kind in MOTION_KINDS:
        for seed in (0, 1):
            spec = MotionSpec(
                kind=kind, amount=0.3, seed=seed, shake=60.0, shake_frequency=5.0, pulse=0.3
            )
            for time in np.linspace(0.0, 6.0, 97):
                m = motion_transform(
                    spec,
                    time=float(time),
                    shot_start=0.0,
                    shot_end=6.0,
                    still_size=still_size,
                    out_size=OUT,
                    beat_times=beats,
                )
                for x, y in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)):
                    sx, sy = _to_still(m, x, y)
                    assert -0.5 <= sx <= still_size[0] - 0.5, (kind, seed, time, sx)
                    assert -0.5 <= sy <= still_size[1] - 0.5, (kind, seed, time, sy)


def test_any_still_size_gives_the_output_size() -> None:
    spec = MotionSpec(kind="ken_burns", seed=4, shake=10.0)
    for size in ((352, 198), (160, 90), (400, 180)):
        still = _texture(*size)
        frame = render_motion(still, spec, time=1.0, shot_start=0.0, shot_end=2.0, out_size=OUT)
        assert frame.shape == (OUT[1], OUT[0], 3) and frame.dtype == np.uint8
    still = _texture(*OUT)
    static = MotionSpec(kind="static")
    same = render_motion(still, static, time=1.0, shot_start=0.0, shot_end=2.0, out_size=OUT)
    assert same is still  # nothing moves: no resampling at all
    with pytest.raises(ParameterError, match="still"):
        render_motion(still[..., 0], static, time=0, shot_start=0, shot_end=1, out_size=OUT)
    with pytest.raises(ParameterError, match="shot_end"):
        render_motion(still, static, time=0, shot_start=1, shot_end=1, out_size=OUT)


# ----------------------------------------------------------------------------- smoothness


def test_slow_pan_is_sub_pixel_smooth() -> None:
    # pan_right over 0.1 zoom margin: 32 px of travel in 108 frames, ~0.3 px a frame.
    width, height = OUT
    yy, xx = np.mgrid[0:height, 0:width]
    dot = 255.0 * np.exp(-((xx - 160.0) ** 2 + (yy - 90.0) ** 2) / (2 * 3.0**2))
    still = np.repeat(dot[..., None], 3, axis=2).astype(np.uint8)
    texture = _texture(*OUT, seed=2)
    spec = MotionSpec(kind="pan_right", amount=0.1)
    frames, centroids = [], []
    for frame in range(108):
        kw = {"time": frame / 30.0, "shot_start": 0.0, "shot_end": 107 / 30.0, "out_size": OUT}
        image = render_motion(still, spec, **kw)[..., 0].astype(np.float64)
        centroids.append((image * xx).sum() / image.sum())
        frames.append(render_motion(texture, spec, **kw).astype(np.float64))
    steps = np.diff(centroids)
    assert steps.mean() == pytest.approx(-32.0 / 107, rel=0.02)  # the picture slides left
    assert np.abs(steps - steps.mean()).max() < 0.08  # steady, no integer-pixel jumps
    assert (np.abs(steps) > 0.1).all()  # never a frame that stands still
    mad = np.array([np.abs(b - a).mean() for a, b in itertools.pairwise(frames)])
    assert mad.std() / mad.mean() < 0.15
    assert mad.max() < 2 * mad.min()


def test_shake_is_deterministic_bounded_and_smooth() -> None:
    spec = MotionSpec(kind="static", shake=20.0, shake_frequency=2.0, seed=7)
    times = np.arange(0.0, 30.0, 1 / 30)
    path = np.array([shake_offset(spec, t, height=1080) for t in times])
    again = np.array(
        [shake_offset(MotionSpec(kind="static", shake=20.0, seed=7), t, height=1080) for t in times]
    )
    np.testing.assert_array_equal(path, again)
    other = np.array([shake_offset(MotionSpec(shake=20.0, seed=8), t, height=1080) for t in times])
    assert np.abs(path - other).mean() > 2.0
    assert np.abs(path).max() <= 1.25 * 20.0
    assert path.std(axis=0).min() > 4.0  # it does shake
    step = np.abs(np.diff(path, axis=0))
    # Bounded velocity: at 2 Hz, 20 px, a frame moves at most a few px (white jitter: ~20).
    assert step.max() < 3.0 * 20.0 * 2.0 / 30.0
    # Smooth: the velocity changes little from frame to frame.
    assert np.abs(np.diff(path, 2, axis=0)).max() < 0.5 * step.max()
    # Scales with the output: pixels of a 1080-line frame.
    assert shake_offset(spec, 3.3, height=540) == pytest.approx(
        tuple(v / 2 for v in shake_offset(spec, 3.3, height=1080))
    )


# ----------------------------------------------------------------------------- pulse


def test_beat_pulse_peaks_on_beats_and_decays() -> None:
    beats = [1.0, 1.5, 2.0]
    spec = MotionSpec(kind="static", pulse=0.1, pulse_decay=0.1)
    assert pulse_envelope(spec, 0.5, beat_times=beats) == 0.0  # before the first beat
    assert pulse_envelope(spec, 1.0, beat_times=beats) == pytest.approx(1.0)
    assert pulse_envelope(spec, 1.1, beat_times=beats) == pytest.approx(math.exp(-1), rel=1e-6)
    decay = [pulse_envelope(spec, 1.0 + i / 60, beat_times=beats) for i in range(28)]
    assert all(b < a for a, b in itertools.pairwise(decay))
    # a frame that shows a time just before the beat already kicks
    assert pulse_envelope(spec, 1.49, beat_times=beats) == pytest.approx(1.0)

    def scale(time: float) -> float:
        m = motion_transform(
            spec,
            time=time,
            shot_start=0.0,
            shot_end=3.0,
            still_size=OUT,
            out_size=OUT,
            beat_times=beats,
        )
        return float(m[0, 0])

    assert scale(1.5) == pytest.approx(1.1)
    assert scale(1.45) < scale(1.5) and scale(1.7) < scale(1.5)
    assert scale(0.5) == pytest.approx(1.0)
    with pytest.raises(ParameterError, match="beat_times"):
        pulse_envelope(spec, 1.0)


def test_curve_pulse_follows_the_spectral_curve() -> None:
    fps = 30.0
    onset = np.zeros(90)
    onset[30] = 0.8
    zeros = np.zeros(90)
    curves = SpectralFeatures(
        fps=fps, rms=zeros, onset=onset, low=zeros, mid=zeros, high=zeros, centroid=zeros
    )
    spec = MotionSpec(kind="static", pulse=0.1, pulse_decay=0.2, pulse_source="onset")
    values = [pulse_envelope(spec, k / fps, curves=curves) for k in range(90)]
    assert int(np.argmax(values)) == 30
    assert values[30] == pytest.approx(0.8)
    assert values[29] == 0.0
    assert values[36] == pytest.approx(0.8 * math.exp(-0.2 / 0.2), rel=1e-6)
    with pytest.raises(ParameterError, match="curves"):
        pulse_envelope(spec, 1.0)
