"""Per-video-frame spectral curves for audio-reactive motion (all normalised 0..1)."""

from __future__ import annotations

import numpy as np

from engine.audio.dsp import stft_reduce
from engine.audio.types import SpectralFeatures

__all__ = ["spectral_curves"]

_HOP = 512
_BANDS = ((20.0, 250.0), (250.0, 4000.0), (4000.0, 20000.0))


def _normalise(curve: np.ndarray) -> np.ndarray:
    """Scale to 0..1 by the 99th percentile, so one click does not flatten the rest."""
    top = float(np.percentile(curve, 99)) if curve.size else 0.0
    if top <= 1e-12:
        return np.zeros_like(curve, dtype=np.float32)
    return np.clip(curve / top, 0.0, 1.0).astype(np.float32)


def spectral_curves(y: np.ndarray, sr: int, *, fps: float, duration: float) -> SpectralFeatures:
    """Compute RMS, onset strength, low/mid/high band energy and centroid at ``fps``.

    Parameters
    ----------
    y : np.ndarray
        Mono float32 audio.
    sr : int
        Its sample rate.
    fps : float
        Video frame rate the curves are sampled at.
    duration : float
        Song length in seconds; the curves have ``round(duration * fps)`` values.
    """
    n_fft = 2048
    n_frames = max(1, round(duration * fps))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr).astype(np.float32)
    masks = [(freqs >= lo) & (freqs < hi) for lo, hi in _BANDS]
    previous_db: list[np.ndarray] = []

    def reduce(block: np.ndarray) -> np.ndarray:
        # Per-frame reductions only, block by block: a long song's spectrogram is
        # never held whole.  The onset flux carries the last frame over the join.
        db = 10.0 * np.log10(np.maximum(block, 1e-10))
        before = previous_db[-1] if previous_db else db[:, :1]
        flux = np.maximum(0.0, np.diff(db, axis=1, prepend=before)).mean(axis=0)
        previous_db[:] = [db[:, -1:]]
        return np.vstack(
            [
                block.sum(axis=0),
                *(block[mask].sum(axis=0) for mask in masks),
                (freqs[:, None] * block).sum(axis=0),
                flux,
            ]
        )

    power_sum, low, mid, high, weighted, onset = stft_reduce(
        y, n_fft=n_fft, hop_length=_HOP, reduce=reduce
    )
    frame_times = np.arange(power_sum.size) * _HOP / sr
    video_times = np.arange(n_frames) / fps

    def resample(curve: np.ndarray) -> np.ndarray:
        return np.interp(video_times, frame_times, curve).astype(np.float32)

    rms = np.sqrt(power_sum / (n_fft // 2 + 1))
    centroid = weighted / (power_sum + 1e-12) / (sr / 2.0)
    bands = (low, mid, high)
    return SpectralFeatures(
        fps=float(fps),
        rms=_normalise(resample(rms)),
        onset=_normalise(resample(onset)),
        low=_normalise(resample(np.sqrt(bands[0]))),
        mid=_normalise(resample(np.sqrt(bands[1]))),
        high=_normalise(resample(np.sqrt(bands[2]))),
        centroid=np.clip(resample(centroid), 0.0, 1.0),
    )
