"""Every preset (at a small frame size), checked by PyAV and by a second decoder, ffprobe:
streams, codec, pixel format, exact frame rate, frame count, durations, colour tags,
keyframe interval, and loudness where the preset normalises it."""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
from engine.config import ConfigManager
from engine.orchestrator.render_pipeline import RenderRequest, render_video
from tests.media import read_audio, write_wav

CASES = [
    ("draft", None, "16:9"),
    ("web", None, "16:9"),
    ("web", None, "9:16"),
    ("web", None, "1:1"),
    ("high", None, "16:9"),
    ("broadcast", None, "16:9"),
    ("broadcast", 29.97, "16:9"),
    ("cinema", None, "16:9"),
]


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = SongSpec(
        tempo=120.0, sections=(SectionSpec(label="chorus", bars=4, energy=0.9),), seed=11
    )
    synth = synthesize_song(spec)
    return write_wav(tmp_path_factory.mktemp("presets") / "s.wav", synth.audio, synth.sample_rate)


def _ffprobe(path: Path) -> dict:
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize(("preset", "fps", "aspect"), CASES)
def test_preset(song: Path, tmp_path: Path, preset: str, fps: float | None, aspect: str) -> None:
    import av

    overrides: dict = {"width": 320, "height": 180, "encoder_speed": "ultrafast"}
    if fps is not None:
        overrides["fps"] = fps
    config = ConfigManager(default_config={"presets": {preset: overrides}}).config
    out = tmp_path / f"{preset}.mp4"
    report = render_video(
        RenderRequest(
            audio_path=song,
            output_path=out,
            preset=preset,
            aspect=aspect,
            cache_dir=tmp_path / "cache",
        ),
        config=config,
    )
    settings = config["presets"][preset]
    exact = {29.97: Fraction(30000, 1001)}.get(settings["fps"], Fraction(settings["fps"]))
    width, height = {"16:9": (320, 180), "9:16": (180, 320), "1:1": (180, 180)}[aspect]
    codec = "hevc" if settings["codec"] == "libx265" else "h264"

    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        vc = video.codec_context
        assert (vc.name, vc.pix_fmt, vc.width, vc.height) == (
            codec,
            settings["pix_fmt"],
            width,
            height,
        )
        assert video.average_rate == exact
        assert (vc.color_primaries, vc.color_trc, vc.colorspace) == (1, 1, 1)
        keyframes = sorted(
            round(p.pts * p.time_base * exact)
            for p in container.demux(video)
            if p.is_keyframe and p.pts is not None
        )
        video_seconds = float(video.duration * video.time_base)
        audio_seconds = float(audio.duration * audio.time_base)
    frames = report["output"]["frames"]
    assert frames == round(report["analysis"]["duration"] * exact)
    assert abs(video_seconds - audio_seconds) <= 1 / float(exact)
    gop = max(b - a for a, b in zip(keyframes, [*keyframes[1:], frames], strict=True))
    assert gop <= settings["gop_seconds"] * float(exact) + 1e-9

    if shutil.which("ffprobe"):
        probe = _ffprobe(out)
        streams = {s["codec_type"]: s for s in probe["streams"]}
        assert set(streams) == {"video", "audio"}
        v = streams["video"]
        assert (v["codec_name"], v["pix_fmt"], v["width"], v["height"]) == (
            codec,
            settings["pix_fmt"],
            width,
            height,
        )
        assert Fraction(v["r_frame_rate"]) == exact
        assert int(v["nb_read_frames"]) == frames
        assert (v["color_primaries"], v["color_transfer"], v["color_space"], v["color_range"]) == (
            "bt709",
            "bt709",
            "bt709",
            "tv",
        )
        assert streams["audio"]["codec_name"] == "aac"

    if settings["loudness_lufs"] != 0.0:
        from engine.audio.loudness import integrated_loudness

        samples, rate = read_audio(out)
        assert integrated_loudness(samples, rate) == pytest.approx(
            settings["loudness_lufs"], abs=0.5
        )
