from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.audio.decode import decode_audio, iter_audio_frames, probe_audio
from engine.errors import AudioInputError
from tests.media import tone, write_wav


def test_decodes_wav_at_native_and_resampled_rates(tmp_path: Path) -> None:
    y = tone(2.0)
    path = write_wav(tmp_path / "a.wav", y, 44100)
    info = probe_audio(path)
    assert (info.sample_rate, info.channels, info.codec) == (44100, 1, "pcm_s16le")
    assert info.duration == pytest.approx(2.0, abs=1e-3)
    audio = decode_audio(path)
    assert audio.samples.shape == (2, 88200)
    # mono is copied to both channels at the same level (no -3 dB upmix)
    assert np.abs(audio.samples[0] - y).max() < 1e-3
    assert np.array_equal(audio.samples[0], audio.samples[1])
    mono = decode_audio(path, sample_rate=22050, mono=True)
    assert mono.samples.shape == (1, 44100)
    assert mono.duration == pytest.approx(2.0)


@pytest.mark.parametrize(
    "codec,ext", [("flac", ".flac"), ("libmp3lame", ".mp3"), ("libopus", ".ogg")]
)
def test_decodes_compressed_formats(tmp_path: Path, codec: str, ext: str) -> None:
    import av

    path = tmp_path / f"song{ext}"
    rate = 48000 if codec == "libopus" else 44100
    y = tone(1.5, rate)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.codec_context.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    audio = decode_audio(path)
    assert audio.duration == pytest.approx(1.5, abs=0.06)
    assert float(np.abs(audio.samples).max()) == pytest.approx(0.3, abs=0.05)


def test_streaming_blocks_have_the_requested_size(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", tone(1.0), 44100)
    blocks = list(iter_audio_frames(path, sample_rate=48000, frame_size=1024))
    assert all(b.shape == (2, 1024) for b in blocks[:-1])
    assert sum(b.shape[1] for b in blocks) == pytest.approx(48000, abs=2)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError, match="file not found"):
        decode_audio(tmp_path / "nope.wav")


def test_text_file_named_mp3(tmp_path: Path) -> None:
    path = tmp_path / "fake.mp3"
    path.write_text("this is not audio at all\n" * 20)
    with pytest.raises(AudioInputError, match="not a readable audio file"):
        decode_audio(path)


def test_zero_length_wav(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioInputError, match="file is empty"):
        decode_audio(path)


def test_wav_with_header_but_no_samples(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "nosamples.wav", np.zeros(0, np.float32), 44100)
    with pytest.raises(AudioInputError, match="no audio samples"):
        decode_audio(path)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "song.xyz"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(AudioInputError, match=r"unsupported extension '\.xyz'"):
        decode_audio(path)


def test_folder_is_not_a_song(tmp_path: Path) -> None:
    folder = tmp_path / "album.wav"
    folder.mkdir()
    with pytest.raises(AudioInputError, match="is a folder"):
        decode_audio(folder)


def test_too_long_is_refused_before_decoding(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", tone(3.0), 44100)
    with pytest.raises(AudioInputError, match="the limit is"):
        decode_audio(path, max_duration=2.0)


def test_audio_error_is_also_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        decode_audio(tmp_path / "missing.flac")


@pytest.mark.parametrize("header_seconds", [0.0, 0.3, 2.0, 60.0])
def test_decoded_song_is_whole_whatever_the_header_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header_seconds: float
) -> None:
    """The array sized from the header grows when it said less and shrinks when it said more."""
    import dataclasses

    import engine.audio.decode as decode

    path = write_wav(tmp_path / "a.wav", tone(2.0), 44100)
    streamed = np.concatenate(list(iter_audio_frames(path, sample_rate=22050, layout="mono")), 1)
    real_probe = decode.probe_audio
    monkeypatch.setattr(
        decode,
        "probe_audio",
        lambda p: dataclasses.replace(real_probe(p), duration=header_seconds),
    )
    audio = decode.decode_audio(path, sample_rate=22050, mono=True)
    assert np.array_equal(audio.samples, streamed)
    assert audio.samples.base is None or audio.samples.base.shape[1] - streamed.shape[1] <= 22050
    mono = audio.mono()
    assert np.shares_memory(mono, audio.samples)  # no copy of a mono song
    assert np.array_equal(mono, streamed[0])
    stereo = decode.decode_audio(path, sample_rate=22050)
    assert stereo.samples.shape == (2, streamed.shape[1])
    assert np.array_equal(stereo.mono(), stereo.samples.mean(axis=0, dtype=np.float32))
