"""Numpy and scipy versions of the librosa features the analyser uses.

librosa compiles numba kernels the first time its feature functions run (about 20 s on a
2-core machine, every time the package is freshly installed or its cache is lost) and
imports numba and llvmlite (about 150 MiB of memory).  The analyser needs only a few
filter banks and per-frame reductions, which are short in numpy; this module has them,
with librosa's definitions and defaults, so the analysis path imports neither library.
``tests/engine/test_features.py`` checks each against librosa.

Every function here works frame by frame (a filter bank, a per-frame sort or norm), so it
can be applied to blocks of STFT frames (:func:`engine.audio.dsp.stft_reduce`) and the
results joined, except where a docstring says the operation is global (the ``top_db``
floor of :func:`power_to_db`).

The one function that is not librosa's is :func:`pitch_class_profile`, the mean chroma
the key is read from: librosa's ``chroma_cqt`` needs a constant-Q transform, here replaced
by a long-window STFT whose peaks are read on a semitone grid, tuned to the song.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from engine.audio.dsp import stft_reduce

__all__ = [
    "chroma_filterbank",
    "chroma_stft",
    "contrast_bands",
    "fft_frequencies",
    "hz_to_mel",
    "mel_filterbank",
    "mel_frequencies",
    "mel_to_hz",
    "melspectrogram",
    "mfcc",
    "normalize_frames",
    "pitch_class_profile",
    "power_to_db",
    "resample",
    "rms",
    "spectral_contrast",
    "tuning_offset",
]

_TINY32 = float(np.finfo(np.float32).tiny)

# -- frequency scales ------------------------------------------------------------------------

# Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, log above.
_MEL_F_SP = 200.0 / 3.0
_MEL_MIN_LOG_HZ = 1000.0
_MEL_MIN_LOG_MEL = _MEL_MIN_LOG_HZ / _MEL_F_SP
_MEL_LOGSTEP = math.log(6.4) / 27.0


def fft_frequencies(*, sr: float, n_fft: int) -> np.ndarray:
    """Centre frequency of each of the ``1 + n_fft // 2`` FFT bins, in Hz (float64)."""
    return np.fft.rfftfreq(n_fft, 1.0 / sr)


def hz_to_mel(frequencies: np.ndarray | float) -> np.ndarray:
    """Hz to mels on Slaney's scale (``librosa.hz_to_mel(htk=False)``)."""
    f = np.asarray(frequencies, dtype=np.float64)
    mels = f / _MEL_F_SP
    log_part = f >= _MEL_MIN_LOG_HZ
    return np.where(
        log_part,
        _MEL_MIN_LOG_MEL + np.log(np.maximum(f, _MEL_MIN_LOG_HZ) / _MEL_MIN_LOG_HZ) / _MEL_LOGSTEP,
        mels,
    )


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Mels on Slaney's scale to Hz (``librosa.mel_to_hz(htk=False)``)."""
    m = np.asarray(mels, dtype=np.float64)
    return np.where(
        m >= _MEL_MIN_LOG_MEL,
        _MEL_MIN_LOG_HZ * np.exp(_MEL_LOGSTEP * (m - _MEL_MIN_LOG_MEL)),
        _MEL_F_SP * m,
    )


def mel_frequencies(*, n_mels: int = 128, fmin: float = 0.0, fmax: float = 11025.0) -> np.ndarray:
    """``n_mels`` frequencies evenly spaced in mels from ``fmin`` to ``fmax`` (Hz, float64)."""
    mels = np.linspace(float(hz_to_mel(fmin)), float(hz_to_mel(fmax)), n_mels)
    return mel_to_hz(mels)


def mel_filterbank(
    *,
    sr: float,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Triangular mel filters with Slaney's area normalisation (``librosa.filters.mel``).

    Returns
    -------
    numpy.ndarray
        float32, shape ``(n_mels, 1 + n_fft // 2)``.
    """
    fmax = float(sr) / 2.0 if fmax is None else float(fmax)
    fft_freqs = fft_frequencies(sr=sr, n_fft=n_fft)
    edges = mel_frequencies(n_mels=n_mels + 2, fmin=fmin, fmax=fmax)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None].astype(np.float32)
    return weights


def _hz_to_octaves(frequencies: np.ndarray, *, tuning: float, bins_per_octave: int) -> np.ndarray:
    """Octaves above A0 (27.5 Hz at ``tuning`` 0) as ``librosa.hz_to_octs``."""
    a440 = 440.0 * 2.0 ** (tuning / bins_per_octave)
    return np.log2(frequencies / (a440 / 16.0))


def chroma_filterbank(
    *,
    sr: float,
    n_fft: int,
    tuning: float = 0.0,
    n_chroma: int = 12,
    ctroct: float = 5.0,
    octwidth: float = 2.0,
) -> np.ndarray:
    """Chroma filters for an STFT (``librosa.filters.chroma`` with its defaults).

    Gaussian bumps around each pitch class in every octave, columns normalised to unit
    L2 norm, weighted by a Gaussian over octaves centred on ``ctroct`` (880 Hz), rows
    starting at C.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(n_chroma, 1 + n_fft // 2)``.
    """
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    bins = n_chroma * _hz_to_octaves(frequencies, tuning=tuning, bins_per_octave=n_chroma)
    # The 0 Hz bin: 1.5 octaves below bin 1, so it is spread broadly over the classes.
    bins = np.concatenate(([bins[0] - 1.5 * n_chroma], bins))
    bin_widths = np.concatenate((np.maximum(bins[1:] - bins[:-1], 1.0), [1.0]))
    distance = np.subtract.outer(bins, np.arange(n_chroma, dtype=np.float64)).T
    half = np.round(float(n_chroma) / 2)
    distance = np.remainder(distance + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2.0 * distance / bin_widths[None, :]) ** 2)
    length = np.sqrt(np.sum(weights**2, axis=0, keepdims=True))
    weights = weights / np.where(length < np.finfo(np.float64).tiny, 1.0, length)
    weights *= np.exp(-0.5 * ((bins / n_chroma - ctroct) / octwidth) ** 2)[None, :]
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(weights[:, : 1 + n_fft // 2], dtype=np.float32)


# -- per-frame features ----------------------------------------------------------------------


def normalize_frames(features: np.ndarray, *, norm: float | None = np.inf) -> np.ndarray:
    """Scale each frame (column) to unit max-norm (``norm=inf``) or L``norm``.

    As ``librosa.util.normalize(axis=0)``: frames whose norm is below the dtype's
    smallest normal number are left as they are; ``norm=None`` returns the input.
    """
    if norm is None:
        return features
    magnitude = np.abs(features)
    if norm == np.inf:
        length = magnitude.max(axis=0, keepdims=True)
    else:
        length = np.sum(magnitude.astype(np.float64) ** norm, axis=0, keepdims=True) ** (1.0 / norm)
    threshold = np.finfo(features.dtype).tiny
    length = np.where(length < threshold, 1.0, length)
    return (features / length).astype(features.dtype, copy=False)


def power_to_db(
    power: np.ndarray, *, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0
) -> np.ndarray:
    """``10 * log10(power / ref)``, floored at ``amin`` and at ``top_db`` below the maximum.

    The ``top_db`` floor depends on the whole array's maximum: for block-wise use, join
    the blocks first (or pass ``top_db=None``).
    """
    if top_db is not None and top_db < 0:
        raise ValueError(f"top_db must be non-negative, got {top_db}")
    # One new array, worked on in place: no song-sized temporaries besides the result.
    log_spec = np.asarray(np.maximum(power, amin))
    np.log10(log_spec, out=log_spec)
    log_spec *= 10.0
    log_spec -= 10.0 * np.log10(max(amin, abs(ref)))
    if top_db is not None:
        np.maximum(log_spec, log_spec.max() - top_db, out=log_spec)
    return log_spec


def chroma_stft(
    power: np.ndarray,
    *,
    sr: float,
    n_fft: int,
    tuning: float = 0.0,
    norm: float | None = np.inf,
) -> np.ndarray:
    """Chroma of a power spectrogram (``librosa.feature.chroma_stft(S=power, tuning=...)``).

    Returns
    -------
    numpy.ndarray
        Shape ``(12, n_frames)``, the dtype of ``power`` (float32 for float32 input).
    """
    filters = _cached_chroma_filterbank(float(sr), int(n_fft), float(tuning))
    raw = filters.astype(power.dtype, copy=False) @ power
    return normalize_frames(raw, norm=norm)


_CHROMA_BANKS: dict[tuple[float, int, float], np.ndarray] = {}


def _cached_chroma_filterbank(sr: float, n_fft: int, tuning: float) -> np.ndarray:
    key = (sr, n_fft, tuning)
    if key not in _CHROMA_BANKS:
        _CHROMA_BANKS[key] = chroma_filterbank(sr=sr, n_fft=n_fft, tuning=tuning)
    return _CHROMA_BANKS[key]


def rms(magnitude: np.ndarray, *, frame_length: int) -> np.ndarray:
    """Frame RMS from an STFT magnitude (``librosa.feature.rms(S=magnitude)``), shape (1, n).

    Parseval's theorem on the one-sided spectrum: the DC and Nyquist bins count once,
    the others twice.
    """
    if magnitude.shape[0] != frame_length // 2 + 1:
        raise ValueError(
            f"magnitude has {magnitude.shape[0]} bins; frame_length={frame_length} "
            f"needs {frame_length // 2 + 1}"
        )
    power = np.abs(magnitude) ** 2
    total = power.sum(axis=0, keepdims=True)
    total -= 0.5 * power[:1]
    if frame_length % 2 == 0:
        total -= 0.5 * power[-1:]
    return np.sqrt(2.0 * total / frame_length**2)


def melspectrogram(power: np.ndarray, *, sr: float, n_mels: int = 128) -> np.ndarray:
    """Mel spectrogram of a power spectrogram (``librosa.feature.melspectrogram(S=power)``)."""
    n_fft = 2 * (power.shape[0] - 1)
    filters = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels)
    return filters.astype(power.dtype, copy=False) @ power


def mfcc(log_mel: np.ndarray, *, n_mfcc: int = 20) -> np.ndarray:
    """MFCCs of a log-power mel spectrogram: orthonormal DCT-II (``librosa.feature.mfcc``).

    Only the first ``n_mfcc`` coefficients are computed (a matrix product with those DCT
    basis rows), so no array the size of the full transform is made.
    """
    n_bands = log_mel.shape[0]
    k = np.arange(min(n_mfcc, n_bands))[:, None]
    basis = np.cos(np.pi * k * (2 * np.arange(n_bands)[None, :] + 1) / (2 * n_bands))
    basis *= np.sqrt(2.0 / n_bands)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(log_mel.dtype, copy=False) @ log_mel


def contrast_bands(
    magnitude: np.ndarray,
    *,
    sr: float,
    n_fft: int,
    fmin: float = 200.0,
    n_bands: int = 6,
    quantile: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame peak and valley of each octave band, the parts of :func:`spectral_contrast`.

    Frame by frame, so it may run on blocks; ``spectral_contrast`` is then
    ``power_to_db(peak) - power_to_db(valley)`` on the joined arrays.

    Returns
    -------
    (peak, valley) : tuple of numpy.ndarray
        Each float64, shape ``(n_bands + 1, n_frames)``.
    """
    freqs = fft_frequencies(sr=sr, n_fft=n_fft)
    if freqs.size != magnitude.shape[0]:
        raise ValueError(
            f"magnitude has {magnitude.shape[0]} bins; n_fft={n_fft} needs {freqs.size}"
        )
    edges = np.zeros(n_bands + 2)
    edges[1:] = fmin * 2.0 ** np.arange(n_bands + 1)
    if np.any(edges[:-1] >= 0.5 * sr):
        raise ValueError("a contrast band exceeds Nyquist: lower fmin or n_bands")
    shape = (n_bands + 1, magnitude.shape[1])
    valley, peak = np.zeros(shape), np.zeros(shape)
    for k, (low, high) in enumerate(itertools.pairwise(edges)):
        band = (freqs >= low) & (freqs <= high)
        idx = np.flatnonzero(band)
        if k > 0:
            band[idx[0] - 1] = True
        if k == n_bands:
            band[idx[-1] + 1 :] = True
        sub = magnitude[band]
        if k < n_bands:
            sub = sub[:-1]
        count = max(1, int(np.rint(quantile * np.sum(band))))
        ordered = np.sort(sub, axis=0)
        valley[k] = ordered[:count].mean(axis=0)
        peak[k] = ordered[-count:].mean(axis=0)
    return peak, valley


def spectral_contrast(
    magnitude: np.ndarray,
    *,
    sr: float,
    n_fft: int,
    fmin: float = 200.0,
    n_bands: int = 6,
    quantile: float = 0.02,
) -> np.ndarray:
    """Octave-band spectral contrast in dB (``librosa.feature.spectral_contrast(S=...)``)."""
    peak, valley = contrast_bands(
        magnitude, sr=sr, n_fft=n_fft, fmin=fmin, n_bands=n_bands, quantile=quantile
    )
    return power_to_db(peak) - power_to_db(valley)


# -- resampling -----------------------------------------------------------------------------


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono signal with soxr's high quality filter (``librosa.resample``'s default).

    Returns float32, ``ceil(len(y) * target_sr / orig_sr)`` samples.
    """
    import soxr

    signal = np.ascontiguousarray(y, dtype=np.float32)
    if orig_sr == target_sr:
        return signal
    out = soxr.resample(signal, orig_sr, target_sr, quality="HQ")
    expected = math.ceil(signal.size * target_sr / orig_sr)
    if out.size < expected:
        out = np.pad(out, (0, expected - out.size))
    return np.ascontiguousarray(out[:expected], dtype=np.float32)


# -- key: a mean chroma on a tuned semitone grid ---------------------------------------------

_KEY_N_FFT = 8192  # 0.37 s at 22.05 kHz: 2.7 Hz bins, under a semitone from 50 Hz up
_KEY_HOP = 2048
_KEY_LOW_MIDI = 24  # C1, 32.7 Hz: the range of librosa's default chroma_cqt (7 octaves)
_KEY_OCTAVES = 7
_TUNING_BINS = 100  # tuning histogram resolution: 1 cent
# Peaks read for the tuning (librosa's range): below 150 Hz a bin spans too many cents.
_TUNING_FMIN = 150.0
_TUNING_FMAX = 4000.0


def _semitone_edges(sr: float, tuning: float) -> tuple[np.ndarray, np.ndarray]:
    """FFT-bin ranges [start, stop) of each semitone C1..B7 and the bin nearest each centre."""
    midi = np.arange(_KEY_LOW_MIDI, _KEY_LOW_MIDI + 12 * _KEY_OCTAVES) + tuning
    centres = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
    bin_hz = sr / _KEY_N_FFT
    lower = np.ceil(centres * 2.0 ** (-0.5 / 12.0) / bin_hz).astype(np.int64)
    upper = np.ceil(centres * 2.0 ** (0.5 / 12.0) / bin_hz).astype(np.int64)
    nearest = np.rint(centres / bin_hz).astype(np.int64)
    limit = _KEY_N_FFT // 2
    return np.clip(np.stack([lower, upper], axis=1), 0, limit + 1), np.clip(nearest, 0, limit)


def _semitone_magnitudes(
    magnitude: np.ndarray, ranges: np.ndarray, nearest: np.ndarray
) -> np.ndarray:
    """Strongest bin within half a semitone of each centre (or the nearest bin), per frame."""
    out = magnitude[nearest].copy()
    for k, (start, stop) in enumerate(ranges):
        if stop > start:
            np.maximum(out[k], magnitude[start:stop].max(axis=0), out=out[k])
    return out


def tuning_offset(y: np.ndarray, sr: int) -> float:
    """The song's deviation from A440 in semitones (-0.5..0.5), from its spectral peaks.

    Like ``librosa.estimate_tuning``: the fractional pitch of every spectral peak above
    the frame's median by 10 dB, between 150 Hz and 4 kHz, weighted by its magnitude, goes
    into a histogram at 1-cent resolution; its circular mode is the tuning.  Peaks are
    located to a fraction of a bin by parabolic interpolation of the log magnitude.
    """
    bin_hz = sr / _KEY_N_FFT
    low_bin = int(np.ceil(_TUNING_FMIN / bin_hz))
    high_bin = min(int(_TUNING_FMAX / bin_hz), _KEY_N_FFT // 2 - 1)
    histogram = np.zeros(_TUNING_BINS)

    def reduce(power: np.ndarray) -> np.ndarray:
        band = np.log(power[low_bin - 1 : high_bin + 2] + 1e-12)
        centre = band[1:-1]
        is_peak = (centre > band[:-2]) & (centre >= band[2:])
        is_peak &= centre > np.median(centre, axis=0, keepdims=True) + np.log(10.0)
        rows, cols = np.nonzero(is_peak)
        a, b, c = band[rows, cols], band[rows + 1, cols], band[rows + 2, cols]
        denom = a - 2.0 * b + c
        shift = np.where(denom < 0, 0.5 * (a - c) / np.where(denom < 0, denom, -1.0), 0.0)
        freq = (low_bin + rows + np.clip(shift, -0.5, 0.5)) * bin_hz
        cents = 12.0 * np.log2(freq / 440.0)
        fraction = cents - np.round(cents)  # -0.5..0.5
        index = np.clip(((fraction + 0.5) * _TUNING_BINS).astype(np.int64), 0, _TUNING_BINS - 1)
        np.add.at(histogram, index, np.exp(0.5 * b))  # weight: magnitude at the peak
        return np.zeros((1, power.shape[1]), dtype=np.float32)

    stft_reduce(y, n_fft=_KEY_N_FFT, hop_length=_KEY_HOP, reduce=reduce)
    if not histogram.any():
        return 0.0
    # A light circular smoothing (+-3 cents) so that the mode is not one noisy cent.
    kernel = np.hanning(9)[1:-1]
    padded = np.concatenate([histogram[-3:], histogram, histogram[:3]])
    smooth = np.convolve(padded, kernel, mode="valid")
    return float((np.argmax(smooth) + 0.5) / _TUNING_BINS - 0.5)


def pitch_class_profile(y: np.ndarray, sr: int, *, tuning: float | None = None) -> np.ndarray:
    """Mean chroma of a song (12 values, C first), each frame scaled to a maximum of 1.

    A stand-in for ``librosa.feature.chroma_cqt(...).mean(axis=1)`` that needs no CQT: an
    8192-point STFT (hop 2048), whose magnitude is read on a semitone grid from C1 to B7
    at the song's tuning (:func:`tuning_offset` unless given) by taking the strongest bin
    within half a semitone of each note, which keeps a sine's level the same at any pitch
    as a constant-Q filter would.  The 84 notes are folded into 12 pitch classes.
    Computed block by block: memory does not grow with the song.

    Returns
    -------
    numpy.ndarray
        float64, shape (12,); zeros for silence.
    """
    if tuning is None:
        tuning = tuning_offset(y, sr)
    ranges, nearest = _semitone_edges(float(sr), tuning)
    total = np.zeros(12)
    count = [0]

    def reduce(power: np.ndarray) -> np.ndarray:
        notes = _semitone_magnitudes(np.sqrt(power), ranges, nearest)
        chroma = notes.reshape(_KEY_OCTAVES, 12, -1).sum(axis=0)
        total[:] += normalize_frames(chroma).sum(axis=1, dtype=np.float64)
        count[0] += chroma.shape[1]
        return np.zeros((1, power.shape[1]), dtype=np.float32)

    stft_reduce(y, n_fft=_KEY_N_FFT, hop_length=_KEY_HOP, reduce=reduce)
    return total / count[0] if count[0] else total
