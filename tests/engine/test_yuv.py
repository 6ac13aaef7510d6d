"""Composing on BT.709 4:2:0 planes gives the picture the RGB path gives, converted."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from engine.assembly.encoder import EncodeSettings, VideoWriter
from engine.assembly.frame_renderer import FrameRenderer, FrameStyle
from engine.assembly.timeline import Timeline
from engine.assembly.transitions import TransitionSpec
from engine.assembly.yuv import i420_planes, i420_to_rgb, rgb_to_i420
from engine.planning.shots import Shot, ShotList

W, H = 192, 108


def _still(seed: int, *, cell: int = 4) -> np.ndarray:
    """Colour noise, a new colour every ``cell`` pixels, smoothly interpolated."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (H // cell, W // cell, 3), dtype=np.uint8)
    return cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC)  # detail, no aliasing


def _swscale(rgb: np.ndarray) -> np.ndarray:
    import av
    from av.video.reformatter import ColorRange, Colorspace

    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p",
        src_colorspace=Colorspace.ITU709,
        dst_colorspace=Colorspace.ITU709,
        src_color_range=ColorRange.JPEG,
        dst_color_range=ColorRange.MPEG,
    )
    return frame.to_ndarray()


def test_conversion_matches_swscale_bt709_limited_range() -> None:
    rgb = _still(1)
    ours, theirs = rgb_to_i420(rgb).astype(int), _swscale(rgb).astype(int)
    y, cb, cr = (p.astype(int) for p in i420_planes(rgb_to_i420(rgb), W, H))
    assert np.abs(ours[:H] - theirs[:H]).max() <= 1  # luma: rounding only
    # chroma: ours is the 2x2 mean, swscale's filter is a little wider; on this busy
    # picture (new colours every 4 pixels) they differ by 1.6 levels on average
    assert np.abs(ours[H:] - theirs[H:]).mean() < 2.0
    assert y.min() >= 16 and y.max() <= 235 and cb.min() >= 16 and cr.max() <= 240
    # pure colours land on the BT.709 code values
    red = rgb_to_i420(np.tile(np.array([255, 0, 0], np.uint8), (4, 4, 1)))
    assert [int(p[0, 0]) for p in i420_planes(red, 4, 4)] == [63, 102, 240]
    # and back (4:2:0 keeps a smooth picture's colours)
    import cv2

    smooth = cv2.GaussianBlur(rgb, (0, 0), 6)
    back = i420_to_rgb(rgb_to_i420(smooth), W, H).astype(int)
    assert np.abs(back - smooth).mean() < 1.0


def _shots(kind: str) -> ShotList:
    def shot(index: int, start: float, end: float, transition: str, motion: str) -> Shot:
        return Shot(
            index=index,
            start=start,
            end=end,
            start_bar=index + 1,
            start_beat=1,
            section="verse",
            section_index=0,
            energy=0.5,
            prompt="p",
            seed=index,
            transition_in=transition,
            motion=motion,
        )

    return ShotList(
        shots=(
            shot(0, 0.0, 2.0, "cut", "zoom_in"),
            shot(1, 2.0, 4.0, kind, "pan_left"),
            shot(2, 4.0, 6.0, "cut", "zoom_out"),
        ),
        duration=6.0,
        tempo=120.0,
    )


@pytest.mark.parametrize("kind", ["crossfade", "dip_to_black", "dip_to_white", "cut"])
def test_planes_give_the_rgb_picture(kind: str) -> None:
    shots = _shots(kind)
    # colour changing over ~12 pixels: a busy photo's chroma; the mix and the move are
    # computed on half-size chroma planes, which smooth finer colour detail a little
    stills = [_still(i, cell=12) for i in range(3)]
    style = FrameStyle(
        motion_amount=0.1,
        transition_seconds=0.5,
        beat_pulse=0.05,
        beat_times=tuple(np.arange(0.0, 6.0, 0.5)),
    )
    renderer = FrameRenderer(
        shots, Timeline(shots, fps=30.0, crossfade_seconds=0.5), stills.__getitem__, style
    )
    assert renderer.supports_i420
    for frame in (0, 17, 52, 56, 60, 63, 90, 119, 120, 150, 179):
        planes = renderer.render_i420(frame, (W, H)).astype(int)
        expected = rgb_to_i420(renderer.render(frame)).astype(int)
        diff = np.abs(planes - expected)
        # rounding-sized differences: the warp and the mix round on the planes, the
        # RGB path rounds in RGB and again in the conversion
        assert diff[:H].max() <= 2 and diff[:H].mean() < 0.4, frame  # luma
        assert diff[H:].max() <= 3 and diff[H:].mean() < 0.5, frame  # chroma


def test_whip_pans_and_grades_stay_in_rgb() -> None:
    shots = _shots("whip_pan")
    stills = [_still(i) for i in range(3)]
    timeline = Timeline(shots, fps=30.0, crossfade_seconds=0.5)
    assert not FrameRenderer(shots, timeline, stills.__getitem__, FrameStyle()).supports_i420
    graded = FrameStyle(grade=lambda frame, index: frame)
    assert not FrameRenderer(
        _shots("crossfade"), timeline, stills.__getitem__, graded
    ).supports_i420
    override = FrameStyle(transitions={1: TransitionSpec(kind="whip_pan", duration_seconds=0.5)})
    assert not FrameRenderer(_shots("cut"), timeline, stills.__getitem__, override).supports_i420


def test_writer_encodes_i420_frames_as_given(tmp_path: Path) -> None:
    import av

    rgb = np.tile(np.array([200, 30, 30], np.uint8), (64, 64, 1))
    settings = EncodeSettings(width=64, height=64, fps=Fraction(24), crf=0, speed="ultrafast")
    with VideoWriter(tmp_path / "red.mp4", settings) as writer:
        for _ in range(6):
            writer.write(rgb_to_i420(rgb))
    with av.open(str(tmp_path / "red.mp4")) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        assert (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range) == (1, 1, 1, 1)
        decoded = next(container.decode(stream)).to_ndarray()
    expected = 16 + 219 * (0.2126 * 200 + 0.7152 * 30 + 0.0722 * 30) / 255
    assert abs(float(decoded[:64].mean()) - expected) < 1.0


def test_ken_burns_with_shake_on_planes() -> None:
    """A seeded Ken Burns move with camera shake and a beat pulse: the planes give the
    RGB picture (the renderer's stills are frame-sized, as the loaders make them)."""
    from engine.assembly.motion import MotionSpec

    shots = _shots("crossfade")
    stills = [_still(i, cell=12) for i in range(3)]
    style = FrameStyle(
        motions={
            i: MotionSpec(kind="ken_burns", amount=0.15, seed=i, shake=20.0, pulse=0.03)
            for i in range(3)
        },
        beat_times=(0.5, 1.0, 2.0, 3.5),
    )
    renderer = FrameRenderer(
        shots, Timeline(shots, fps=30.0, crossfade_seconds=0.5), stills.__getitem__, style
    )
    for frame in (3, 30, 57, 60, 100):
        planes = renderer.render_i420(frame, (W, H)).astype(int)
        diff = np.abs(planes - rgb_to_i420(renderer.render(frame)).astype(int))
        assert diff[:H].max() <= 2 and diff[:H].mean() < 0.4, frame
        assert diff[H:].max() <= 3 and diff[H:].mean() < 0.5, frame
