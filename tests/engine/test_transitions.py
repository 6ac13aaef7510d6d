"""Transitions as pure frame functions: cut, crossfade, dips, whip pan."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.assembly.transitions import (
    TRANSITIONS,
    WHIP_DIRECTIONS,
    TransitionSpec,
    blend_transition,
)
from engine.errors import ParameterError

W, H = 320, 180


def _texture(seed: int) -> np.ndarray:
    """Detail along both axes (2x2-pixel random blocks)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (H // 2, W // 2, 3), dtype=np.uint8)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_NEAREST)


def _spec(kind: str, **kwargs: object) -> TransitionSpec:
    if kind == "cut":
        return TransitionSpec(kind="cut", **kwargs)  # type: ignore[arg-type]
    return TransitionSpec(kind=kind, duration_beats=2.0, **kwargs)  # type: ignore[arg-type]


def _detail(image: np.ndarray, axis: int) -> float:
    """Mean absolute difference between neighbours along ``axis`` (1: x, 0: y)."""
    return float(np.abs(np.diff(image.astype(np.int16), axis=axis)).mean())


# ----------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "wipe", "duration_beats": 1}, "kind='wipe'.*crossfade"),
        ({"kind": "crossfade"}, "exactly one of duration_beats and duration_seconds"),
        ({"kind": "crossfade", "duration_beats": 1, "duration_seconds": 1}, "exactly one"),
        ({"kind": "crossfade", "duration_beats": 0}, "duration_beats=0"),
        ({"kind": "crossfade", "duration_beats": 100}, "duration_beats=100.*64"),
        ({"kind": "crossfade", "duration_seconds": -1.0}, "duration_seconds=-1.0"),
        ({"kind": "whip_pan", "duration_beats": 1, "direction": "sideways"}, "direction="),
        ({"kind": "crossfade", "duration_beats": 1, "easing": "bounce"}, "easing='bounce'"),
        ({"kind": "whip_pan", "duration_beats": 1, "blur": 2.0}, "blur=2.0"),
    ],
)
def test_transition_spec_validates(kwargs: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        TransitionSpec(**kwargs)


def test_durations_in_beats_or_seconds() -> None:
    period = 60.0 / 124.0
    assert TransitionSpec(kind="crossfade", duration_beats=2).seconds(period) == pytest.approx(
        2 * period
    )
    assert TransitionSpec(kind="whip_pan", duration_beats=0.5).seconds(0.4) == pytest.approx(0.2)
    assert TransitionSpec(kind="dip_to_black", duration_seconds=0.75).seconds(period) == 0.75
    assert TransitionSpec(kind="cut").seconds(period) == 0.0
    assert TransitionSpec(kind="cut", duration_beats=1).seconds(period) == 0.0
    with pytest.raises(ParameterError, match="beat_period=0"):
        TransitionSpec(kind="crossfade", duration_beats=1).seconds(0)


def test_frames_must_match() -> None:
    a = _texture(0)
    spec = _spec("crossfade")
    with pytest.raises(ParameterError, match="incoming"):
        blend_transition(a, a[:, :-2], 0.5, spec)
    with pytest.raises(ParameterError, match="uint8"):
        blend_transition(a, a.astype(np.float32), 0.5, spec)


# ----------------------------------------------------------------------------- every kind


@pytest.mark.parametrize("kind", TRANSITIONS)
def test_ends_are_the_two_shots(kind: str) -> None:
    a, b = _texture(1), _texture(2)
    spec = _spec(kind)
    np.testing.assert_array_equal(blend_transition(a, b, 0.0, spec), a)
    np.testing.assert_array_equal(blend_transition(a, b, 1.0, spec), b)
    np.testing.assert_array_equal(blend_transition(a, b, -0.5, spec), a)  # clamped
    if kind in ("crossfade", "dip_to_black", "dip_to_white"):
        # continuous at the ends: within 1/255 just inside the window
        assert np.abs(blend_transition(a, b, 1e-3, spec).astype(int) - a).max() <= 1
        assert np.abs(blend_transition(a, b, 1 - 1e-3, spec).astype(int) - b).max() <= 1
    for p in (0.1, 0.5, 0.9):
        frame = blend_transition(a, b, p, spec)
        assert frame.shape == a.shape and frame.dtype == np.uint8


def test_cut_switches_at_half() -> None:
    a, b = _texture(1), _texture(2)
    spec = _spec("cut")
    assert blend_transition(a, b, 0.499, spec) is a
    assert blend_transition(a, b, 0.5, spec) is b


def test_crossfade_mixes_with_eased_weights() -> None:
    a = np.full((H, W, 3), 40, np.uint8)
    b = np.full((H, W, 3), 240, np.uint8)
    mid = blend_transition(a, b, 0.5, _spec("crossfade"))
    assert np.abs(mid.astype(int) - 140).max() <= 1
    # sine easing: a quarter of the way through, 14.6 % of the incoming shot
    quarter = blend_transition(a, b, 0.25, _spec("crossfade"))
    assert quarter[0, 0, 0] == pytest.approx(40 + 200 * 0.1464, abs=1)
    linear = blend_transition(a, b, 0.25, _spec("crossfade", easing="linear"))
    assert linear[0, 0, 0] == pytest.approx(90, abs=1)
    levels = [int(blend_transition(a, b, p / 20, _spec("crossfade"))[0, 0, 0]) for p in range(21)]
    assert levels == sorted(levels)


@pytest.mark.parametrize(("kind", "colour"), [("dip_to_black", 0), ("dip_to_white", 255)])
def test_dip_reaches_the_colour_at_half(kind: str, colour: int) -> None:
    a, b = _texture(3), _texture(4)
    spec = _spec(kind)
    assert (blend_transition(a, b, 0.5, spec) == colour).all()
    distance = [
        float(np.abs(blend_transition(a, b, p / 20, spec).astype(int) - colour).mean())
        for p in range(21)
    ]
    assert distance[:11] == sorted(distance[:11], reverse=True)  # fades to the colour
    assert distance[10:] == sorted(distance[10:])  # then from it
    # the first half shows only the outgoing shot, the second only the incoming one
    quarter = blend_transition(a, b, 0.25, spec).astype(float)
    assert np.corrcoef(quarter[..., 0].ravel(), a[..., 0].ravel())[0, 1] > 0.99
    three = blend_transition(a, b, 0.75, spec).astype(float)
    assert np.corrcoef(three[..., 0].ravel(), b[..., 0].ravel())[0, 1] > 0.99


# ----------------------------------------------------------------------------- whip pan


def _stripes(seed: int) -> np.ndarray:
    """Red changes only from column to column, green only from row to row."""
    rng = np.random.default_rng(seed)
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = np.repeat(rng.integers(0, 256, W // 2, dtype=np.uint8), 2)[None, :]
    image[..., 1] = np.repeat(rng.integers(0, 256, H // 2, dtype=np.uint8), 2)[:, None]
    return image


@pytest.mark.parametrize("direction", WHIP_DIRECTIONS)
def test_whip_pan_blurs_along_its_axis_at_mid_progress(direction: str) -> None:
    a, b = _stripes(5), _stripes(6)
    spec = _spec("whip_pan", direction=direction)
    # the channel whose detail lies along the whip, and the one whose detail lies across
    if direction in ("left", "right"):
        along, across = (lambda im: _detail(im[..., 0], 1)), (lambda im: _detail(im[..., 1], 0))
    else:
        along, across = (lambda im: _detail(im[..., 1], 0)), (lambda im: _detail(im[..., 0], 1))
    mid = blend_transition(a, b, 0.5, spec)
    assert along(mid) < 0.15 * along(a)  # smeared along the whip
    assert across(mid) > 0.9 * across(a)  # untouched across it
    early = blend_transition(a, b, 0.005, spec)
    assert along(early) > 0.7 * along(a)  # barely moving yet: barely blurred
    blur = [along(blend_transition(a, b, p, spec)) for p in (0.1, 0.3, 0.5)]
    assert blur[0] > blur[1] > blur[2]  # strongest at the cut point


@pytest.mark.parametrize(
    ("direction", "incoming_edge"),
    [("right", "right"), ("left", "left"), ("up", "top"), ("down", "bottom")],
)
def test_whip_pan_incoming_shot_enters_from_the_direction(
    direction: str, incoming_edge: str
) -> None:
    a = np.full((H, W, 3), 30, np.uint8)
    b = np.full((H, W, 3), 220, np.uint8)
    frame = blend_transition(a, b, 0.3, _spec("whip_pan", direction=direction)).astype(int)
    edges = {
        "left": frame[:, :4],
        "right": frame[:, -4:],
        "top": frame[:4],
        "bottom": frame[-4:],
    }
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
    assert edges[incoming_edge].mean() > 200
    assert edges[opposite[incoming_edge]].mean() < 50


def test_slow_whip_moves_by_sub_pixel_steps() -> None:
    # At the very start the strip moves by fractions of a pixel; the picture follows
    # smoothly instead of standing still and then jumping a whole pixel.
    a = np.zeros((H, W, 3), np.uint8)
    a[:, 150:170] = 255
    b = np.zeros_like(a)
    spec = _spec("whip_pan", direction="right", blur=0.0)
    xs = np.arange(W)
    centroids = []
    for k in range(1, 12):
        row = blend_transition(a, b, k / 400, spec)[0, :, 0].astype(float)
        centroids.append((row * xs).sum() / row.sum())
    steps = -np.diff(centroids)
    assert (steps > 0).all()  # moves every frame
    assert (steps < 0.95).all() and np.abs(steps - np.round(steps)).max() > 0.05
