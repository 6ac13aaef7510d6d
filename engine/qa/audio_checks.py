"""Audio QC: integrated loudness, loudness range and true peak of a file's sound.

- Integrated loudness: ITU-R BS.1770-4 with our meter (:mod:`engine.audio.loudness`,
  checked against pyloudnorm to 0.1 LU in ``tests/engine/test_loudness.py``).
- Loudness range: EBU Tech 3342 (3 s short-term loudness every 100 ms, absolute gate
  -70 LUFS, relative gate 20 LU below the gated mean, 95th minus 10th percentile).
- True peak: BS.1770-4 Annex 2, 4x oversampling with the Annex's 48-tap polyphase FIR
  interpolator (none at 192 kHz and over).

Everything is measured block-wise as the sound is decoded, a few seconds at a time: the
K-weighting filters and the interpolator carry their state across block joins, and what
is kept is one float per 100 ms (the 400 ms block and 3 s window powers the gates need),
so the memory does not grow with the length of the song.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.loudness import SILENCE_LUFS
from engine.errors import MediaInputError

__all__ = [
    "AudioMeasurement",
    "decode_native_audio",
    "iter_native_audio",
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


_TAPS = TRUE_PEAK_PHASES.shape[1]  # input samples each oversampled output depends on
_CHUNK_SECONDS = 2.0  # decoded audio is measured in chunks this long
_PEAK_PIECE = 1 << 14  # samples oversampled at once by the true-peak meter


def _gated_loudness(block_power: np.ndarray) -> float:
    """BS.1770-4 gated loudness (LUFS) from the K-weighted power of each 400 ms block."""
    if block_power.size == 0:
        return SILENCE_LUFS
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(block_power)
    above_absolute = loudness > SILENCE_LUFS
    if not np.any(above_absolute):
        return SILENCE_LUFS
    relative_gate = -0.691 + 10 * np.log10(block_power[above_absolute].mean()) - 10.0
    gated = above_absolute & (loudness > relative_gate)
    return float(-0.691 + 10 * np.log10(block_power[gated].mean()))


def _range_of(short_term_power: np.ndarray) -> float:
    """EBU Tech 3342 loudness range (LU) from the power of each 3 s short-term window."""
    if short_term_power.size == 0:
        return 0.0
    with np.errstate(divide="ignore"):
        short_term = -0.691 + 10 * np.log10(short_term_power)
    gated = short_term[short_term > SILENCE_LUFS]
    if gated.size == 0:
        return 0.0
    relative = -0.691 + 10 * np.log10(np.mean(10 ** ((gated + 0.691) / 10))) - 20.0
    kept = gated[gated > relative]
    if kept.size == 0:
        return 0.0
    low, high = np.percentile(kept, [10, 95])
    return float(high - low)


class _LoudnessMeter:
    """K-weighted power of every 400 ms block and 3 s window (100 ms apart), fed in chunks.

    The K-weighting filters carry their state across chunks, so the result does not
    depend on where the chunks join.  Only the channel-summed squared signal of the last
    3 s (plus the chunk being fed) is held, and one float per block and per window: the
    memory does not grow with the length of the sound beyond those 20 floats a second.
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        from engine.audio.loudness import _biquad_high_pass, _biquad_high_shelf

        self.block = round(0.4 * sample_rate)
        self.window = round(3.0 * sample_rate)
        self.hop = round(0.1 * sample_rate)
        self.filters = [_biquad_high_shelf(sample_rate), _biquad_high_pass(sample_rate)]
        self.states = [np.zeros((channels, 2)) for _ in self.filters]
        self.pending = np.zeros(0)  # squared K-weighted samples, summed over channels
        self.pending_start = 0  # sample index of pending[0]
        self.next_block = 0
        self.next_window = 0
        self.block_power: list[float] = []
        self.window_power: list[float] = []

    def feed(self, chunk: np.ndarray) -> None:
        """Add ``(channels, n)`` samples (the channel weights already applied)."""
        from scipy import signal

        if chunk.shape[1] == 0:
            return
        weighted = np.asarray(chunk, dtype=np.float64)
        for i, (b, a) in enumerate(self.filters):
            weighted, self.states[i] = signal.lfilter(b, a, weighted, axis=-1, zi=self.states[i])
        self.pending = np.concatenate([self.pending, (weighted**2).sum(axis=0)])
        cumulative = np.concatenate([[0.0], np.cumsum(self.pending)])
        end = self.pending_start + self.pending.size
        self.next_block = self._powers(cumulative, end, self.next_block, self.block,
                                       self.block_power)  # fmt: skip
        self.next_window = self._powers(cumulative, end, self.next_window, self.window,
                                        self.window_power)  # fmt: skip
        drop = min(self.next_block, self.next_window) - self.pending_start
        if drop > 0:
            self.pending = self.pending[drop:]
            self.pending_start += drop

    def _powers(
        self, cumulative: np.ndarray, end: int, first: int, length: int, out: list[float]
    ) -> int:
        """Append the mean power of every complete ``length`` window from ``first``."""
        if end < first + length:
            return first
        starts = np.arange(first, end - length + 1, self.hop) - self.pending_start
        out.extend(((cumulative[starts + length] - cumulative[starts]) / length).tolist())
        return int(starts[-1]) + self.pending_start + self.hop

    def integrated(self) -> float:
        return _gated_loudness(np.asarray(self.block_power))

    def loudness_range(self) -> float:
        return _range_of(np.asarray(self.window_power))


class _TruePeakMeter:
    """Running true peak (BS.1770-4 Annex 2) of samples fed in chunks.

    Each chunk is oversampled with the last ``_TAPS`` input samples of the one before
    prepended (the interpolator's state), and only the outputs those inputs complete are
    kept, so the peak is the same wherever the chunks join; :meth:`close` adds the
    interpolator's tail after the last sample (silence assumed after the signal).
    """

    def __init__(self, sample_rate: int) -> None:
        self.oversample = sample_rate < 192000
        self.tail: np.ndarray | None = None
        self.peak = 0.0  # the phase-0 outputs are ~ the samples: start from their peak

    def feed(self, chunk: np.ndarray) -> None:
        if chunk.shape[1] == 0:
            return
        self.peak = max(self.peak, float(np.max(np.abs(chunk), initial=0.0)))
        if not self.oversample:
            return
        # Oversampled 4x to float64 a chunk takes 32x its float32 size: a piece at a time.
        for start in range(0, chunk.shape[1], _PEAK_PIECE):
            self._oversample(chunk[:, start : start + _PEAK_PIECE])

    def _oversample(self, chunk: np.ndarray) -> None:
        from scipy import signal

        data = chunk if self.tail is None else np.concatenate([self.tail, chunk], axis=1)
        up = signal.upfirdn(_PROTOTYPE, data, up=4, axis=1)
        # Output 4m + p interpolates between input m - 6 and m - 5 (the FIR's delay): an
        # output is complete once ``_TAPS`` inputs precede it; the ones past the last
        # input assume silence after it, which only :meth:`close` may.
        first = 0 if self.tail is None else 4 * self.tail.shape[1]
        kept = up[:, first : 4 * data.shape[1]]
        if kept.size:  # the largest magnitude, without an array of magnitudes
            self.peak = max(self.peak, float(kept.max()), -float(kept.min()))
        self.tail = data[:, -_TAPS:].copy()

    def close(self) -> float:
        """The peak (linear), the interpolator's tail after the last sample included."""
        from scipy import signal

        if self.oversample and self.tail is not None:
            up = signal.upfirdn(_PROTOTYPE, self.tail, up=4, axis=1)
            tail = up[:, 4 * self.tail.shape[1] :]
            self.peak = max(self.peak, float(np.max(np.abs(tail), initial=0.0)))
            self.tail = None
        return self.peak


class _AudioMeter:
    """Every audio measurement of a stream fed in chunks, in memory independent of its length.

    ``names`` are the FFmpeg channel names: with more than two channels, LFE is left out
    of the loudness and surround channels weigh 1.41 in power (BS.1770-4 Table 3); the
    peaks are of the real channels.
    """

    def __init__(self, sample_rate: int, channels: int, names: list[str] | None = None) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.names = names if names and len(names) == channels else []
        loudness_channels = (
            channels if len(self.names) <= 2 else sum(1 for name in self.names if name != "LFE")
        )
        self.loudness = _LoudnessMeter(sample_rate, loudness_channels)
        self.peaks = _TruePeakMeter(sample_rate)
        self.sample_peak = 0.0
        self.samples = 0

    def feed(self, chunk: np.ndarray) -> None:
        """Add ``(channels, n)`` float32 samples, full scale = 1.0."""
        data = np.atleast_2d(np.asarray(chunk, dtype=np.float32))
        self.samples += data.shape[1]
        self.sample_peak = max(self.sample_peak, float(np.max(np.abs(data), initial=0.0)))
        self.peaks.feed(data)
        self.loudness.feed(_bs1770_weighted(data, self.names) if self.names else data)

    def result(self) -> AudioMeasurement:
        return AudioMeasurement(
            integrated_lufs=self.loudness.integrated(),
            loudness_range_lu=self.loudness.loudness_range(),
            true_peak_dbtp=_db(self.peaks.close()),
            sample_peak_dbfs=_db(self.sample_peak),
            duration=self.samples / self.sample_rate,
            sample_rate=self.sample_rate,
            channels=self.channels,
        )


def _chunks(data: np.ndarray, length: int) -> Iterator[np.ndarray]:
    for start in range(0, data.shape[1], max(1, length)):
        yield data[:, start : start + length]


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
        Oversampling runs on blocks this long (the filter state carried across their
        joins), to bound memory; the result does not depend on it.

    Returns
    -------
    float
        dBTP (-120 for silence).
    """
    data = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    meter = _TruePeakMeter(sample_rate)
    for chunk in _chunks(data, max(int(block_seconds * sample_rate), 4 * _TAPS)):
        meter.feed(chunk)
    return _db(meter.close())


def loudness_range(samples: np.ndarray, sample_rate: int) -> float:
    """Loudness range (LRA) in LU per EBU Tech 3342; 0 for audio shorter than 3 s.

    3 s short-term loudness every 100 ms, absolute gate -70 LUFS, relative gate 20 LU
    below the gated mean, 95th minus 10th percentile.
    """
    data = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    meter = _LoudnessMeter(sample_rate, data.shape[0])
    for chunk in _chunks(data, round(_CHUNK_SECONDS * sample_rate)):
        meter.feed(chunk)
    return meter.loudness_range()


def measure_samples(samples: np.ndarray, sample_rate: int) -> AudioMeasurement:
    """Every audio measurement of ``(channels, n)`` float samples (already weighted)."""
    data = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    meter = _AudioMeter(sample_rate, data.shape[0])
    for chunk in _chunks(data, round(_CHUNK_SECONDS * sample_rate)):
        meter.feed(chunk)
    return meter.result()


def _open_audio(path: Path, stream_index: int) -> tuple[Any, Any, int, Any, list[str]]:
    """(container, stream, sample rate, layout, channel names) of an audio stream."""
    import av

    container = av.open(str(path))
    if not container.streams.audio:
        container.close()
        raise MediaInputError(path, "has no audio stream; check the export settings")
    stream = container.streams.audio[stream_index]
    rate = int(stream.codec_context.sample_rate or stream.rate)
    layout = stream.codec_context.layout
    return container, stream, rate, layout, [c.name for c in layout.channels]


def iter_native_audio(
    path: Path, *, stream_index: int = 0, chunk_seconds: float = _CHUNK_SECONDS
) -> Iterator[tuple[np.ndarray, int, list[str]]]:
    """The audio stream's samples at its own rate and layout, ``chunk_seconds`` at a time.

    Yields ``((channels, n) float32, sample_rate, channel_names)``; the chunks are about
    ``chunk_seconds`` long (the decoder's frames are gathered up to that), so only one
    chunk of the stream is in memory at a time.

    Raises
    ------
    MediaInputError
        No audio stream, or the stream cannot be decoded.
    """
    import av

    total = 0
    try:
        container, stream, rate, layout, names = _open_audio(path, stream_index)
        with container:
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            wanted = max(1, round(chunk_seconds * rate))
            pending: list[np.ndarray] = []
            held = 0
            for frame in itertools.chain(container.decode(stream), [None]):
                for out in resampler.resample(frame):
                    block = out.to_ndarray()
                    pending.append(block)
                    held += block.shape[1]
                    if held >= wanted:
                        total += held
                        yield np.concatenate(pending, axis=1).astype(np.float32, copy=False), \
                            rate, names  # fmt: skip
                        pending, held = [], 0
            if pending:
                total += held
                yield np.concatenate(pending, axis=1).astype(np.float32, copy=False), rate, names
    except av.error.FFmpegError as err:
        raise MediaInputError(
            path,
            f"its audio cannot be decoded ({err}); the file is damaged or truncated: "
            "export or copy it again",
        ) from err
    if total == 0:
        raise MediaInputError(path, "its audio stream holds no samples; re-export the file")


def decode_native_audio(path: Path, *, stream_index: int = 0) -> tuple[np.ndarray, int, list[str]]:
    """The whole audio stream's samples at its own rate and channel layout.

    Returns ``((channels, n) float32, sample_rate, channel_names)``.  Holds the whole
    stream in memory: measurements use :func:`iter_native_audio` instead.

    Raises
    ------
    MediaInputError
        No audio stream, or the stream cannot be decoded.
    """
    chunks = list(iter_native_audio(path, stream_index=stream_index))
    return np.concatenate([c for c, _, _ in chunks], axis=1), chunks[0][1], chunks[0][2]


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

    The sound is decoded and measured a few seconds at a time: memory does not grow with
    its length.

    Raises
    ------
    MediaInputError
        The file has no decodable audio.
    """
    path = Path(path)
    meter: _AudioMeter | None = None
    for chunk, rate, names in iter_native_audio(path):
        if meter is None:
            meter = _AudioMeter(rate, chunk.shape[0], names)
        meter.feed(chunk)
    if meter is None:  # iter_native_audio raises first; kept for the type checker
        raise MediaInputError(path, "its audio stream holds no samples; re-export the file")
    measurement = meter.result()
    log.debug("audio of %s: %s", path, measurement)
    return measurement
