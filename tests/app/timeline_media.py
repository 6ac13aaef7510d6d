"""Media for the timeline and preview tests: a synthesized song, its plan and stills.

The song comes from :mod:`engine.audio.synth`, whose ground truth (every beat, bar and
section) stands in for the analyser's result here: the analyser has its own tests
(tests/engine), and these tests are about the GUI drawing and editing a known grid.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter

from engine.api import AudioAnalysis, AudioSection, BeatMarker, TimelineDocument, plan_shots
from engine.api import timeline_from_plan as _timeline_from_plan
from engine.audio.synth import SectionSpec, SongSpec, synthesize_song

GRADE = {"schema": 1, "primary": {"exposure": 0.6, "saturation": 0.4}}


def write_song(folder: Path) -> tuple[Path, AudioAnalysis]:
    """A 10-bar 120 BPM song (intro, verse, chorus) as 16-bit WAV, and its analysis."""
    spec = SongSpec(
        tempo=120.0,
        sample_rate=16000,
        lead_in=0.25,
        seed=3,
        sections=(
            SectionSpec(label="intro", bars=2, energy=0.3),
            SectionSpec(label="verse", bars=4, energy=0.6),
            SectionSpec(label="chorus", bars=4, energy=0.9),
        ),
    )
    song = synthesize_song(spec)
    path = folder / "song.wav"
    pcm = (np.clip(song.audio.T, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(song.sample_rate)
        handle.writeframes(pcm.tobytes())
    truth = song.truth
    bar = 0
    beats = []
    for time, beat in zip(truth["beats"], truth["beat_in_bar"], strict=True):
        bar += beat == 1
        beats.append(BeatMarker(time, 1.0, beat == 1, max(bar, 0), beat))
    sections = [
        AudioSection(s["start"], s["end"], s["label"], 1.0, s["energy"]) for s in truth["sections"]
    ]
    analysis = AudioAnalysis(
        duration=truth["duration"],
        tempo=truth["tempo"],
        key=truth["key"],
        time_signature=truth["time_signature"],
        sections=sections,
        beats=beats,
        spectral_features=None,
        sample_rate=song.sample_rate,
        analyzer_version="synth-truth",
    )
    return path, analysis


def write_stills(folder: Path, count: int) -> list[Path]:
    """``count`` 320x180 PNGs, each a different coloured gradient."""
    paths = []
    for i in range(count):
        image = QImage(320, 180, QImage.Format.Format_RGB32)
        painter = QPainter(image)
        gradient = QLinearGradient(QPointF(0, 0), QPointF(320, 180))
        gradient.setColorAt(0.0, QColor.fromHsv((i * 67) % 360, 200, 90))
        gradient.setColorAt(1.0, QColor.fromHsv((i * 67 + 120) % 360, 160, 220))
        painter.fillRect(image.rect(), gradient)
        painter.end()
        path = folder / f"still-{i:03d}.png"
        image.save(str(path))
        paths.append(path)
    return paths


def song_document(folder: Path) -> tuple[TimelineDocument, Path, AudioAnalysis]:
    """The planned edit of the synthesized song, graded with :data:`GRADE`."""
    audio, analysis = write_song(folder)
    shots = plan_shots(analysis, phrase_bars=2, min_shot_seconds=1.0)
    stills = write_stills(folder, len(shots.shots))
    document = _timeline_from_plan(
        shots,
        analysis,
        fps=30,
        still_paths=stills,
        audio_path=audio,
        transition_seconds=0.5,
        grade=GRADE,
    )
    return document, audio, analysis
