from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from engine.assembly.encoder import (
    EncodeSettings,
    VideoWriter,
    encode_audio_track,
    join_segments,
)
from engine.errors import AssemblyError
from tests.media import read_audio, write_wav


def _clicks(seconds: float, rate: int) -> np.ndarray:
    y = np.zeros(int(seconds * rate), np.float32)
    rng = np.random.default_rng(1)
    for start in np.arange(0.1, seconds - 0.1, 0.37):
        i = int(start * rate)
        y[i : i + 400] += rng.normal(0, 0.3, 400).astype(np.float32) * np.hanning(400)
    return y


def _segments(tmp_path: Path, settings: EncodeSettings, counts: list[int]) -> list[Path]:
    paths, frame = [], 0
    for index, count in enumerate(counts):
        path = tmp_path / f"seg{index}.mp4"
        with VideoWriter(path, settings) as writer:
            for _ in range(count):
                writer.write(
                    np.full((settings.height, settings.width, 3), 20 + 2 * frame, np.uint8)
                )
                frame += 1
        paths.append(path)
    return paths


@pytest.mark.parametrize(("rate", "fps"), [(44100, Fraction(25)), (22050, Fraction(30000, 1001))])
def test_segments_join_with_audio_in_sync(tmp_path: Path, rate: int, fps: Fraction) -> None:
    import av

    seconds = 3.0
    frames = round(seconds * fps)
    source = _clicks(seconds, rate)
    song = write_wav(tmp_path / "song.wav", np.stack([source, source * 0.5]), rate)
    settings = EncodeSettings(
        width=160,
        height=96,
        fps=fps,
        crf=30,
        speed="ultrafast",
        metadata=(("comment", "test render"),),
    )
    segments = _segments(tmp_path, settings, [40, frames - 40])
    track = encode_audio_track(song, tmp_path / "audio.m4a")
    out = tmp_path / "out.mp4"
    stats = join_segments(
        segments, tmp_path / "audio.m4a", out, fps=fps, metadata=settings.metadata
    )
    assert stats.frames == frames

    with av.open(str(out)) as container:
        assert container.metadata.get("comment") == "test render"
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        video, audio = container.streams.video[0], container.streams.audio[0]
        vc = video.codec_context
        assert (vc.name, vc.pix_fmt, vc.width, vc.height) == ("h264", "yuv420p", 160, 96)
        assert (vc.color_primaries, vc.color_trc, vc.colorspace) == (1, 1, 1)
        assert video.average_rate == fps
        decoded = [f.to_ndarray(format="gray") for f in container.decode(video)]
        video_seconds = float(video.duration * video.time_base)
        audio_seconds = float(audio.duration * audio.time_base)
        assert audio.codec_context.sample_rate == (rate if rate in (44100, 48000) else 48000)
    assert len(decoded) == frames
    # the frames come back in order across the segment boundary
    levels = np.array([float(np.median(f)) for f in decoded])
    expected = 20 + 2 * np.arange(frames)  # "gray" decodes back to full range
    assert np.abs(levels - expected).max() <= 3
    assert abs(video_seconds - seconds) <= 1 / float(fps)
    assert abs(audio_seconds - seconds) <= 1 / float(fps)
    assert track.duration == pytest.approx(seconds, abs=1e-3)

    out_audio, out_rate = read_audio(out)
    reference = signal.resample_poly(source, out_rate, rate) if out_rate != rate else source
    n = min(out_audio.shape[1], reference.size)
    corr = signal.correlate(out_audio[0, :n], reference[:n], mode="full", method="fft")
    lag = int(corr.argmax()) - (n - 1)
    assert abs(lag) / out_rate <= 0.001


def test_bt709_matrix_is_used(tmp_path: Path) -> None:
    """A saturated red must decode back to red with the BT.709 matrix, not BT.601."""
    import av

    out = tmp_path / "red.mp4"
    settings = EncodeSettings(width=64, height=64, fps=24, crf=0, speed="ultrafast")
    with VideoWriter(out, settings) as writer:
        for _ in range(24):
            writer.write(np.tile(np.array([200, 30, 30], np.uint8), (64, 64, 1)))
    with av.open(str(out)) as container:
        yuv = next(container.decode(video=0)).to_ndarray()  # planar: rows of Y first
    y = float(yuv[:64].mean())
    expected_709 = 16 + 219 * (0.2126 * 200 + 0.7152 * 30 + 0.0722 * 30) / 255
    expected_601 = 16 + 219 * (0.299 * 200 + 0.587 * 30 + 0.114 * 30) / 255
    assert abs(y - expected_709) < 2.0
    assert abs(y - expected_601) > 8.0


def test_hevc_10bit(tmp_path: Path) -> None:
    import av

    out = tmp_path / "cinema.mp4"
    settings = EncodeSettings(
        width=128,
        height=72,
        fps=24,
        crf=28,
        speed="ultrafast",
        codec="libx265",
        pix_fmt="yuv420p10le",
    )
    with VideoWriter(out, settings) as writer:
        for i in range(12):
            writer.write(np.full((72, 128, 3), i * 10, np.uint8))
    with av.open(str(out)) as container:
        vc = container.streams.video[0].codec_context
        assert (vc.name, vc.pix_fmt) == ("hevc", "yuv420p10le")
        assert (vc.color_primaries, vc.color_trc, vc.colorspace) == (1, 1, 1)
        assert sum(1 for _ in container.decode(video=0)) == 12


def test_wrong_frame_size_is_an_assembly_error(tmp_path: Path) -> None:
    settings = EncodeSettings(width=64, height=64, fps=24, speed="ultrafast")
    with (
        pytest.raises(AssemblyError, match=r"expected \(64, 64, 3\) uint8"),
        VideoWriter(tmp_path / "x.mp4", settings) as writer,
    ):
        writer.write(np.zeros((32, 64, 3), np.uint8))


def test_join_needs_segments(tmp_path: Path) -> None:
    with pytest.raises(AssemblyError, match="no video segments"):
        join_segments([], tmp_path / "a.m4a", tmp_path / "o.mp4", fps=Fraction(24))
