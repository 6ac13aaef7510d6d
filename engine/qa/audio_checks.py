"""Audio QC: integrated loudness, loudness range and true peak of a file's sound.

- Integrated loudness: ITU-R BS.1770-4 with our meter (:mod:`engine.audio.loudness`,
  checked against pyloudnorm to 0.1 LU in ``tests/engine/test_loudness.py``).
- Loudness range: EBU Tech 3342 (3 s short-term loudness every 100 ms, absolute gate
  -70 LUFS, relative gate 20 LU below the gated mean, 95th minus 10th percentile).
- True peak: BS.1770-4 Annex 2, 4x oversampling with a polyphase FIR interpolator
  (2x at 96 kHz and over, none at 192 kHz), done in blocks so long songs stay small.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.loudness import SILENCE_LUFS, integrated_loudness, k_weighting
from engine.errors import MediaInputError

__all__ = [
    "AudioMeasurement",
    "decode_native_audio",
    "loudness_range",
    "measure_audio",
    "measure_samples",
    "true_peak_dbtp",
]

log = logging.getLogger(__name__)

_SILENT_DB = -120.0
# BS.1770-4 channel weights by FFmpeg channel name; LFE is not measured.
_SURROUND = {"SL", "SR", "BL", "BR", "LS", "RS"}


@dataclass(frozen=True, kw_only=True)
class AudioMeasurement:
    """Loudness and peaks of one audio stream."""

    integrated_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    duration: float
    sample_rate: int
    channels: int

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _db(value: float) -> float:
    return 20 * math.log10(value) if value > 0 else _SILENT_DB


def true_peak_dbtp(samples: np.ndarray, sample_rate: int, *, block_seconds: float = 10.0) -> float:
    """True peak in dBTP: the peak of the signal oversampled 4x (BS.1770-4 Annex 2).

    Parameters
    ----------
    samples : numpy.ndarray
        ``(channels, n)`` or ``(n,)`` float samples, full scale = 1.0.
    sample_rate : int
        Their rate; 4x below 96 kHz, 2x below 192 kHz, 1x above.
    block_seconds : float
        Oversampling runs on blocks this long (with overlap), to bound memory.

    Returns
    -------
    float
        dBTP (-120 for silence).
    """
    from scipy import signal

    data = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    factor = 4 if sample_rate < 96000 else 2 if sample_rate < 192000 else 1
    if factor == 1 or data.shape[1] == 0:
        return _db(float(np.max(np.abs(data), initial=0.0)))
    # resample_poly's FIR (Kaiser windowed sinc) spans 10 input samples each side.
    pad = 32
    block = max(int(block_seconds * sample_rate), 4 * pad)
    peak = 0.0
    for start in range(0, data.shape[1], block):
        lo, hi = max(0, start - pad), min(data.shape[1], start + block + pad)
        up = signal.resample_poly(data[:, lo:hi], factor, 1, axis=1)
        keep = up[:, (start - lo) * factor : (min(start + block, data.shape[1]) - lo) * factor]
        peak = max(peak, float(np.max(np.abs(keep), initial=0.0)))
    return _db(peak)


def loudness_range(samples: np.ndarray, sample_rate: int) -> float:
    """Loudness range (LRA) in LU per EBU Tech 3342; 0 for audio shorter than 3 s."""
    data = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    window, hop = round(3.0 * sample_rate), round(0.1 * sample_rate)
    if data.shape[1] < window:
        return 0.0
    weighted = k_weighting(data, sample_rate) ** 2
    cumulative = np.concatenate(
        [np.zeros((weighted.shape[0], 1)), np.cumsum(weighted, axis=1)], axis=1
    )
    starts = np.arange(0, data.shape[1] - window + 1, hop)
    power = ((cumulative[:, starts + window] - cumulative[:, starts]) / window).sum(axis=0)
    with np.errstate(divide="ignore"):
        short_term = -0.691 + 10 * np.log10(power)
    gated = short_term[short_term > SILENCE_LUFS]
    if gated.size == 0:
        return 0.0
    relative = -0.691 + 10 * np.log10(np.mean(10 ** ((gated + 0.691) / 10))) - 20.0
    kept = gated[gated > relative]
    if kept.size == 0:
        return 0.0
    low, high = np.percentile(kept, [10, 95])
    return float(high - low)


def measure_samples(samples: np.ndarray, sample_rate: int) -> AudioMeasurement:
    """Every audio measurement of ``(channels, n)`` float samples (already weighted)."""
    data = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    return AudioMeasurement(
        integrated_lufs=integrated_loudness(data, sample_rate),
        loudness_range_lu=loudness_range(data, sample_rate),
        true_peak_dbtp=true_peak_dbtp(data, sample_rate),
        sample_peak_dbfs=_db(float(np.max(np.abs(data), initial=0.0))),
        duration=data.shape[1] / sample_rate,
        sample_rate=sample_rate,
        channels=data.shape[0],
    )


def decode_native_audio(path: Path, *, stream_index: int = 0) -> tuple[np.ndarray, int, list[str]]:
    """The audio stream's samples at its own rate and channel layout.

    Returns ``((channels, n) float32, sample_rate, channel_names)``.

    Raises
    ------
    MediaInputError
        No audio stream, or the stream cannot be decoded.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaInputError(path, "has no audio stream; check the export settings")
            stream = container.streams.audio[stream_index]
            rate = int(stream.codec_context.sample_rate or stream.rate)
            layout = stream.codec_context.layout
            names = [c.name for c in layout.channels]
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            blocks: list[np.ndarray] = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    blocks.append(out.to_ndarray())
            for out in resampler.resample(None):
                blocks.append(out.to_ndarray())
    except av.error.FFmpegError as err:
        raise MediaInputError(
            path,
            f"its audio cannot be decoded ({err}); the file is damaged or truncated: "
            "export or copy it again",
        ) from err
    if not blocks:
        raise MediaInputError(path, "its audio stream holds no samples; re-export the file")
    return np.concatenate(blocks, axis=1).astype(np.float32, copy=False), rate, names


def _bs1770_weighted(samples: np.ndarray, names: list[str]) -> np.ndarray:
    """Drop LFE and weight surround channels by 1.41 in power (BS.1770-4 Table 3)."""
    if len(names) != samples.shape[0] or len(names) <= 2:
        return samples
    rows = []
    for row, name in zip(samples, names, strict=True):
        if name == "LFE":
            continue
        rows.append(row * math.sqrt(1.41) if name in _SURROUND else row)
    return np.stack(rows)


def measure_audio(path: Path | str) -> AudioMeasurement:
    """Loudness, loudness range and true peak of the first audio stream of ``path``.

    Raises
    ------
    MediaInputError
        The file has no decodable audio.
    """
    path = Path(path)
    samples, rate, names = decode_native_audio(path)
    measurement = measure_samples(_bs1770_weighted(samples, names), rate)
    # Peaks are of the real channels (LFE included), not of the weighted ones.
    if len(names) > 2:
        measurement = AudioMeasurement(
            **{
                **asdict(measurement),
                "true_peak_dbtp": true_peak_dbtp(samples, rate),
                "sample_peak_dbfs": _db(float(np.max(np.abs(samples)))),
                "channels": samples.shape[0],
            }
        )
    log.debug("audio of %s: %s", path, measurement)
    return measurement
