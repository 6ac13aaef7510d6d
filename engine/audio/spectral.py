"""Per-video-frame spectral curves for audio-reactive motion (all normalised 0..1)."""

from __future__ import annotations

import numpy as np

from engine.audio.dsp import stft_power
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
    import librosa

    n_frames = max(1, round(duration * fps))
    spec = stft_power(y, n_fft=2048, hop_length=_HOP)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=2048)
    frame_times = librosa.frames_to_time(np.arange(spec.shape[1]), sr=sr, hop_length=_HOP)
    video_times = np.arange(n_frames) / fps

    def resample(curve: np.ndarray) -> np.ndarray:
        return np.interp(video_times, frame_times, curve).astype(np.float32)

    rms = np.sqrt(spec.sum(axis=0) / spec.shape[0])
    onset = librosa.onset.onset_strength(S=librosa.power_to_db(spec), sr=sr, hop_length=_HOP)
    bands = [spec[(freqs >= lo) & (freqs < hi)].sum(axis=0) for lo, hi in _BANDS]
    total = spec.sum(axis=0) + 1e-12
    centroid = (freqs[:, None] * spec).sum(axis=0) / total / (sr / 2.0)
    return SpectralFeatures(
        fps=float(fps),
        rms=_normalise(resample(rms)),
        onset=_normalise(resample(onset[: spec.shape[1]])),
        low=_normalise(resample(np.sqrt(bands[0]))),
        mid=_normalise(resample(np.sqrt(bands[1]))),
        high=_normalise(resample(np.sqrt(bands[2]))),
        centroid=np.clip(resample(centroid), 0.0, 1.0),
    )
