from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from engine.assembly.encoder import EncodeSettings, H264Writer
from engine.errors import AssemblyError
from tests.media import read_audio, write_wav


def _clicks(seconds: float, rate: int) -> np.ndarray:
    y = np.zeros(int(seconds * rate), np.float32)
    rng = np.random.default_rng(1)
    for start in np.arange(0.1, seconds - 0.1, 0.37):
        i = int(start * rate)
        y[i : i + 400] += rng.normal(0, 0.3, 400).astype(np.float32) * np.hanning(400)
    return y


@pytest.mark.parametrize("rate", [44100, 22050])
def test_stream_properties_and_audio_alignment(tmp_path: Path, rate: int) -> None:
    import av

    seconds, fps = 3.0, 25
    source = _clicks(seconds, rate)
    song = write_wav(tmp_path / "song.wav", np.stack([source, source * 0.5]), rate)
    out = tmp_path / "out.mp4"
    settings = EncodeSettings(
        width=160,
        height=96,
        fps=fps,
        crf=30,
        speed="ultrafast",
        metadata=(("comment", "test render"),),
    )
    with H264Writer(out, settings, audio_path=song) as writer:
        for k in range(round(seconds * fps)):
            writer.write(np.full((96, 160, 3), (k * 3) % 255, np.uint8))

    with av.open(str(out)) as container:
        assert container.metadata.get("comment") == "test render"
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        vc = video.codec_context
        assert (vc.name, vc.pix_fmt, vc.width, vc.height) == ("h264", "yuv420p", 160, 96)
        assert (vc.color_primaries, vc.color_trc, vc.colorspace) == (1, 1, 1)
        assert video.average_rate == fps
        assert video.frames == seconds * fps
        video_seconds = float(video.duration * video.time_base)
        audio_seconds = float(audio.duration * audio.time_base)
        assert audio.codec_context.name == "aac"
        expected_rate = rate if rate in (44100, 48000) else 48000
        assert audio.codec_context.sample_rate == expected_rate
    assert abs(video_seconds - seconds) <= 1 / fps
    assert abs(audio_seconds - seconds) <= 1 / fps

    decoded, out_rate = read_audio(out)
    reference = signal.resample_poly(source, out_rate, rate) if out_rate != rate else source
    n = min(decoded.shape[1], reference.size)
    corr = signal.correlate(decoded[0, :n], reference[:n], mode="full", method="fft")
    lag = int(corr.argmax()) - (n - 1)
    assert abs(lag) / out_rate <= 0.001


def test_bt709_matrix_is_used(tmp_path: Path) -> None:
    """A saturated red must decode back to red with the BT.709 matrix, not BT.601."""
    import av

    song = write_wav(tmp_path / "s.wav", np.zeros(44100, np.float32), 44100)
    out = tmp_path / "red.mp4"
    settings = EncodeSettings(width=64, height=64, fps=24, crf=0, speed="ultrafast")
    with H264Writer(out, settings, audio_path=song) as writer:
        for _ in range(24):
            writer.write(np.tile(np.array([200, 30, 30], np.uint8), (64, 64, 1)))
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
        yuv = frame.to_ndarray()  # planar yuv420p, rows: Y then U, V
    y = float(yuv[:64].mean())
    # BT.709 limited range: Y = 16 + 219 * (0.2126 R + 0.7152 G + 0.0722 B) / 255
    expected_709 = 16 + 219 * (0.2126 * 200 + 0.7152 * 30 + 0.0722 * 30) / 255
    expected_601 = 16 + 219 * (0.299 * 200 + 0.587 * 30 + 0.114 * 30) / 255
    assert abs(y - expected_709) < 2.0
    assert abs(y - expected_601) > 8.0


def test_wrong_frame_size_is_an_assembly_error(tmp_path: Path) -> None:
    song = write_wav(tmp_path / "s.wav", np.zeros(4410, np.float32), 44100)
    settings = EncodeSettings(width=64, height=64, fps=24, speed="ultrafast")
    with pytest.raises(AssemblyError, match=r"expected \(64, 64, 3\) uint8"):  # noqa: SIM117
        with H264Writer(tmp_path / "x.mp4", settings, audio_path=song) as writer:
            writer.write(np.zeros((32, 64, 3), np.uint8))
