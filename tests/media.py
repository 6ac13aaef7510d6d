"""Media the tests make for themselves: wav files, images, and readers for outputs."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write float audio (``(n,)`` or ``(channels, n)``) as 16-bit PCM wav."""
    data = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    pcm = (np.clip(data, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(pcm.shape[0])
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.T.tobytes())
    return path


def tone(seconds: float, sample_rate: int = 44100, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def read_video_frames(path: Path) -> tuple[np.ndarray, float]:
    """All frames of a (small) video as a ``(n, h, w, 3)`` uint8 array, and its fps."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return np.stack(frames), fps


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """The first audio stream of ``path`` as ``(channels, n)`` float32, and its rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        blocks = [f.to_ndarray() for f in container.decode(stream)]
    return np.concatenate(blocks, axis=1).astype(np.float32), rate
