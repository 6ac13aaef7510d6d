"""Numpy versions of the two librosa routines the analyser runs on every song.

librosa compiles these with numba on first use (about 20 s on a 2-core machine, every
time the package is freshly installed); these give the same results with numpy and
scipy alone, so the first analysis after an install is as quick as the rest.
Tests compare both with librosa.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from scipy.fft import rfft  # pocketfft vectorised over frames: 3x numpy.fft's speed

__all__ = ["dp_beats", "stft", "stft_power", "stft_reduce"]


def _frame_count(n_samples: int, n_fft: int, hop_length: int) -> int:
    return 1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length


def _frame_blocks(y: np.ndarray, n_fft: int, hop_length: int) -> Iterator[np.ndarray]:
    """Centred, zero-padded frames of ``y`` in blocks of at most ``_block_frames`` frames.

    Each block is a read-only ``(frames, n_fft)`` view of a short padded copy of the
    samples it covers, so no copy of the whole song is made (``numpy.pad`` would).
    """
    signal = np.asarray(y, dtype=np.float32)
    half = n_fft // 2
    count = _frame_count(signal.size, n_fft, hop_length)
    step = _block_frames(n_fft)
    for first in range(0, count, step):
        frames = min(step, count - first)
        lo = first * hop_length - half  # first sample of the block, in signal coordinates
        hi = lo + (frames - 1) * hop_length + n_fft
        segment = np.zeros(hi - lo, dtype=np.float32)
        a, b = max(lo, 0), min(hi, signal.size)
        if b > a:
            segment[a - lo : b - lo] = signal[a:b]
        yield np.lib.stride_tricks.as_strided(
            segment,
            shape=(frames, n_fft),
            strides=(segment.strides[0] * hop_length, segment.strides[0]),
            writeable=False,
        )


def _window(n_fft: int) -> np.ndarray:
    from scipy.signal import get_window

    return get_window("hann", n_fft, fftbins=True).astype(np.float32)


# Samples per FFT block (frames x n_fft): 2 MiB per float32 array whatever n_fft, so
# memory stays bounded for long songs (a block's FFT, power and reductions together stay
# near 10 MiB) while the FFT still runs on batches of 64 to 512 frames.
_BLOCK_SAMPLES = 512 * 1024


def _block_frames(n_fft: int) -> int:
    return max(16, _BLOCK_SAMPLES // n_fft)


def stft(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred STFT with a periodic Hann window and zero padding, as ``librosa.stft``.

    Returns a complex64 array of shape ``(1 + n_fft // 2, 1 + len(y) // hop_length)``.
    """
    window = _window(n_fft)
    count = _frame_count(np.asarray(y).size, n_fft, hop_length)
    spectrum = np.empty((n_fft // 2 + 1, count), dtype=np.complex64)
    start = 0
    for frames in _frame_blocks(y, n_fft, hop_length):
        spectrum[:, start : start + frames.shape[0]] = rfft(frames * window, axis=1).T
        start += frames.shape[0]
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
    applied to blocks of frames (in order) and the results written into one array, so
    the full power spectrogram is never held at once.  It gets a float32
    ``(1 + n_fft // 2, frames)`` block and returns a ``(rows, frames)`` array.
    """
    window = _window(n_fft)
    count = _frame_count(np.asarray(y).size, n_fft, hop_length)
    out: np.ndarray | None = None
    start = 0
    for frames in _frame_blocks(y, n_fft, hop_length):
        spectrum = rfft(frames * window, axis=1).T
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32, copy=False)
        del spectrum
        part = power if reduce is None else reduce(power)
        if out is None:
            out = np.empty((part.shape[0], count), dtype=part.dtype)
        out[:, start : start + part.shape[1]] = part
        start += part.shape[1]
        del power, part  # before the next block is made: one block alive at a time
    assert out is not None  # there is always at least one frame
    return out


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
