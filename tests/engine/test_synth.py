"""Tests of the song synthesizer and the shipped demo song."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import numpy as np
import pytest
from scipy import signal

from engine.audio.synth import (
    SECTION_LABELS,
    SectionSpec,
    SongSpec,
    SynthSong,
    demo_song_spec,
    parse_key,
    synthesize_song,
    write_truth_json,
)
from engine.errors import ParameterError

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "resources" / "demo"
SR = 22050  # tests run at a modest rate to stay fast


def small_spec(**changes: Any) -> SongSpec:
    """A 6-bar song in three sections, fast to render."""
    base = SongSpec(
        tempo=110.0,
        sample_rate=SR,
        lead_in=0.3,
        sections=(
            SectionSpec(label="intro", bars=2, energy=0.2),
            SectionSpec(label="verse", bars=2, energy=0.55),
            SectionSpec(label="chorus", bars=2, energy=0.9),
        ),
    )
    return dataclasses.replace(base, **changes)


def load_script() -> ModuleType:
    """Import ``resources/demo/make_demo_song.py``, which is a script, not a package."""
    spec = importlib.util.spec_from_file_location("make_demo_song", DEMO_DIR / "make_demo_song.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decode(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray() for frame in container.decode(stream)]
        return np.concatenate(frames, axis=1), stream.rate


def lag_of(reference: np.ndarray, other: np.ndarray, max_lag: int) -> int:
    """Lag (in samples) of ``other`` against ``reference`` at the cross-correlation peak."""
    n = min(reference.size, other.size)
    corr = signal.correlate(other[:n], reference[:n], mode="full", method="fft")
    lags = signal.correlation_lags(n, n, mode="full")
    keep = np.abs(lags) <= max_lag
    return int(lags[keep][np.argmax(corr[keep])])


def band_energy(mono: np.ndarray, sr: int, times: np.ndarray, *, kind: str, cutoff: float) -> float:
    """Mean energy of a filtered signal in the 50 ms after each of ``times``."""
    sos = signal.butter(4, cutoff, btype=kind, fs=sr, output="sos")
    filtered = signal.sosfilt(sos, mono)
    width = int(0.05 * sr)
    starts = np.round(times * sr).astype(int)
    return float(np.mean([np.sum(filtered[s : s + width] ** 2) for s in starts]))


@pytest.fixture(scope="module")
def small_song() -> SynthSong:
    return synthesize_song(small_spec())


@pytest.fixture(scope="module")
def demo_song() -> SynthSong:
    return synthesize_song(demo_song_spec())


# ----------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"tempo": 300.0}, "tempo=300.0"),
        ({"tempo": 20}, "tempo=20"),
        ({"tempo": float("nan")}, "tempo=nan"),
        ({"tempo": "fast"}, "tempo='fast'"),
        ({"beats_per_bar": 9}, "beats_per_bar=9"),
        ({"beats_per_bar": 4.0}, "beats_per_bar=4.0"),
        ({"sections": ()}, "sections=()"),
        ({"key": "H minor"}, "key='H minor'"),
        ({"key": "A dorian"}, "key='A dorian'"),
        ({"swing": 0.6}, "swing=0.6"),
        ({"offbeat_hats": "yes"}, "offbeat_hats='yes'"),
        ({"syncopation": 1}, "syncopation=1"),
        ({"lead_in": -1.0}, "lead_in=-1.0"),
        ({"sample_rate": 1000}, "sample_rate=1000"),
        ({"seed": -1}, "seed=-1"),
        (
            {"tempo": 50.0, "sections": (SectionSpec(label="verse", bars=256, energy=0.5),) * 2},
            "at most 900 s",
        ),
    ],
)
def test_song_spec_rejects_bad_values(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        small_spec(**changes)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"label": "solo", "bars": 4, "energy": 0.5}, "label='solo'.*one of intro"),
        ({"label": "verse", "bars": 0, "energy": 0.5}, "bars=0"),
        ({"label": "verse", "bars": 4, "energy": 1.5}, "energy=1.5"),
        ({"label": "verse", "bars": 4, "energy": True}, "energy=True"),
    ],
)
def test_section_spec_rejects_bad_values(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        SectionSpec(**fields)


def test_parameter_error_names_the_value() -> None:
    with pytest.raises(ParameterError) as info:
        small_spec(tempo=250.0)
    assert (info.value.name, info.value.value) == ("tempo", 250.0)
    assert "50" in info.value.allowed and "200" in info.value.allowed


def test_sections_given_as_list_are_stored_as_tuple() -> None:
    spec = small_spec(sections=[SectionSpec(label="verse", bars=1, energy=0.5)])
    assert isinstance(spec.sections, tuple)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("A minor", (9, "minor", "A minor")),
        ("f# MAJOR", (6, "major", "F# major")),
        ("Bb minor", (10, "minor", "Bb minor")),
        ("Cb major", (11, "major", "Cb major")),
    ],
)
def test_parse_key(key: str, expected: tuple[int, str, str]) -> None:
    assert parse_key(key) == expected


# -------------------------------------------------------------------------- output


def test_audio_format(small_song: SynthSong) -> None:
    audio = small_song.audio
    assert audio.dtype == np.float32
    assert audio.ndim == 2 and audio.shape[0] == 2
    assert np.all(np.isfinite(audio))
    assert 0.5 < np.max(np.abs(audio)) <= 0.9
    assert small_song.sample_rate == SR
    # A touch of stereo width: the channels differ, but not wildly.
    left, right = audio.astype(np.float64)
    corr = np.corrcoef(left, right)[0, 1]
    assert 0.5 < corr < 0.999


def test_same_seed_same_audio_other_seed_other_audio(small_song: SynthSong) -> None:
    again = synthesize_song(small_spec())
    assert np.array_equal(again.audio, small_song.audio)
    assert again.truth == small_song.truth
    other = synthesize_song(small_spec(seed=1))
    assert other.audio.shape == small_song.audio.shape
    assert not np.array_equal(other.audio, small_song.audio)


def check_truth(song: SynthSong, spec: SongSpec) -> None:
    truth = song.truth
    json.dumps(truth)  # JSON-serialisable as it stands
    bpb = spec.beats_per_bar
    beats = np.array(truth["beats"])
    assert beats.size == spec.total_bars * bpb
    assert beats[0] == pytest.approx(spec.lead_in)
    np.testing.assert_allclose(np.diff(beats), 60.0 / spec.tempo, rtol=1e-9)
    assert truth["downbeats"] == truth["beats"][::bpb]
    assert truth["beat_in_bar"] == [i % bpb + 1 for i in range(beats.size)]
    assert truth["time_signature"] == f"{bpb}/4"
    assert truth["tempo"] == spec.tempo
    assert truth["duration"] == pytest.approx(song.audio.shape[1] / song.sample_rate, abs=1e-9)
    sections = truth["sections"]
    assert [s["label"] for s in sections] == [s.label for s in spec.sections]
    assert sections[0]["start"] == 0.0
    assert sections[-1]["end"] == truth["duration"]
    for before, after in itertools.pairwise(sections):
        assert before["end"] == after["start"]
        assert after["start"] in truth["downbeats"]
    assert len(truth["chords"]) == spec.total_bars
    assert truth["spec"]["tempo"] == spec.tempo
    assert len(truth["spec"]["sections"]) == len(spec.sections)


def test_truth_is_consistent(small_song: SynthSong) -> None:
    check_truth(small_song, small_spec())
    assert small_song.truth["key"] == "A minor"


def test_three_four_song() -> None:
    spec = small_spec(beats_per_bar=3, tempo=96.0, key="G major")
    song = synthesize_song(spec)
    check_truth(song, spec)
    assert song.truth["time_signature"] == "3/4"
    assert song.truth["beat_in_bar"][:7] == [1, 2, 3, 1, 2, 3, 1]
    assert song.truth["key"] == "G major"


@pytest.mark.parametrize(
    "changes",
    [
        {"swing": 0.33},
        {"offbeat_hats": True},
        {"syncopation": True},
        {"swing": 0.5, "offbeat_hats": True, "syncopation": True, "lead_in": 0.0},
    ],
)
def test_variants_produce_audio_on_the_same_grid(
    changes: dict[str, Any], small_song: SynthSong
) -> None:
    spec = small_spec(**changes)
    song = synthesize_song(spec)
    check_truth(song, spec)
    assert np.max(np.abs(song.audio)) == pytest.approx(0.89, abs=1e-3)
    assert not np.array_equal(song.audio, small_song.audio)
    if changes.get("lead_in", 0.3) == 0.3:
        assert song.truth["beats"] == small_song.truth["beats"]  # swing moves no beat


@pytest.mark.parametrize(("sample_rate", "beats_per_bar"), [(8000, 2), (16000, 5), (16000, 7)])
def test_every_label_at_odd_rates_and_meters(sample_rate: int, beats_per_bar: int) -> None:
    spec = SongSpec(
        tempo=180.0,
        beats_per_bar=beats_per_bar,
        key="Eb major",
        sample_rate=sample_rate,
        swing=0.5,
        syncopation=True,
        sections=tuple(
            SectionSpec(label=label, bars=1, energy=i / (len(SECTION_LABELS) - 1))
            for i, label in enumerate(SECTION_LABELS)
        ),
    )
    song = synthesize_song(spec)
    check_truth(song, spec)
    assert np.all(np.isfinite(song.audio)) and np.max(np.abs(song.audio)) <= 0.9


def test_kick_energy_is_on_the_beats() -> None:
    spec = small_spec(sections=(SectionSpec(label="verse", bars=4, energy=0.7),))
    song = synthesize_song(spec)
    mono = song.audio.mean(axis=0)
    beats = np.array(song.truth["beats"])
    half = beats + 0.5 * 60.0 / spec.tempo
    on = band_energy(mono, SR, beats, kind="lowpass", cutoff=120.0)
    off = band_energy(mono, SR, half, kind="lowpass", cutoff=120.0)
    assert on > 3.0 * off


def test_offbeat_hats_are_loudest_off_the_beat() -> None:
    spec = small_spec(sections=(SectionSpec(label="verse", bars=4, energy=0.7),), offbeat_hats=True)
    song = synthesize_song(spec)
    mono = song.audio.mean(axis=0)
    beats = np.array(song.truth["beats"])
    half = beats + 0.5 * 60.0 / spec.tempo
    on = band_energy(mono, SR, beats, kind="highpass", cutoff=6000.0)
    off = band_energy(mono, SR, half, kind="highpass", cutoff=6000.0)
    assert off > 2.0 * on
    # ... while the kick still marks the beat.
    assert band_energy(mono, SR, beats, kind="lowpass", cutoff=120.0) > 3.0 * band_energy(
        mono, SR, half, kind="lowpass", cutoff=120.0
    )


def test_write_truth_json_round_trips(tmp_path: Path, small_song: SynthSong) -> None:
    target = tmp_path / "song.truth.json"
    write_truth_json(target, small_song.truth)
    assert json.loads(target.read_text(encoding="utf-8")) == small_song.truth
    assert [p.name for p in tmp_path.iterdir()] == ["song.truth.json"]  # no temp left


# ---------------------------------------------------------------------------- demo


def test_demo_spec_shape(demo_song: SynthSong) -> None:
    spec = demo_song_spec()
    assert 45.0 <= spec.duration <= 75.0
    assert demo_song.duration == pytest.approx(spec.duration)
    assert spec.beats_per_bar == 4
    labels = [s.label for s in spec.sections]
    assert len(set(labels)) >= 3
    assert len({s.energy for s in spec.sections}) >= 3
    check_truth(demo_song, spec)


def section_audio(song: SynthSong, index: int, *, skip_bars: int = 0) -> np.ndarray:
    section = song.truth["sections"][index]
    bar = 4 * 60.0 / song.truth["tempo"]
    start = round((section["start"] + skip_bars * bar) * song.sample_rate)
    end = round(section["end"] * song.sample_rate)
    return song.audio[:, start:end].astype(np.float64)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


def test_demo_sections_differ_in_energy(demo_song: SynthSong) -> None:
    labels = [s["label"] for s in demo_song.truth["sections"]]
    levels = {label: rms(section_audio(demo_song, labels.index(label))) for label in labels}
    assert levels["chorus"] > 2.0 * levels["intro"]
    assert levels["chorus"] > levels["verse"] > levels["intro"]
    assert levels["chorus"] > 2.0 * levels["outro"]


def test_demo_repeated_sections_repeat(demo_song: SynthSong) -> None:
    labels = [s["label"] for s in demo_song.truth["sections"]]
    first, second = (i for i, label in enumerate(labels) if label == "chorus")
    # Skip two bars: the crash and the reverb of what came before differ.
    a = section_audio(demo_song, first, skip_bars=2)
    b = section_audio(demo_song, second, skip_bars=2)
    n = min(a.shape[1], b.shape[1])
    assert np.corrcoef(a[0, :n], b[0, :n])[0, 1] > 0.99


# ----------------------------------------------------------------------------- mp3


def test_mp3_encoding_is_aligned(tmp_path: Path) -> None:
    script = load_script()
    spec = small_spec(sample_rate=44100)
    song = synthesize_song(spec)
    target = tmp_path / "song.mp3"
    script.encode_mp3(target, song.audio, song.sample_rate)
    decoded, rate = decode(target)
    assert rate == 44100
    assert decoded.shape[0] == 2
    # The LAME info frame lets the decoder drop the encoder delay and the padding.
    assert decoded.shape[1] == song.audio.shape[1]
    lag = lag_of(song.audio.mean(axis=0), decoded.mean(axis=0), max_lag=4410)
    assert abs(lag) <= 44  # 1 ms at 44.1 kHz
    assert lag == 0


def test_make_demo_song_writes_both_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = load_script()
    short = small_spec(sample_rate=44100)
    monkeypatch.setattr(script, "demo_song_spec", lambda: short)
    assert script.main(["--out-dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_song.mp3", "demo_song.truth.json"]
    truth = json.loads((tmp_path / "demo_song.truth.json").read_text(encoding="utf-8"))
    assert truth["spec"]["tempo"] == short.tempo


def test_shipped_demo_matches_the_synthesizer(demo_song: SynthSong) -> None:
    """The files in resources/demo are current; if this fails, regenerate them with
    ``python resources/demo/make_demo_song.py`` and commit the result."""
    mp3 = DEMO_DIR / "demo_song.mp3"
    truth_path = DEMO_DIR / "demo_song.truth.json"
    assert mp3.stat().st_size < 2_000_000
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    assert truth == json.loads(json.dumps(demo_song.truth))
    decoded, rate = decode(mp3)
    assert rate == demo_song.sample_rate
    assert decoded.shape == demo_song.audio.shape
    reference = demo_song.audio.mean(axis=0)
    assert lag_of(reference, decoded.mean(axis=0), max_lag=4410) == 0
    # Close to the signal, not just aligned: MP3 error well below the music.
    error = rms(decoded.mean(axis=0) - reference)
    assert error < 0.15 * rms(reference)
