"""Our BS.1770 loudness against pyloudnorm, an independent implementation."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest

from engine.audio.loudness import SILENCE_LUFS, integrated_loudness
from engine.audio.synth import demo_song_spec, synthesize_song


@pytest.mark.parametrize("rate", [44100, 48000, 22050])
def test_matches_pyloudnorm_on_music(rate: int) -> None:
    song = synthesize_song(demo_song_spec())
    from scipy.signal import resample_poly

    audio = (
        song.audio
        if rate == song.sample_rate
        else resample_poly(song.audio, rate, song.sample_rate, axis=1)
    )
    ours = integrated_loudness(audio, rate)
    reference = pyloudnorm.Meter(rate).integrated_loudness(audio.T)
    assert ours == pytest.approx(reference, abs=0.1)


def test_full_scale_1khz_sine_reads_about_minus_3() -> None:
    rate = 48000
    t = np.arange(rate * 5) / rate
    sine = np.sin(2 * np.pi * 997 * t)
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS.
    assert integrated_loudness(sine, rate) == pytest.approx(-3.01, abs=0.05)


def test_silence_and_short_audio() -> None:
    assert integrated_loudness(np.zeros((2, 48000)), 48000) == SILENCE_LUFS
    assert integrated_loudness(np.ones((2, 100)) * 0.5, 48000) == SILENCE_LUFS


def test_gain_moves_loudness_by_the_same_amount() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, (2, 48000 * 3))
    base = integrated_loudness(noise, 48000)
    assert integrated_loudness(noise * 0.5, 48000) == pytest.approx(base - 6.02, abs=0.01)
