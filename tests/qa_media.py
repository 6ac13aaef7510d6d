"""Media with known defects for the QC tests, written with PyAV so values are exact.

Video frames are given as Y'CbCr planes and encoded losslessly (x264 at qp 0), so the
code values the checks decode are the ones written here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def planes(width: int, height: int, y: int = 128, u: int = 128, v: int = 128) -> Planes:
    """Flat yuv420p planes."""
    return (
        np.full((height, width), y, np.uint8),
        np.full((height // 2, width // 2), u, np.uint8),
        np.full((height // 2, width // 2), v, np.uint8),
    )


def ramp(width: int, height: int, shift: int = 0) -> Planes:
    """A clean limited-range picture: a moving luma ramp 32..220 and mild chroma."""
    x = (np.arange(width) + shift) % width
    row = (32 + 188 * x / max(width - 1, 1)).astype(np.uint8)
    y = np.tile(row, (height, 1))
    u = np.full((height // 2, width // 2), 120, np.uint8)
    v = np.full((height // 2, width // 2), 136, np.uint8)
    return y, u, v


def write_video(
    path: Path,
    frames: Sequence[Planes] | Callable[[int], Planes],
    *,
    count: int | None = None,
    fps: int = 25,
    tags: bool = True,
    full_range: bool = False,
    lossless: bool = True,
    gop: int | None = None,
    audio: tuple[np.ndarray, int] | None = None,
    audio_codec: str = "aac",
) -> Path:
    """Encode yuv420p planes (a list, or ``frames(i)`` for ``count`` frames) as H.264 MP4.

    ``audio`` is ``((channels, n) float32, rate)``; it is written as it is (its own length).
    """
    import av
    from av.video.reformatter import ColorRange, Colorspace

    n = len(frames) if count is None else count  # type: ignore[arg-type]
    get = frames if callable(frames) else (lambda i: frames[i])  # type: ignore[index]
    first = get(0)
    height, width = first[0].shape
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        cc = stream.codec_context
        if tags:
            cc.color_primaries = cc.color_trc = cc.colorspace = 1
        cc.color_range = 2 if full_range else 1
        cc.gop_size = gop or fps
        options = {"preset": "ultrafast"}
        options.update({"qp": "0"} if lossless else {"crf": "23"})
        stream.options = options
        astream = None
        if audio is not None:
            samples, rate = audio
            layout = "stereo" if samples.shape[0] == 2 else "mono"
            astream = out.add_stream(audio_codec, rate=rate)
            astream.codec_context.layout = layout
            astream.time_base = Fraction(1, rate)
        for i in range(n):
            y, u, v = get(i)
            data = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(-1, width)
            frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
            if tags:
                frame.colorspace = Colorspace.ITU709
                frame.color_primaries = frame.color_trc = 1
            frame.color_range = ColorRange.JPEG if full_range else ColorRange.MPEG
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if astream is not None and audio is not None:
            samples, rate = audio
            block = 1024
            for start in range(0, samples.shape[1], block):
                chunk = np.ascontiguousarray(samples[:, start : start + block], np.float32)
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                aframe.sample_rate = rate
                aframe.pts = start
                aframe.time_base = Fraction(1, rate)
                for packet in astream.encode(aframe):
                    out.mux(packet)
            for packet in astream.encode(None):
                out.mux(packet)
    return path


def sine(
    seconds: float,
    *,
    rate: int = 48000,
    freq: float = 997.0,
    dbfs: float = -20.0,
    channels: int = 2,
    phase: float = 0.0,
) -> np.ndarray:
    """A sine of peak ``dbfs`` in every channel, ``(channels, n)`` float32."""
    t = np.arange(round(seconds * rate)) / rate
    wave = (10 ** (dbfs / 20)) * np.sin(2 * np.pi * freq * t + phase)
    return np.tile(wave.astype(np.float32), (channels, 1))
