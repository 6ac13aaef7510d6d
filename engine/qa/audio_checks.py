"""Audio QC: integrated loudness, loudness range and true peak of a file's sound.

- Integrated loudness: ITU-R BS.1770-4 with our meter (:mod:`engine.audio.loudness`,
  checked against pyloudnorm to 0.1 LU in ``tests/engine/test_loudness.py``).
- Loudness range: EBU Tech 3342 (3 s short-term loudness every 100 ms, absolute gate
  -70 LUFS, relative gate 20 LU below the gated mean, 95th minus 10th percentile).
- True peak: BS.1770-4 Annex 2, 4x oversampling with the Annex's 48-tap polyphase FIR
  interpolator (none at 192 kHz and over), done in blocks so long songs stay small.
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


# ITU-R BS.1770-4 Annex 2: the 48-tap, 4-phase interpolating FIR (12 taps per phase).
# Phases 2 and 3 are phases 1 and 0 reversed (the prototype is symmetric).
_PHASE_0 = (
    0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000,
    -0.0594482421875, 0.1373291015625, 0.9721679687500, -0.1022949218750,
    0.0476074218750, -0.0266113281250, 0.0148925781250, -0.0083007812500,
)  # fmt: skip
_PHASE_1 = (
    -0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250,
    -0.1665039062500, 0.4650878906250, 0.7797851562500, -0.2003173828125,
    0.1015625000000, -0.0582275390625, 0.0330810546875, -0.0189208984375,
)  # fmt: skip
TRUE_PEAK_PHASES = np.array([_PHASE_0, _PHASE_1, _PHASE_1[::-1], _PHASE_0[::-1]])
# The prototype for scipy.signal.upfirdn: tap 4k + p is coefficient k of phase p.
_PROTOTYPE = TRUE_PEAK_PHASES.T.ravel()


def true_peak_dbtp(samples: np.ndarray, sample_rate: int, *, block_seconds: float = 10.0) -> float:
    """True peak in dBTP: the peak of the signal oversampled 4x (BS.1770-4 Annex 2).

    The interpolator is the Annex's own 48-tap, 4-phase FIR; it over-reads tones near
    Nyquist by up to a few tenths of a dB (never under-reads much), which keeps a limiter
    set by it on the safe side.  At 192 kHz and above the samples are used as they are.

    Parameters
    ----------
    samples : numpy.ndarray
        ``(channels, n)`` or ``(n,)`` float samples, full scale = 1.0.
    sample_rate : int
        Their rate.
    block_seconds : float
        Oversampling runs on blocks this long (with overlap), to bound memory.

    Returns
    -------
    float
        dBTP (-120 for silence).
    """
    from scipy import signal

    data = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    if sample_rate >= 192000 or data.shape[1] == 0:
        return _db(float(np.max(np.abs(data), initial=0.0)))
    taps = TRUE_PEAK_PHASES.shape[1]  # input samples each output depends on
    block = max(int(block_seconds * sample_rate), 4 * taps)
    peak = float(np.max(np.abs(data), initial=0.0))  # the phase-0 outputs are ~ the samples
    for start in range(0, data.shape[1], block):
        lo, hi = max(0, start - taps), min(data.shape[1], start + block)
        up = signal.upfirdn(_PROTOTYPE, data[:, lo:hi], up=4, axis=1)
        # Output 4m + p interpolates between input m - 6 and m - 5 (the FIR's delay), so
        # every output of this block's inputs is complete once ``taps`` inputs precede it.
        first = 4 * (start - lo) if start > 0 else 0
        # The tail past the block's last input assumes silence after it: true only at the
        # end of the signal; elsewhere the next block computes those outputs in full.
        last = up.shape[1] if hi == data.shape[1] else 4 * (hi - lo)
        peak = max(peak, float(np.max(np.abs(up[:, first:last]), initial=0.0)))
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
