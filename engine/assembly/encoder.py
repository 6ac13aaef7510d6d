"""Encoding with PyAV: video segments, the audio track, and the join.

A render is encoded as video-only segments of a few seconds (each a closed GOP in its
own MP4, written atomically), plus the song as one AAC track; the join copies their
packets into the final MP4 without re-encoding.  A render killed mid-way therefore
loses at most the segment it was writing.  A song held in memory
(:class:`~engine.audio.decode.AudioBytes`, an encrypted project's) is encoded into
memory too (:func:`encode_audio_track` with an ``io.BytesIO``), so no clear copy of it
reaches the disk before the final video.

Video is H.264 (yuv420p) or HEVC (10-bit, for the cinema preset), BT.709
primaries/transfer/matrix in limited range, tagged in the container and in the
bitstream's VUI, at a constant frame rate (integer or NTSC-fractional such as
30000/1001).
"""

from __future__ import annotations

import heapq
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.decode import AudioSource, iter_audio_frames, probe_audio
from engine.errors import AssemblyError

__all__ = [
    "AudioTrack",
    "EncodeSettings",
    "JoinStats",
    "VideoWriter",
    "encode_audio_track",
    "join_segments",
]

log = logging.getLogger(__name__)

_BT709 = 1  # the ISO/IEC 23091-4 code for BT.709 primaries, transfer and matrix
_AAC_FRAME = 1024


@dataclass(frozen=True, kw_only=True)
class EncodeSettings:
    """Everything the encoder needs to know about the output."""

    width: int
    height: int
    fps: Fraction
    crf: int = 21
    speed: str = "veryfast"
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    gop_seconds: float = 2.0
    audio_bitrate: int = 192_000
    audio_gain_db: float = 0.0
    metadata: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fps", Fraction(self.fps).limit_denominator(1001))

    @classmethod
    def from_preset(
        cls,
        preset: Mapping[str, Any],
        *,
        width: int,
        height: int,
        fps: Fraction,
        audio_gain_db: float = 0.0,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> EncodeSettings:
        """Settings from a configuration preset (``config["presets"][name]``)."""
        return cls(
            width=width,
            height=height,
            fps=fps,
            crf=int(preset["crf"]),
            speed=str(preset["encoder_speed"]),
            codec=str(preset["codec"]),
            pix_fmt=str(preset["pix_fmt"]),
            gop_seconds=float(preset["gop_seconds"]),
            audio_bitrate=int(preset["audio_bitrate"]),
            audio_gain_db=audio_gain_db,
            metadata=metadata,
        )

    @property
    def gop_frames(self) -> int:
        return max(1, int(self.gop_seconds * self.fps))


def _open_output(path: Path | io.BytesIO, *, faststart: bool = False) -> Any:
    import av

    options = {"movflags": "+faststart"} if faststart else {}
    target = path if isinstance(path, io.BytesIO) else str(path)
    try:
        return av.open(target, mode="w", format="mp4", options=options)
    except av.error.FFmpegError as err:
        raise AssemblyError(
            f"cannot create {path}: {err}", component="encoder", stage="open"
        ) from err


class VideoWriter:
    """Encode RGB frames into a video-only MP4 (one segment).

    Use as a context manager; leaving the block without an exception flushes the
    encoder and finishes the file.
    """

    def __init__(self, path: Path, settings: EncodeSettings) -> None:
        self.settings = settings
        self._container = _open_output(path)
        try:
            self._stream = self._add_stream()
        except Exception:
            self._container.close()
            raise
        self._frames = 0
        self._closed = False

    def _add_stream(self) -> Any:
        s = self.settings
        stream = self._container.add_stream(s.codec, rate=s.fps)
        stream.width = s.width
        stream.height = s.height
        stream.pix_fmt = s.pix_fmt
        stream.time_base = 1 / s.fps
        ctx = stream.codec_context
        ctx.color_primaries = _BT709
        ctx.color_trc = _BT709
        ctx.colorspace = _BT709
        ctx.color_range = 1  # limited ("tv"/MPEG) range
        ctx.gop_size = s.gop_frames
        options = {"crf": str(s.crf), "preset": s.speed}
        if s.codec == "libx265":
            options["x265-params"] = (
                f"colorprim=bt709:transfer=bt709:colormatrix=bt709:range=limited:"
                f"keyint={s.gop_frames}:log-level=error"
            )
            stream.codec_tag = "hvc1"  # plays in QuickTime and browsers
        stream.options = options
        return stream

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, rgb: np.ndarray) -> None:
        """Encode one frame: ``(height, width, 3)`` uint8 RGB (full range), or, for
        ``yuv420p`` output, a ``(height * 3 // 2, width)`` uint8 I420 frame already in
        BT.709 limited range (:mod:`engine.assembly.yuv`), which is encoded as it is."""
        import av
        from av.video.reformatter import ColorRange, Colorspace

        s = self.settings
        if rgb.ndim == 2 and s.pix_fmt == "yuv420p":
            if rgb.shape != (s.height * 3 // 2, s.width) or rgb.dtype != np.uint8:
                raise AssemblyError(
                    f"frame {self._frames} has shape {rgb.shape} {rgb.dtype}; expected an "
                    f"I420 frame ({s.height * 3 // 2}, {s.width}) uint8",
                    component="encoder",
                    stage="video",
                )
            yuv = av.VideoFrame.from_ndarray(rgb, format="yuv420p")
            yuv.colorspace = Colorspace.ITU709
            yuv.color_range = ColorRange.MPEG
            yuv.color_trc = _BT709
            yuv.color_primaries = _BT709
            self._encode(yuv)
            return
        if rgb.shape != (s.height, s.width, 3) or rgb.dtype != np.uint8:
            raise AssemblyError(
                f"frame {self._frames} has shape {rgb.shape} {rgb.dtype}; "
                f"expected ({s.height}, {s.width}, 3) uint8",
                component="encoder",
                stage="video",
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        yuv = frame.reformat(
            format=s.pix_fmt,
            src_colorspace=Colorspace.ITU709,
            dst_colorspace=Colorspace.ITU709,
            src_color_range=ColorRange.JPEG,
            dst_color_range=ColorRange.MPEG,
            dst_color_trc=_BT709,
            dst_color_primaries=_BT709,
        )
        self._encode(yuv)

    def _encode(self, yuv: Any) -> None:
        yuv.pts = self._frames
        yuv.time_base = 1 / self.settings.fps
        for packet in self._stream.encode(yuv):
            self._container.mux(packet)
        self._frames += 1

    @property
    def frames_written(self) -> int:
        return self._frames

    def close(self) -> int:
        """Flush the encoder and finish the file; returns the number of frames."""
        if not self._closed:
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            finally:
                self._closed = True
                self._container.close()
        return self._frames

    def abort(self) -> None:
        """Close without flushing (the caller discards the file)."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except Exception:  # closing a half-written file may fail; it is deleted anyway
                log.debug("error while aborting the encoder", exc_info=True)


@dataclass(frozen=True)
class AudioTrack:
    samples: int
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate


def output_sample_rate(audio_path: AudioSource) -> int:
    """44.1 or 48 kHz sources keep their rate; anything else becomes 48 kHz."""
    rate = probe_audio(audio_path).sample_rate
    return rate if rate in (44100, 48000) else 48000


def encode_audio_track(
    audio_path: AudioSource,
    out_path: Path | io.BytesIO,
    *,
    bitrate: int = 192_000,
    gain_db: float = 0.0,
    max_duration: float | None = None,
) -> AudioTrack:
    """Decode the song and encode it as stereo AAC into ``out_path`` (an .m4a).

    ``audio_path`` may be a file or :class:`~engine.audio.decode.AudioBytes`;
    ``out_path`` a file or an ``io.BytesIO`` (the track then stays in memory).
    """
    import av

    rate = output_sample_rate(audio_path)
    gain = float(10 ** (gain_db / 20.0))
    container = _open_output(out_path)
    samples = 0
    try:
        stream = container.add_stream("aac", rate=rate)
        stream.codec_context.layout = "stereo"
        stream.codec_context.bit_rate = bitrate
        stream.time_base = Fraction(1, rate)
        for block in iter_audio_frames(
            audio_path,
            sample_rate=rate,
            layout="stereo",
            frame_size=_AAC_FRAME,
            max_duration=max_duration,
        ):
            scaled = np.clip(block * gain, -1.0, 1.0) if gain != 1.0 else block
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(scaled, dtype=np.float32), format="fltp", layout="stereo"
            )
            frame.sample_rate = rate
            frame.pts = samples
            frame.time_base = Fraction(1, rate)
            samples += block.shape[1]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    finally:
        container.close()
    return AudioTrack(samples=samples, sample_rate=rate)


@dataclass(frozen=True)
class JoinStats:
    frames: int
    video_duration: float


def _video_packets(segments: Sequence[Path], fps: Fraction) -> Iterator[tuple[float, int, Any]]:
    """Packets of every segment, shifted so segment k starts after segment k-1."""
    import av

    frames_before = 0
    for path in segments:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            count = 0
            offset = None
            for packet in container.demux(stream):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                if offset is None:
                    offset = round(Fraction(frames_before) / fps / packet.time_base)
                packet.pts += offset
                packet.dts += offset
                count += 1
                yield float(packet.dts * packet.time_base), 0, packet
            frames_before += count


def _open_track(track: Path | bytes) -> Any:
    """Open the audio track for reading: a file, or an encoded track held in memory."""
    import av

    return av.open(io.BytesIO(track) if isinstance(track, bytes) else str(track))


def _audio_packets(path: Path | bytes) -> Iterator[tuple[float, int, Any]]:
    with _open_track(path) as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            if packet.dts is None:
                continue
            yield float(packet.dts * packet.time_base), 1, packet


def join_segments(
    segments: Sequence[Path],
    audio_track: Path | bytes,
    out_path: Path,
    *,
    fps: Fraction,
    metadata: Sequence[tuple[str, str]] = (),
) -> JoinStats:
    """Copy the segments' video and the audio track into one MP4, interleaved, no re-encode.

    ``audio_track`` is an .m4a file or its bytes (a track :func:`encode_audio_track`
    wrote into an ``io.BytesIO``).
    """
    import av

    if not segments:
        raise AssemblyError("nothing to join: no video segments", component="join")
    out = _open_output(out_path, faststart=True)
    frames = 0
    try:
        for key, value in metadata:
            out.metadata[key] = value
        with av.open(str(segments[0])) as first, _open_track(audio_track) as audio:
            video_out = out.add_stream_from_template(first.streams.video[0])
            audio_out = out.add_stream_from_template(audio.streams.audio[0])
        outputs = (video_out, audio_out)
        merged = heapq.merge(
            _video_packets(segments, fps),
            _audio_packets(audio_track),
            key=lambda item: (item[0], item[1]),
        )
        for _time, kind, packet in merged:
            packet.stream = outputs[kind]
            out.mux(packet)
            frames += kind == 0
    finally:
        out.close()
    return JoinStats(frames=frames, video_duration=float(frames / fps))
