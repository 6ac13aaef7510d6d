from __future__ import annotations

from pathlib import Path

import pytest

from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
from tests.media import write_wav


@pytest.fixture(scope="session")
def short_song(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 44 s synthesized song with four sections of 4-8 bars and known beats."""
    spec = SongSpec(
        tempo=132.0,
        beats_per_bar=4,
        sections=(
            SectionSpec(label="intro", bars=4, energy=0.3),
            SectionSpec(label="verse", bars=8, energy=0.55),
            SectionSpec(label="chorus", bars=8, energy=0.9),
            SectionSpec(label="outro", bars=4, energy=0.35),
        ),
        seed=7,
    )
    song = synthesize_song(spec)
    path = tmp_path_factory.mktemp("songs") / "short_song.wav"
    write_wav(path, song.audio, song.sample_rate)
    return path, song.truth


@pytest.fixture(scope="session")
def tiny_song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 19 s song: three phrases of four bars."""
    spec = SongSpec(
        tempo=150.0, sections=(SectionSpec(label="verse", bars=12, energy=0.6),), seed=3
    )
    song = synthesize_song(spec)
    path = tmp_path_factory.mktemp("songs") / "tiny_song.wav"
    return write_wav(path, song.audio, song.sample_rate)
