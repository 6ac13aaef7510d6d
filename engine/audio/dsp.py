"""Numpy versions of the two librosa routines the analyser runs on every song.

librosa compiles these with numba on first use (about 20 s on a 2-core machine, every
time the package is freshly installed); these give the same results with numpy and
scipy alone, so the first analysis after an install is as quick as the rest.
Tests compare both with librosa.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.fft import rfft  # pocketfft vectorised over frames: 3x numpy.fft's speed

__all__ = ["dp_beats", "stft", "stft_power", "stft_reduce"]


def _frames(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred, zero-padded frames of ``y`` as a read-only ``(count, n_fft)`` view."""
    signal = np.asarray(y, dtype=np.float32)
    padded = np.pad(signal, (n_fft // 2, n_fft // 2), mode="constant")
    count = 1 + (len(padded) - n_fft) // hop_length
    return np.lib.stride_tricks.as_strided(
        padded,
        shape=(count, n_fft),
        strides=(padded.strides[0] * hop_length, padded.strides[0]),
        writeable=False,
    )


def _window(n_fft: int) -> np.ndarray:
    from scipy.signal import get_window

    return get_window("hann", n_fft, fftbins=True).astype(np.float32)


_BLOCK = 2048  # frames per FFT block: bounded memory for long songs


def stft(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred STFT with a periodic Hann window and zero padding, as ``librosa.stft``.

    Returns a complex64 array of shape ``(1 + n_fft // 2, 1 + len(y) // hop_length)``.
    """
    frames, window = _frames(y, n_fft, hop_length), _window(n_fft)
    spectrum = np.empty((n_fft // 2 + 1, frames.shape[0]), dtype=np.complex64)
    for start in range(0, frames.shape[0], _BLOCK):
        spectrum[:, start : start + _BLOCK] = rfft(
            frames[start : start + _BLOCK] * window, axis=1
        ).T
    return spectrum


def stft_reduce(
    y: np.ndarray,
    *,
    n_fft: int,
    hop_length: int,
    reduce: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """``|stft|**2`` (float32), or ``reduce`` of it, computed block by block.

    ``reduce`` must work frame by frame (a filter bank, a per-frame norm): it is
    applied to blocks of frames and the results joined, so the full power
    spectrogram is never held at once.
    """
    frames, window = _frames(y, n_fft, hop_length), _window(n_fft)
    parts = []
    for start in range(0, frames.shape[0], _BLOCK):
        spectrum = rfft(frames[start : start + _BLOCK] * window, axis=1).T
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32, copy=False)
        parts.append(power if reduce is None else reduce(power))
    return np.concatenate(parts, axis=1)


def stft_power(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """``|stft|**2`` as float32 (never holding the complex spectrum)."""
    return stft_reduce(y, n_fft=n_fft, hop_length=hop_length)


def dp_beats(
    onset_envelope: np.ndarray, *, bpm: float, frame_rate: float, tightness: float
) -> np.ndarray:
    """Beat frames by Ellis's dynamic programme, as ``librosa.beat.beat_track(trim=False)``.

    The inner search is vectorised over blocks of half a beat: every predecessor of a
    frame lies at least half a beat back, so a whole block can be scored at once.
    """
    envelope = np.asarray(onset_envelope, dtype=np.float64)
    n = envelope.size
    if n == 0 or not envelope.any():
        return np.array([], dtype=np.int64)
    period = float(np.round(frame_rate * 60.0 / bpm))
    norm = envelope.std(ddof=1) + np.finfo(envelope.dtype).tiny
    window = np.exp(-0.5 * (np.arange(-period, period + 1) * 32.0 / period) ** 2)
    normalised = envelope / norm
    normalised[0] = 0.0  # librosa's loop never reads the first frame; match it exactly
    localscore = np.convolve(normalised, window, mode="same")

    near = int(np.round(period / 2))  # nearest predecessor: i - near
    far = int(2 * period)  # farthest predecessor: i - far
    lags = np.arange(near, far + 1)  # searched from the nearest back, as librosa does
    penalty = tightness * (np.log(lags) - np.log(period)) ** 2
    cumscore = np.empty(n)
    backlink = np.full(n, -1, dtype=np.int64)
    step = max(1, near)
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        locs = rows[:, None] - lags[None, :]
        valid = locs >= 0
        scores = np.where(valid, cumscore[np.clip(locs, 0, None)] - penalty[None, :], -np.inf)
        best = np.argmax(scores, axis=1)  # first maximum: the nearest predecessor wins ties
        best_score = scores[np.arange(rows.size), best]
        found = np.isfinite(best_score)
        cumscore[rows] = localscore[rows] + np.where(found, best_score, 0.0)
        backlink[rows] = np.where(found, locs[np.arange(rows.size), best], -1)
    # Frames before the first real onset start no chain.
    above = np.flatnonzero(localscore >= 0.01 * localscore.max())
    first = int(above[0]) if above.size else n
    backlink[:first] = -1

    # The last beat: the last local maximum of cumscore above half their median.
    padded = np.concatenate([cumscore[:1], cumscore, cumscore[-1:]])
    peaks = (cumscore > padded[:-2]) & (cumscore >= padded[2:])
    threshold = 0.5 * float(np.median(cumscore[peaks])) if peaks.any() else 0.0
    candidates = np.flatnonzero(peaks & (cumscore >= threshold))
    tail = int(candidates[-1]) if candidates.size else n - 1

    beats = np.zeros(n, dtype=bool)
    node = tail
    while node >= 0:
        beats[node] = True
        node = int(backlink[node])
    # librosa always drops beats on frames with no onset at the very start and end.
    lead = 0
    while lead < n and localscore[lead] <= 0.0:
        beats[lead] = False
        lead += 1
    end = n - 1
    while end >= 0 and localscore[end] <= 0.0:
        beats[end] = False
        end -= 1
    return np.flatnonzero(beats)
