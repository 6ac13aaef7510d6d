"""Our numpy features against librosa's, and the analysis path's freedom from librosa/numba."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import librosa
import numpy as np
import pytest

from engine.audio import features as feat
from engine.audio.dsp import stft_power
from engine.audio.synth import SectionSpec, SongSpec, synthesize_song

SR = 22050


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 0.1, SR * 3 + 123).astype(np.float32)


@pytest.fixture(scope="module")
def power(noise: np.ndarray) -> np.ndarray:
    return stft_power(noise, n_fft=2048, hop_length=512)


def close(ours: np.ndarray, theirs: np.ndarray, rtol: float = 1e-5) -> None:
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype
    scale = float(np.max(np.abs(theirs))) or 1.0
    assert float(np.max(np.abs(ours - theirs))) <= rtol * scale


@pytest.mark.parametrize(
    ("n_fft", "n_mels", "fmin", "fmax"), [(1024, 80, 20.0, SR / 2), (2048, 64, 0.0, None)]
)
def test_mel_filterbank_and_frequencies(
    n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> None:
    close(
        feat.mel_filterbank(sr=SR, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax),
        librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax),
    )
    top = SR / 2 if fmax is None else fmax
    close(
        feat.mel_frequencies(n_mels=n_mels, fmin=fmin, fmax=top),
        librosa.mel_frequencies(n_mels=n_mels, fmin=fmin, fmax=top),
        rtol=1e-12,
    )
    close(feat.fft_frequencies(sr=SR, n_fft=n_fft), librosa.fft_frequencies(sr=SR, n_fft=n_fft))


@pytest.mark.parametrize("top_db", [None, 80.0])
def test_power_to_db(power: np.ndarray, top_db: float | None) -> None:
    close(
        feat.power_to_db(power, top_db=top_db),
        librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=top_db),
    )


@pytest.mark.parametrize("norm", [None, np.inf])
def test_chroma_stft(noise: np.ndarray, norm: float | None) -> None:
    # A chord on top of the noise, so that the chroma is not flat.
    t = np.arange(noise.size) / SR
    y = noise + sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63))
    spectrum = stft_power(y.astype(np.float32), n_fft=4096, hop_length=1024)
    close(
        feat.chroma_stft(spectrum, sr=SR, n_fft=4096, norm=norm),
        librosa.feature.chroma_stft(S=spectrum, sr=SR, n_fft=4096, tuning=0.0, norm=norm),
    )
    close(
        feat.chroma_filterbank(sr=SR, n_fft=4096),
        librosa.filters.chroma(sr=SR, n_fft=4096, tuning=0.0),
    )


def test_rms_mel_mfcc_contrast(power: np.ndarray) -> None:
    magnitude = np.sqrt(power)
    close(
        feat.rms(magnitude, frame_length=2048), librosa.feature.rms(S=magnitude, frame_length=2048)
    )
    mel = feat.melspectrogram(power, sr=SR, n_mels=64)
    close(mel, librosa.feature.melspectrogram(S=power, sr=SR, n_mels=64))
    close(
        feat.mfcc(feat.power_to_db(mel), n_mfcc=13),
        librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=80.0), n_mfcc=13),
    )
    close(
        feat.spectral_contrast(magnitude, sr=SR, n_fft=2048),
        librosa.feature.spectral_contrast(S=magnitude, sr=SR, n_fft=2048),
    )


def test_contrast_bands_work_block_by_block(power: np.ndarray) -> None:
    magnitude = np.sqrt(power)
    whole = feat.contrast_bands(magnitude, sr=SR, n_fft=2048)
    halves = [
        feat.contrast_bands(part, sr=SR, n_fft=2048) for part in np.array_split(magnitude, 2, 1)
    ]
    for k in (0, 1):
        assert np.array_equal(whole[k], np.concatenate([h[k] for h in halves], axis=1))


@pytest.mark.parametrize(
    ("orig", "target", "length"),
    [(44100, 22050, 44100), (48000, 22050, 12345), (22050, 44100, 999)],
)
def test_resample_matches_librosa(orig: int, target: int, length: int) -> None:
    y = np.random.default_rng(3).normal(0.0, 0.1, length).astype(np.float32)
    ours = feat.resample(y, orig_sr=orig, target_sr=target)
    theirs = librosa.resample(y, orig_sr=orig, target_sr=target)
    close(ours, theirs, rtol=1e-6)


def _song(key: str, seed: int, sample_rate: int = SR) -> np.ndarray:
    spec = SongSpec(
        tempo=110.0,
        key=key,
        seed=seed,
        sample_rate=sample_rate,
        sections=(SectionSpec(label="verse", bars=6, energy=0.6),),
    )
    return synthesize_song(spec).audio.mean(axis=0).astype(np.float32)


def test_tuning_offset_recovers_a_detuned_song() -> None:
    y = _song("E minor", 4)
    assert abs(feat.tuning_offset(y, SR)) < 0.03
    # Played 30 cents sharp: resampled from a rate 30 cents higher.
    sharp = feat.resample(y, orig_sr=round(SR * 2 ** (0.3 / 12)), target_sr=SR)
    assert feat.tuning_offset(sharp, SR) == pytest.approx(0.3, abs=0.03)
    flat = feat.resample(y, orig_sr=round(SR * 2 ** (-0.4 / 12)), target_sr=SR)
    assert feat.tuning_offset(flat, SR) == pytest.approx(-0.4, abs=0.03)


def test_pitch_class_profile_follows_the_notes_and_the_tuning() -> None:
    """An A major triad (A, C#, E) shows those classes on top, in tune or 40 cents flat."""
    t = np.arange(4 * SR) / SR
    for cents in (0.0, -40.0):
        shift = 2.0 ** (cents / 1200.0)
        notes = (110.0, 277.18, 329.63, 440.0)
        y = sum(0.2 * np.sin(2 * np.pi * f * shift * t) for f in notes).astype(np.float32)
        profile = feat.pitch_class_profile(y, SR)
        top3 = set(np.argsort(profile)[-3:].tolist())
        assert top3 == {9, 1, 4}, (cents, np.round(profile, 2))
    assert not feat.pitch_class_profile(np.zeros(100, dtype=np.float32), SR).any()


def test_pitch_class_profile_is_close_to_librosa_chroma_cqt() -> None:
    """Same key material, same tonal picture: the profiles correlate strongly."""
    y = _song("Bb minor", 9)
    ours = feat.pitch_class_profile(y, SR)
    theirs = librosa.feature.chroma_cqt(y=y, sr=SR, hop_length=2048).mean(axis=1)
    assert float(np.corrcoef(ours, theirs)[0, 1]) > 0.9


_CHILD = """
import json, sys
from engine.audio.analyzer import AudioAnalyzer
from engine.audio.beats import track_beats
from engine.audio.decode import decode_audio
analysis = AudioAnalyzer().analyze(sys.argv[1])
native = decode_audio(sys.argv[1])  # 44.1 kHz: the tracker resamples it itself
track = track_beats(native.mono(), native.sample_rate)
modules = sorted(m for m in ("librosa", "numba", "llvmlite") if m in sys.modules)
print(json.dumps({"modules": modules, "beats": len(analysis.beats), "key": analysis.key,
                  "tempo": analysis.tempo, "native_tempo": track.tempo}))
"""


def test_the_analysis_imports_no_librosa_or_numba(tmp_path: Path) -> None:
    """A whole analysis, and the tracker on 44.1 kHz samples, in a fresh interpreter."""
    audio = _song("D major", 1, sample_rate=44100)
    path = tmp_path / "song.wav"
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(44100)
        handle.writeframes(pcm.tobytes())
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
        timeout=120,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["modules"] == []
    assert result["beats"] > 0
    assert result["key"] == "D major"
    assert result["tempo"] == pytest.approx(110.0, rel=0.02)
    assert result["native_tempo"] == pytest.approx(110.0, rel=0.02)
