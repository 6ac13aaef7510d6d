"""Audio QC: loudness of tones whose loudness is known from BS.1770 itself, true peak
between samples, loudness range, and the loudness standards' items."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.errors import MediaInputError
from engine.qa import QualityValidator, measure_audio
from engine.qa.audio_checks import loudness_range, measure_samples, true_peak_dbtp
from tests.media import write_wav
from tests.qa_media import sine


def test_997hz_tone_reads_its_bs1770_loudness(tmp_path: Path) -> None:
    # BS.1770: a 997 Hz sine of peak A in one channel reads 20 log10(A) - 3.01 LUFS;
    # the same sine in both channels reads 20 log10(A).
    stereo = measure_samples(sine(5.0, dbfs=-23.0), 48000)
    assert stereo.integrated_lufs == pytest.approx(-23.0, abs=0.1)
    mono = measure_samples(sine(5.0, dbfs=-20.0, channels=1), 48000)
    assert mono.integrated_lufs == pytest.approx(-23.01, abs=0.1)
    path = write_wav(tmp_path / "tone.wav", sine(5.0, dbfs=-18.0), 48000)
    measured = measure_audio(path)
    assert measured.integrated_lufs == pytest.approx(-18.0, abs=0.1)
    assert measured.channels == 2 and measured.sample_rate == 48000


def test_integrated_loudness_agrees_with_pyloudnorm() -> None:
    pyln = pytest.importorskip("pyloudnorm", reason="pyloudnorm is the reference meter")
    rng = np.random.default_rng(5)
    music = rng.standard_normal((2, 48000 * 6)).astype(np.float32) * 0.05
    music[:, 48000 * 3 :] *= 0.3  # a quiet second half, so the gates matter
    ours = measure_samples(music, 48000).integrated_lufs
    reference = pyln.Meter(48000).integrated_loudness(music.T.astype(np.float64))
    assert ours == pytest.approx(reference, abs=0.1)


def test_true_peak_finds_the_peak_between_samples() -> None:
    # fs/4 with a 45 degree phase: every sample is at 0.707 of the true peak (-3.01 dB).
    wave = sine(1.0, freq=12000.0, dbfs=-6.0, phase=math.pi / 4, channels=1)
    measured = measure_samples(wave, 48000)
    assert measured.sample_peak_dbfs == pytest.approx(-9.01, abs=0.05)
    assert measured.true_peak_dbtp == pytest.approx(-6.0, abs=0.2)


def test_true_peak_blocks_join_without_missing_a_peak() -> None:
    wave = np.zeros((1, 48000 * 3), np.float32)
    wave[0, 48000 * 2 - 1 : 48000 * 2 + 1] = [0.5, -0.5]  # on a 1 s block boundary
    assert true_peak_dbtp(wave, 48000, block_seconds=1.0) == pytest.approx(
        true_peak_dbtp(wave, 48000, block_seconds=10.0), abs=1e-6
    )
    noise = (np.random.default_rng(0).standard_normal((2, 48000 * 2)) * 0.2).astype(np.float32)
    reads = {true_peak_dbtp(noise, 48000, block_seconds=b) for b in (0.01, 0.3, 1.0, 100.0)}
    assert max(reads) - min(reads) < 1e-6


def test_true_peak_uses_the_annex_2_interpolator() -> None:
    from engine.qa.audio_checks import TRUE_PEAK_PHASES

    assert TRUE_PEAK_PHASES.shape == (4, 12)
    # The prototype is symmetric; each phase passes DC at about unity gain (the quarter
    # phases at 0.973, as printed in the Recommendation).
    np.testing.assert_array_equal(TRUE_PEAK_PHASES[3], TRUE_PEAK_PHASES[0][::-1])
    np.testing.assert_array_equal(TRUE_PEAK_PHASES[2], TRUE_PEAK_PHASES[1][::-1])
    np.testing.assert_allclose(
        TRUE_PEAK_PHASES.sum(axis=1), [1.0016, 0.9730, 0.9730, 1.0016], atol=1e-4
    )
    # Tones from 1 to 12 kHz whose samples miss the crest read within 0.15 dB of it.
    for freq, phase in ((997.0, 0.3), (3000.0, math.pi / 16), (8000.0, 0.5), (12000.0, 0.785)):
        wave = sine(0.5, freq=freq, dbfs=-2.0, phase=phase, channels=1)
        assert true_peak_dbtp(wave, 48000) == pytest.approx(-2.0, abs=0.15), freq


def test_loudness_range_of_two_levels() -> None:
    # 10 s at -20 LUFS then 10 s at -30 LUFS: EBU Tech 3342 reads about 10 LU.
    loud, quiet = sine(10.0, dbfs=-20.0), sine(10.0, dbfs=-30.0)
    lra = loudness_range(np.concatenate([loud, quiet], axis=1), 48000)
    assert lra == pytest.approx(10.0, abs=0.5)
    assert loudness_range(sine(10.0, dbfs=-20.0), 48000) == pytest.approx(0.0, abs=0.1)


@pytest.mark.parametrize(
    ("level", "r128", "a85"),
    [(-23.0, True, True), (-24.0, False, True), (-14.0, False, False)],
)
def test_loudness_standards_on_a_sound_file(
    tmp_path: Path, level: float, r128: bool, a85: bool
) -> None:
    path = write_wav(tmp_path / "tone.wav", sine(4.0, dbfs=level), 48000)
    report = QualityValidator().check_broadcast_standards(path, ["ebu_r128", "atsc_a85", "web"])
    assert report.get("ebu_r128").passed is r128
    assert report.get("atsc_a85").passed is a85
    loudness = next(i for i in report.get("ebu_r128").items if i.check == "integrated_loudness")
    assert loudness.measured == pytest.approx(level, abs=0.1)
    assert loudness.limit == "-23 +/- 0.5 LUFS"
    web = report.get("web")
    assert not web.passed  # no video stream
    assert any(i.check == "video_present" and not i.passed for i in web.items)


def test_true_peak_over_the_limit_fails_r128_though_samples_are_under(tmp_path: Path) -> None:
    # Samples peak at -3.5 dBFS (a sample-peak meter passes it); the true peak is -0.5.
    wave = sine(2.0, freq=12000.0, dbfs=-0.5, phase=math.pi / 4)
    path = write_wav(tmp_path / "peaky.wav", wave, 48000)
    measured = measure_audio(path)
    assert measured.sample_peak_dbfs < -3.0
    items = QualityValidator().check_broadcast_standards(path, ["ebu_r128"]).get("ebu_r128").items
    peak = next(i for i in items if i.check == "true_peak")
    assert not peak.passed and peak.measured == pytest.approx(-0.5, abs=0.2)


def test_file_without_audio_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(MediaInputError):
        measure_audio(path)


def _whole_array_loudness_range(samples: np.ndarray, rate: int) -> float:
    """EBU Tech 3342 on the whole array at once (the implementation before block-wise)."""
    from engine.audio.loudness import k_weighting

    window, hop = round(3.0 * rate), round(0.1 * rate)
    weighted = k_weighting(np.asarray(samples, np.float64), rate) ** 2
    cumulative = np.concatenate([np.zeros((weighted.shape[0], 1)), np.cumsum(weighted, 1)], 1)
    starts = np.arange(0, samples.shape[1] - window + 1, hop)
    short_term = -0.691 + 10 * np.log10(
        ((cumulative[:, starts + window] - cumulative[:, starts]) / window).sum(axis=0)
    )
    gated = short_term[short_term > -70.0]
    relative = -0.691 + 10 * np.log10(np.mean(10 ** ((gated + 0.691) / 10))) - 20.0
    low, high = np.percentile(gated[gated > relative], [10, 95])
    return float(high - low)


@pytest.mark.parametrize("rate", [48000, 44100, 11025])
def test_block_wise_measurement_equals_the_whole_array_one(rate: int) -> None:
    from engine.audio.loudness import integrated_loudness
    from engine.qa.audio_checks import _AudioMeter

    rng = np.random.default_rng(rate)
    seconds = 9.3
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.where((t % 0.7) < 0.2, 1.0, 0.2) * np.where(t < 5.0, 1.0, 0.3)
    music = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * envelope * rng.standard_normal(t.size)
    music = np.stack([music, np.roll(music, 333)]).astype(np.float32)
    reference_lufs = integrated_loudness(music, rate)
    reference_lra = _whole_array_loudness_range(music, rate)
    assert reference_lra > 1.0  # the gates and percentiles have something to do
    whole = measure_samples(music, rate)
    assert whole.integrated_lufs == pytest.approx(reference_lufs, abs=1e-9)
    assert whole.loudness_range_lu == pytest.approx(reference_lra, abs=1e-9)
    # Fed in uneven pieces (a decoder's frames), nothing changes.
    meter = _AudioMeter(rate, 2)
    cuts = np.cumsum(rng.integers(1, rate // 3, size=200))
    for piece in np.split(music, cuts[cuts < music.shape[1]], axis=1):
        meter.feed(piece)
    pieces = meter.result()
    assert pieces.integrated_lufs == pytest.approx(reference_lufs, abs=1e-9)
    assert pieces.loudness_range_lu == pytest.approx(reference_lra, abs=1e-9)
    assert pieces.true_peak_dbtp == pytest.approx(whole.true_peak_dbtp, abs=1e-9)
    assert pieces.duration == pytest.approx(seconds, abs=1 / rate)


def test_measuring_a_sound_file_takes_memory_independent_of_its_length(tmp_path: Path) -> None:
    import tracemalloc

    rng = np.random.default_rng(2)
    peaks = {}
    for seconds in (3, 10, 40):  # the first one warms up (imports, caches)
        noise = (rng.standard_normal((2, 48000 * seconds)) * 0.1).astype(np.float32)
        path = write_wav(tmp_path / f"noise{seconds}.wav", noise, 48000)
        del noise
        tracemalloc.start()
        try:
            measured = measure_audio(path)
            peaks[seconds] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert measured.duration == pytest.approx(seconds)
    # The 40 s file's samples alone are 15.4 MB as float32 (the whole-array measurement
    # took over 8 times that); the meter holds 2 s of them at a time and one float per
    # 100 ms, whatever the length.
    assert peaks[40] < 15e6, peaks
    assert peaks[40] < peaks[10] * 1.1 + 0.5e6, peaks
