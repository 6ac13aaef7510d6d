"""The analyser on bad and unusual input: a typed error or a valid result, never a crash."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from engine.audio.analyzer import AudioAnalyzer
from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
from engine.errors import AudioInputError
from tests.media import write_wav

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def analyzer() -> AudioAnalyzer:
    return AudioAnalyzer()


def _encode(path: Path, codec: str, audio: np.ndarray, rate: int, *, video: bool = False) -> Path:
    """Write ``audio`` (and, with ``video``, one second of black frames) with PyAV."""
    import av

    with av.open(str(path), "w") as out:
        vstream = out.add_stream("libx264", rate=24) if video else None
        astream = out.add_stream(codec, rate=rate) if audio.size else None
        if astream is not None:
            astream.codec_context.layout = "stereo"
        if vstream is not None:
            vstream.width, vstream.height, vstream.pix_fmt = 64, 64, "yuv420p"
            for i in range(24):
                frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, 24)
                for packet in vstream.encode(frame):
                    out.mux(packet)
            for packet in vstream.encode(None):
                out.mux(packet)
        if astream is not None:
            frame_size = astream.codec_context.frame_size or 1024
            for start in range(0, audio.shape[1], frame_size):
                block = np.ascontiguousarray(audio[:, start : start + frame_size])
                frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                frame.sample_rate = rate
                frame.pts, frame.time_base = start, Fraction(1, rate)
                for packet in astream.encode(frame):
                    out.mux(packet)
            for packet in astream.encode(None):
                out.mux(packet)
    return path


@pytest.fixture(scope="module")
def song() -> tuple[np.ndarray, int, dict]:
    synth = synthesize_song(
        SongSpec(tempo=110.0, sections=(SectionSpec(label="verse", bars=8, energy=0.6),), seed=5)
    )
    return synth.audio, synth.sample_rate, synth.truth


def test_m4a_aac_is_analysed(analyzer: AudioAnalyzer, song: tuple, tmp_path: Path) -> None:
    audio, rate, truth = song
    path = _encode(tmp_path / "song.m4a", "aac", audio, rate)
    analysis = analyzer.analyze(path)
    assert analysis.tempo == pytest.approx(110.0, rel=0.04)
    assert analysis.duration == pytest.approx(truth["duration"], abs=0.05)


def test_audio_is_taken_from_a_video_file(
    analyzer: AudioAnalyzer, song: tuple, tmp_path: Path
) -> None:
    audio, rate, _ = song
    path = _encode(tmp_path / "clip.mp4", "aac", audio, rate, video=True)
    assert analyzer.analyze(path).tempo == pytest.approx(110.0, rel=0.04)


def test_video_without_audio_stream(analyzer: AudioAnalyzer, tmp_path: Path) -> None:
    path = _encode(
        tmp_path / "silent_film.mp4", "aac", np.zeros((2, 0), np.float32), 44100, video=True
    )
    with pytest.raises(AudioInputError, match="has no audio stream"):
        analyzer.analyze(path)


def test_truncated_mp3_gives_what_is_there(analyzer: AudioAnalyzer, tmp_path: Path) -> None:
    data = (ROOT / "resources" / "demo" / "demo_song.mp3").read_bytes()
    path = tmp_path / "cut.mp3"
    path.write_bytes(data[: len(data) // 3])
    analysis = analyzer.analyze(path)
    assert 15.0 < analysis.duration < 30.0
    assert analysis.tempo == pytest.approx(124.0, rel=0.04)


def test_eight_hour_file_is_refused_before_decoding(tmp_path: Path) -> None:
    """A real 8-hour wav, kept small by an 8 Hz sample rate: refused from its header."""
    rate, samples = 8, 8 * 3600 * 8
    header = b"RIFF" + struct.pack("<I", 36 + samples * 2) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header += b"data" + struct.pack("<I", samples * 2)
    path = tmp_path / "eight_hours.wav"
    path.write_bytes(header + bytes(samples * 2))
    with pytest.raises(AudioInputError, match=r"480\.0 minutes long; the limit is 20\.0"):
        AudioAnalyzer(max_duration=20 * 60).analyze(path)


def test_empty_file(analyzer: AudioAnalyzer, tmp_path: Path) -> None:
    path = tmp_path / "empty.flac"
    path.touch()
    with pytest.raises(AudioInputError, match="file is empty"):
        analyzer.analyze(path)


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_silence_and_noise_give_a_valid_result_without_beats(
    analyzer: AudioAnalyzer, tmp_path: Path, kind: str
) -> None:
    rate = 22050
    rng = np.random.default_rng(0)
    y = (
        np.zeros(rate * 12, np.float32)
        if kind == "silence"
        else (rng.normal(0, 0.2, rate * 12).astype(np.float32))
    )
    analysis = analyzer.analyze(write_wav(tmp_path / f"{kind}.wav", y, rate))
    assert analysis.beats == []
    assert analysis.tempo == 0.0
    assert any("no beat" in w for w in analysis.warnings)
    assert analysis.duration == pytest.approx(12.0)
    assert analysis.spectral_features is not None
    assert len(analysis.spectral_features) == 12 * 30
