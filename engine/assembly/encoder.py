"""H.264 + AAC encoding with PyAV, streaming: one frame in, one frame out.

Video is yuv420p, BT.709 primaries/transfer/matrix in limited range, tagged both
in the container and in the H.264 VUI, at a constant frame rate.  The song's
audio is decoded block by block and interleaved with the video as it goes, so
memory stays flat whatever the song's length.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.decode import iter_audio_frames, probe_audio
from engine.errors import AssemblyError

__all__ = ["EncodeSettings", "EncodeStats", "H264Writer"]

log = logging.getLogger(__name__)

_BT709 = 1  # the ISO/IEC 23091-4 code for BT.709 primaries, transfer and matrix
_AAC_FRAME = 1024


@dataclass(frozen=True, kw_only=True)
class EncodeSettings:
    """Everything the encoder needs to know about the output."""

    width: int
    height: int
    fps: int
    crf: int = 21
    speed: str = "faster"
    audio_bitrate: int = 192_000
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EncodeStats:
    frames: int
    audio_samples: int
    audio_rate: int


class H264Writer:
    """Write frames to an MP4 with the song's audio muxed in.

    Use as a context manager; :meth:`close` (or leaving the ``with`` block without
    an exception) flushes both encoders and writes the trailer.

    Parameters
    ----------
    path : Path
        Output file (give a temporary path and rename it when done: see
        :func:`engine.atomic_files.atomic_path`).
    settings : EncodeSettings
    audio_path : Path
        The song; its audio is re-encoded to AAC at 44.1 or 48 kHz.
    max_audio_duration : float, optional
        Passed to the decoder's length check.
    """

    def __init__(
        self,
        path: Path,
        settings: EncodeSettings,
        *,
        audio_path: Path,
        max_audio_duration: float | None = None,
    ) -> None:
        import av

        self.settings = settings
        info = probe_audio(audio_path)
        self.audio_rate = info.sample_rate if info.sample_rate in (44100, 48000) else 48000
        try:
            self._container = av.open(str(path), mode="w", format="mp4")
        except av.error.FFmpegError as err:
            raise AssemblyError(
                f"cannot create {path}: {err}", component="encoder", stage="open"
            ) from err
        try:
            for key, value in settings.metadata:
                self._container.metadata[key] = value
            self._video = self._add_video_stream()
            self._audio = self._container.add_stream("aac", rate=self.audio_rate)
            self._audio.codec_context.layout = "stereo"
            self._audio.codec_context.bit_rate = settings.audio_bitrate
            self._audio.time_base = Fraction(1, self.audio_rate)
        except Exception:
            self._container.close()
            raise
        self._audio_blocks: Iterator[np.ndarray] | None = iter_audio_frames(
            audio_path,
            sample_rate=self.audio_rate,
            layout="stereo",
            frame_size=_AAC_FRAME,
            max_duration=max_audio_duration,
        )
        self._audio_samples = 0
        self._frames = 0
        self._closed = False

    def _add_video_stream(self) -> Any:
        s = self.settings
        stream = self._container.add_stream("libx264", rate=Fraction(s.fps, 1))
        stream.width = s.width
        stream.height = s.height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, s.fps)
        ctx = stream.codec_context
        ctx.color_primaries = _BT709
        ctx.color_trc = _BT709
        ctx.colorspace = _BT709
        ctx.color_range = 1  # limited ("tv"/MPEG) range
        ctx.gop_size = 2 * s.fps
        stream.options = {"crf": str(s.crf), "preset": s.speed, "movflags": "+faststart"}
        return stream

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, rgb: np.ndarray) -> None:
        """Encode one ``(height, width, 3)`` uint8 RGB frame, and the audio up to its end."""
        import av
        from av.video.reformatter import ColorRange, Colorspace

        s = self.settings
        if rgb.shape != (s.height, s.width, 3) or rgb.dtype != np.uint8:
            raise AssemblyError(
                f"frame {self._frames} has shape {rgb.shape} {rgb.dtype}; "
                f"expected ({s.height}, {s.width}, 3) uint8",
                component="encoder",
                stage="video",
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        yuv = frame.reformat(
            format="yuv420p",
            src_colorspace=Colorspace.ITU709,
            dst_colorspace=Colorspace.ITU709,
            src_color_range=ColorRange.JPEG,
            dst_color_range=ColorRange.MPEG,
            dst_color_trc=_BT709,
            dst_color_primaries=_BT709,
        )
        yuv.pts = self._frames
        yuv.time_base = Fraction(1, s.fps)
        self._mux(self._video.encode(yuv))
        self._frames += 1
        self._pump_audio(until_seconds=self._frames / s.fps)

    def _pump_audio(self, *, until_seconds: float | None) -> None:
        import av

        if self._audio_blocks is None:
            return
        target = None if until_seconds is None else int(until_seconds * self.audio_rate)
        while target is None or self._audio_samples < target:
            block = next(self._audio_blocks, None)
            if block is None:
                self._audio_blocks = None
                return
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block, dtype=np.float32), format="fltp", layout="stereo"
            )
            frame.sample_rate = self.audio_rate
            frame.pts = self._audio_samples
            frame.time_base = Fraction(1, self.audio_rate)
            self._audio_samples += block.shape[1]
            self._mux(self._audio.encode(frame))

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:
            self._container.mux(packet)

    @property
    def frames_written(self) -> int:
        return self._frames

    def close(self) -> EncodeStats:
        """Flush the encoders and finish the file."""
        if self._closed:
            return EncodeStats(self._frames, self._audio_samples, self.audio_rate)
        try:
            self._pump_audio(until_seconds=None)
            self._mux(self._video.encode(None))
            self._mux(self._audio.encode(None))
        finally:
            self._closed = True
            self._container.close()
        log.debug("encoded %d frames, %d audio samples", self._frames, self._audio_samples)
        return EncodeStats(self._frames, self._audio_samples, self.audio_rate)

    def abort(self) -> None:
        """Close without flushing (the caller discards the file)."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except Exception:  # closing a half-written file may fail; it is deleted anyway
                log.debug("error while aborting the encoder", exc_info=True)
