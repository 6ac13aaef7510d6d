from __future__ import annotations

import numpy as np
import pytest

from engine.assembly.frame_renderer import FrameRenderer, FrameStyle
from engine.assembly.timeline import Timeline
from engine.planning.shots import Shot, ShotList


def _shots(transition: str) -> ShotList:
    def shot(index: int, start: float, end: float, kind: str) -> Shot:
        return Shot(
            index=index,
            start=start,
            end=end,
            start_bar=index + 1,
            start_beat=1,
            section="verse",
            section_index=index,
            energy=0.5,
            prompt="p",
            seed=index,
            transition_in=kind,
            motion="zoom_in",
        )

    return ShotList(
        shots=(shot(0, 0.0, 4.0, "cut"), shot(1, 4.0, 8.0, transition)), duration=8.0, tempo=120.0
    )


def _stills() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)
    return [base, 255 - base]


def test_beat_pulse_kicks_on_the_beats() -> None:
    shots = _shots("cut")
    timeline = Timeline(shots, fps=25, crossfade_seconds=0.5)
    stills = _stills()
    beats = tuple(np.arange(0.5, 8.0, 0.5))
    pulsed = FrameRenderer(
        shots,
        timeline,
        stills.__getitem__,
        FrameStyle(motion_amount=0.0, beat_pulse=0.05, beat_times=beats),
    )
    still = FrameRenderer(shots, timeline, stills.__getitem__, FrameStyle(motion_amount=0.0))
    change = [
        float(np.abs(pulsed.render(f).astype(int) - pulsed.render(f - 1)).mean())
        for f in range(1, 99)
    ]
    on_beat = [change[f - 1] for f in range(1, 99) if f % 12 == 0 or f % 13 == 0]
    assert max(change) > 5 * np.median(change) + 1
    assert max(on_beat) == pytest.approx(max(change))
    assert np.array_equal(still.render(30), still.render(31))  # no motion, no pulse: static


@pytest.mark.parametrize("kind", ["crossfade", "whip_pan", "dip_to_black", "dip_to_white"])
def test_section_transitions_are_rendered(kind: str) -> None:
    shots = _shots(kind)
    timeline = Timeline(shots, fps=25, crossfade_seconds=0.8)
    stills = _stills()
    renderer = FrameRenderer(
        shots, timeline, stills.__getitem__, FrameStyle(motion_amount=0.0, transition_seconds=0.8)
    )
    middle = renderer.render(100)  # the cut frame: halfway through the transition
    if kind == "dip_to_black":
        assert middle.mean() < 20
    elif kind == "dip_to_white":
        assert middle.mean() > 235
    else:
        assert not np.array_equal(middle, stills[0]) and not np.array_equal(middle, stills[1])
    assert np.array_equal(renderer.render(80), stills[0])
    assert np.array_equal(renderer.render(120), stills[1])


def test_grade_is_applied_last_with_the_frame_number() -> None:
    shots = _shots("cut")
    timeline = Timeline(shots, fps=25, crossfade_seconds=0.5)
    seen: list[int] = []

    def grade(frame: np.ndarray, index: int) -> np.ndarray:
        seen.append(index)
        return 255 - frame

    renderer = FrameRenderer(
        shots, timeline, _stills().__getitem__, FrameStyle(motion_amount=0.0, grade=grade)
    )
    assert np.array_equal(renderer.render(10), 255 - _stills()[0])
    assert seen == [10]
