from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engine.audio.analyzer as analyzer_module
import engine.audio.beats as beats_module
from engine.audio.analyzer import AudioAnalyzer
from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
from tests.media import write_wav


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = SongSpec(tempo=128.0, sections=(SectionSpec(label="verse", bars=8, energy=0.6),))
    synth = synthesize_song(spec)
    return write_wav(tmp_path_factory.mktemp("cache") / "s.wav", synth.audio, synth.sample_rate)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = beats_module.track_beats

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(beats_module, "track_beats", counting)
    return calls


def test_second_analysis_comes_from_the_cache(
    song: Path, tmp_path: Path, counted: list[int]
) -> None:
    analyzer = AudioAnalyzer(cache_dir=tmp_path / "cache")
    first = analyzer.analyze(song)
    second = analyzer.analyze(song)
    assert len(counted) == 1
    assert second.to_dict(precise=True) == first.to_dict(precise=True)
    assert second.spectral_features is not None and first.spectral_features is not None
    assert np.array_equal(second.spectral_features.onset, first.spectral_features.onset)


def test_new_analyser_version_or_parameters_invalidate(
    song: Path, tmp_path: Path, counted: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    AudioAnalyzer(cache_dir=tmp_path).analyze(song)
    AudioAnalyzer(cache_dir=tmp_path, sensitivity=0.9).analyze(song)
    monkeypatch.setattr(analyzer_module, "ANALYZER_VERSION", "999")
    AudioAnalyzer(cache_dir=tmp_path).analyze(song)
    assert len(counted) == 3


def test_changed_content_is_a_miss_and_damaged_entry_is_ignored(
    song: Path, tmp_path: Path, counted: list[int]
) -> None:
    copy = tmp_path / "copy.wav"
    copy.write_bytes(song.read_bytes())
    analyzer = AudioAnalyzer(cache_dir=tmp_path / "cache")
    analyzer.analyze(copy)
    for entry in (tmp_path / "cache").glob("*.json"):
        entry.write_text("{ not json")
    analyzer.analyze(copy)  # damaged: analysed again, not a crash
    data = bytearray(copy.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 1000] = bytes(1000)  # a short dropout: different content
    copy.write_bytes(bytes(data))
    analyzer.analyze(copy)
    assert len(counted) == 3
