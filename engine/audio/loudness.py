"""Integrated loudness (ITU-R BS.1770-4 / EBU R 128), in LUFS.

K-weighting (a high shelf and a high-pass, designed for any sample rate), mean
square in 400 ms blocks with 75 % overlap, an absolute gate at -70 LUFS and a
relative gate 10 LU below the ungated mean.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SILENCE_LUFS", "integrated_loudness", "k_weighting"]

SILENCE_LUFS = -70.0


def _biquad_high_shelf(fs: float) -> tuple[np.ndarray, np.ndarray]:
    gain_db, q, fc = 4.0, 1 / math.sqrt(2.0), 1500.0
    a = 10 ** (gain_db / 40.0)
    w0 = 2 * math.pi * fc / fs
    alpha = math.sin(w0) / (2 * q)
    cos_w0, sqrt_a = math.cos(w0), math.sqrt(a)
    b = np.array(
        [
            a * ((a + 1) + (a - 1) * cos_w0 + 2 * sqrt_a * alpha),
            -2 * a * ((a - 1) + (a + 1) * cos_w0),
            a * ((a + 1) + (a - 1) * cos_w0 - 2 * sqrt_a * alpha),
        ]
    )
    den = np.array(
        [
            (a + 1) - (a - 1) * cos_w0 + 2 * sqrt_a * alpha,
            2 * ((a - 1) - (a + 1) * cos_w0),
            (a + 1) - (a - 1) * cos_w0 - 2 * sqrt_a * alpha,
        ]
    )
    return b / den[0], den / den[0]


def _biquad_high_pass(fs: float) -> tuple[np.ndarray, np.ndarray]:
    q, fc = 0.5, 38.0
    w0 = 2 * math.pi * fc / fs
    alpha = math.sin(w0) / (2 * q)
    cos_w0 = math.cos(w0)
    b = np.array([(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2])
    den = np.array([1 + alpha, -2 * cos_w0, 1 - alpha])
    return b / den[0], den / den[0]


def k_weighting(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Apply the BS.1770 K-weighting filter along the last axis."""
    from scipy import signal

    out = np.asarray(samples, dtype=np.float64)
    for b, a in (_biquad_high_shelf(sample_rate), _biquad_high_pass(sample_rate)):
        out = signal.lfilter(b, a, out, axis=-1)
    return out


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness of ``samples`` (``(channels, n)`` or ``(n,)``, -1..1) in LUFS.

    Returns :data:`SILENCE_LUFS` for silence or audio shorter than one 400 ms block.
    Channels are weighted 1.0 (left, right, centre); surround weights do not apply to
    the stereo audio this product writes.
    """
    data = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    block = round(0.4 * sample_rate)
    hop = round(0.1 * sample_rate)
    if data.shape[1] < block:
        return SILENCE_LUFS
    weighted = k_weighting(data, sample_rate) ** 2
    # Mean square of every 400 ms block, from a cumulative sum (no Python loop).
    cumulative = np.concatenate(
        [np.zeros((weighted.shape[0], 1)), np.cumsum(weighted, axis=1)], axis=1
    )
    starts = np.arange(0, data.shape[1] - block + 1, hop)
    z = (cumulative[:, starts + block] - cumulative[:, starts]) / block
    power = z.sum(axis=0)
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(power)
    above_absolute = loudness > SILENCE_LUFS
    if not np.any(above_absolute):
        return SILENCE_LUFS
    relative_gate = -0.691 + 10 * np.log10(power[above_absolute].mean()) - 10.0
    gated = above_absolute & (loudness > relative_gate)
    return float(-0.691 + 10 * np.log10(power[gated].mean()))
