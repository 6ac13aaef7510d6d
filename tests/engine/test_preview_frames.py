"""Preview frames of a timeline document (the GUI's realtime frame server)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.api import (
    ColorGrader,
    MediaInputError,
    ParameterError,
    TimelineDocument,
    document_frame_server,
    plan_shots,
    timeline_from_plan,
)
from engine.audio.types import AudioAnalysis, AudioSection, BeatMarker

GRADE = {"schema": 1, "primary": {"exposure": 0.5, "saturation": 0.5}}


def _document(folder: Path) -> TimelineDocument:
    period = 0.5
    beats = [BeatMarker(i * period, 1.0, i % 4 == 0, i // 4 + 1, i % 4 + 1) for i in range(32)]
    analysis = AudioAnalysis(
        duration=16.0,
        tempo=120.0,
        key="A minor",
        time_signature="4/4",
        sections=[
            AudioSection(0.0, 8.0, "verse", 1.0, 0.5),
            AudioSection(8.0, 16.0, "chorus", 1.0, 0.9),
        ],
        beats=beats,
        spectral_features=None,
        sample_rate=22050,
        analyzer_version="test",
    )
    shots = plan_shots(analysis, phrase_bars=2, min_shot_seconds=1.0)
    stills = []
    rng = np.random.default_rng(0)
    for i in range(len(shots.shots)):
        image = np.full((72, 128, 3), (40 * i) % 200 + 30, dtype=np.uint8)
        image[:, :, 1] = rng.integers(0, 255, size=(72, 128), dtype=np.uint8)
        path = folder / f"still-{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        stills.append(path)
    return timeline_from_plan(
        shots, analysis, fps=30, still_paths=stills, transition_seconds=0.5, grade=GRADE
    )


def test_graded_frames_are_the_ungraded_frames_through_the_grade(tmp_path: Path) -> None:
    document = _document(tmp_path)
    graded = document_frame_server(document, width=64, height=36)
    plain = document_frame_server(document, width=64, height=36, graded=False)
    grader = ColorGrader.from_dict(GRADE)
    grader.prepare()
    for seconds in (0.0, 3.3, 9.1):
        index = round(seconds * 30)
        before, after = plain.frame_at(seconds), graded.frame_at(seconds)
        assert before.shape == after.shape == (36, 64, 3)
        assert np.array_equal(after, grader.grade(before, frame_index=index))
        assert not np.array_equal(after, before)
    assert graded.frame_count == document.frame_count


def test_bad_inputs_are_typed_errors(tmp_path: Path) -> None:
    document = _document(tmp_path)
    with pytest.raises(ParameterError, match="size"):
        document_frame_server(document, width=8, height=8)
    Path(document.video_clips[0].source.paths[0]).unlink()
    server = document_frame_server(document, width=64, height=36)
    with pytest.raises(MediaInputError, match="replace the still"):
        server.frame_at(0.0)
