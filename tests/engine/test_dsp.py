"""Our numpy STFT and beat DP against librosa's (which numba compiles on first use)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from engine.audio.dsp import dp_beats, stft
from engine.audio.synth import SectionSpec, SongSpec, synthesize_song


@pytest.mark.parametrize(("n_fft", "hop"), [(2048, 512), (1024, 256), (4096, 1024)])
def test_stft_matches_librosa(n_fft: int, hop: int) -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(0, 0.2, 22050 * 3 + 17).astype(np.float32)
    ours = stft(y, n_fft=n_fft, hop_length=hop)
    theirs = librosa.stft(y, n_fft=n_fft, hop_length=hop)
    assert ours.shape == theirs.shape
    assert np.allclose(ours, theirs, atol=1e-3 * np.abs(theirs).max())


@pytest.mark.parametrize(("tempo", "tightness"), [(96.0, 100.0), (128.0, 400.0), (171.0, 25.0)])
def test_dp_beats_matches_librosa(tempo: float, tightness: float) -> None:
    song = synthesize_song(
        SongSpec(
            tempo=tempo,
            sections=(SectionSpec(label="verse", bars=8, energy=0.7),),
            offbeat_hats=True,
            seed=2,
        )
    )
    y = librosa.resample(song.audio.mean(axis=0), orig_sr=song.sample_rate, target_sr=22050)
    envelope = librosa.onset.onset_strength(y=y, sr=22050, hop_length=256)
    _, expected = librosa.beat.beat_track(
        onset_envelope=envelope,
        sr=22050,
        hop_length=256,
        bpm=tempo,
        tightness=tightness,
        trim=False,
    )
    ours = dp_beats(envelope, bpm=tempo, frame_rate=22050 / 256, tightness=tightness)
    assert np.array_equal(ours, expected)


def test_dp_beats_on_noise_and_silence() -> None:
    rng = np.random.default_rng(5)
    envelope = np.abs(rng.normal(size=3000))
    _, expected = librosa.beat.beat_track(
        onset_envelope=envelope, sr=22050, hop_length=512, bpm=111.0, tightness=100.0, trim=False
    )
    assert np.array_equal(
        dp_beats(envelope, bpm=111.0, frame_rate=22050 / 512, tightness=100.0), expected
    )
    assert dp_beats(np.zeros(100), bpm=120.0, frame_rate=43.0, tightness=100.0).size == 0


@pytest.mark.filterwarnings("ignore:n_fft=1024 is too large:UserWarning")
@pytest.mark.parametrize("length", [100, 22050 * 2 + 333])
def test_small_blocks_give_the_same_spectrum(monkeypatch: pytest.MonkeyPatch, length: int) -> None:
    """Blocks of 16 frames (padding cut per block) join into librosa's STFT exactly."""
    import engine.audio.dsp as dsp

    y = np.random.default_rng(7).normal(0, 0.2, length).astype(np.float32)
    whole = dsp.stft_power(y, n_fft=1024, hop_length=256)
    monkeypatch.setattr(dsp, "_BLOCK_SAMPLES", 16 * 1024)
    theirs = np.abs(librosa.stft(y, n_fft=1024, hop_length=256)) ** 2
    blocked = dsp.stft_power(y, n_fft=1024, hop_length=256)
    assert blocked.shape == whole.shape == theirs.shape
    assert np.array_equal(blocked, whole)
    assert np.allclose(blocked, theirs, atol=1e-3 * theirs.max())
    sums = dsp.stft_reduce(
        y, n_fft=1024, hop_length=256, reduce=lambda p: p.sum(axis=0, keepdims=True)
    )
    assert np.allclose(sums[0], whole.sum(axis=0), rtol=1e-5)


def test_block_memory_does_not_grow_with_the_song() -> None:
    """Peak memory of block-wise STFT reductions: the same for 30 s and 180 s of audio."""
    import tracemalloc

    from engine.audio.dsp import stft_reduce
    from engine.audio.features import pitch_class_profile

    def peak_bytes(seconds: int) -> tuple[int, int]:
        y = np.random.default_rng(2).normal(0, 0.1, 22050 * seconds).astype(np.float32)
        peaks = []
        for run in (
            lambda: stft_reduce(y, n_fft=2048, hop_length=512, reduce=lambda p: p[:4]),
            lambda: pitch_class_profile(y, 22050),
        ):
            tracemalloc.start()
            run()
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        return peaks[0], peaks[1]

    short, long = peak_bytes(30), peak_bytes(180)  # 30 s: at least one whole block
    # The output grows (4 rows of float32 per frame: 0.1 MB for 180 s); nothing else may.
    assert long[0] < short[0] + 2**20
    assert long[1] < short[1] + 2**20
