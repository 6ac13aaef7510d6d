"""Render a synthesized song end to end and check the result as a viewer would:
cuts on the planned beats, audio in sync, the right streams and tags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from engine.cli import main
from tests.media import read_audio, write_wav


def _small_frames(path: Path) -> tuple[np.ndarray, float]:
    """Every frame at 160x90, as float32 RGB: enough to see cuts, small in memory."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = [
            f.reformat(width=160, height=90, format="rgb24").to_ndarray().astype(np.float32)
            for f in container.decode(stream)
        ]
    return np.stack(frames), fps


@pytest.fixture(scope="module")
def rendered(short_song: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> dict:
    song, truth = short_song
    out_dir = tmp_path_factory.mktemp("render")
    video, report_path = out_dir / "video.mp4", out_dir / "report.json"
    code = main(
        [
            "render",
            str(song),
            "-o",
            str(video),
            "--preset",
            "draft",
            "--json-report",
            str(report_path),
            "--cache-dir",
            str(out_dir / "cache"),
            "--otio",
            str(out_dir / "edit.otio"),
        ]
    )
    assert code == 0
    return {
        "video": video,
        "report": json.loads(report_path.read_text()),
        "song": song,
        "truth": truth,
        "dir": out_dir,
    }


def test_streams_tags_size_and_duration(rendered: dict) -> None:
    import av

    with av.open(str(rendered["video"])) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        video, audio = container.streams.video[0], container.streams.audio[0]
        vc = video.codec_context
        assert (vc.name, vc.pix_fmt) == ("h264", "yuv420p")
        assert (vc.width, vc.height, float(video.average_rate)) == (640, 360, 24.0)
        assert (vc.color_primaries, vc.color_trc, vc.colorspace) == (1, 1, 1)
        assert audio.codec_context.name == "aac"
        video_seconds = float(video.duration * video.time_base)
        assert "procedural draft" in container.metadata.get("comment", "")
    audio_seconds = rendered["truth"]["duration"]
    assert abs(video_seconds - audio_seconds) <= 1 / 24


def test_report_labels_the_draft_backend_and_times_stages(rendered: dict) -> None:
    report = rendered["report"]
    assert report["backend"]["name"] == "procedural"
    assert report["backend"]["draft"] is True
    assert "NOT Stable Diffusion" in report["backend"]["label"]
    assert set(report["timings"]) >= {"analyse", "plan", "generate", "assemble", "total"}
    assert report["analysis"]["tempo"] == pytest.approx(132.0, rel=0.02)
    assert report["output"]["frames"] == round(rendered["truth"]["duration"] * 24)
    assert report["shots"][0]["start"] == 0.0
    assert report["shots"][-1]["end"] == pytest.approx(rendered["truth"]["duration"], abs=0.01)


def test_planned_cuts_sit_on_true_downbeats(rendered: dict) -> None:
    downbeats = np.array(rendered["truth"]["downbeats"])
    for shot in rendered["report"]["shots"][1:]:
        assert np.abs(downbeats - shot["start"]).min() < 0.07, shot


def test_cuts_land_on_the_planned_beats_within_one_frame(rendered: dict) -> None:
    frames, fps = _small_frames(rendered["video"])
    diffs = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # diffs[k]: frame k -> k+1
    shots = rendered["report"]["shots"]
    hard = [s for s in shots[1:] if s["transition_in"] == "cut"]
    fades = [s for s in shots[1:] if s["transition_in"] == "crossfade"]
    assert hard and fades, "the test song should give both kinds of cut"
    motion_level = float(np.median(diffs))
    for shot in hard:
        planned = shot["start"] * fps
        window = range(max(1, round(planned) - 4), min(len(frames), round(planned) + 5))
        detected = max(window, key=lambda k: diffs[k - 1])  # first frame of the new shot
        assert diffs[detected - 1] > 5 * motion_level + 3.0, shot
        assert abs(detected - planned) <= 1.0, (shot, detected, planned)
    for shot in fades:
        # Express each frame in the fade as (1 - w) * outgoing + w * incoming, with the
        # shots taken just outside the fade; w crosses 0.5 where the fade is centred.
        planned = shot["start"] * fps
        lo, hi = round(planned) - 12, round(planned) + 12
        outgoing, incoming = frames[lo], frames[hi]
        axis = (incoming - outgoing).ravel()
        weights = [
            float(np.dot((frames[k] - outgoing).ravel(), axis) / np.dot(axis, axis))
            for k in range(lo, hi + 1)
        ]
        crossing = next(k for k, w in enumerate(weights) if w >= 0.5)
        w0, w1 = weights[crossing - 1], weights[crossing]
        centre = lo + crossing - 1 + (0.5 - w0) / (w1 - w0)
        assert abs(centre - planned) <= 1.0, (shot, centre, planned)
    # no cut the plan did not ask for: nothing else changes the picture half as much as
    # the weakest planned cut (beat pulses and camera moves are far gentler)
    planned_frames = [round(s["start"] * fps) for s in shots[1:]]
    weakest_cut = min(float(diffs[round(s["start"] * fps) - 1]) for s in hard)
    spikes = np.flatnonzero(diffs > max(5 * motion_level + 3.0, 0.5 * weakest_cut)) + 1
    for k in spikes:
        assert min(abs(k - p) for p in planned_frames) <= 8, k


def test_output_audio_matches_input_at_lag_zero(rendered: dict) -> None:
    from engine.audio.decode import decode_audio

    source = decode_audio(rendered["song"]).samples[0]
    output, rate = read_audio(rendered["video"])
    assert rate == 44100
    n = min(source.size, output.shape[1], 10 * rate)
    corr = signal.correlate(output[0, :n], source[:n], mode="full", method="fft")
    lag = int(corr.argmax()) - (n - 1)
    assert abs(lag) / rate <= 0.001
    gain = float(np.dot(output[0, :n], source[:n]) / np.dot(source[:n], source[:n]))
    assert gain == pytest.approx(1.0, abs=0.1)  # same level, no -3 dB upmix or clipping


def test_rerender_reuses_stills_from_the_cache(rendered: dict) -> None:
    out = rendered["dir"] / "again.mp4"
    report_path = rendered["dir"] / "again.json"
    code = main(
        [
            "render",
            str(rendered["song"]),
            "-o",
            str(out),
            "--preset",
            "draft",
            "--json-report",
            str(report_path),
            "--cache-dir",
            str(rendered["dir"] / "cache"),
        ]
    )
    assert code == 0
    again = json.loads(report_path.read_text())
    assert again["backend"]["stills_reused_from_cache"] == len(again["shots"])
    assert again["shots"] == rendered["report"]["shots"]


def test_stills_backend_uses_images_in_order_and_skips_a_corrupt_one(
    tiny_song: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import cv2

    images = tmp_path / "stills"
    images.mkdir()
    colours = {"01.png": (0, 0, 255), "02.jpg": (0, 255, 0), "10.png": (255, 0, 0)}
    for name, bgr in colours.items():
        cv2.imwrite(str(images / name), np.full((300, 200, 3), bgr, np.uint8))  # portrait
    (images / "03.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "stills.mp4"
    report_path = tmp_path / "stills.json"
    code = main(
        [
            "render",
            str(tiny_song),
            "-o",
            str(out),
            "--images",
            str(images),
            "--preset",
            "draft",
            "--json-report",
            str(report_path),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["backend"] == {**report["backend"], "name": "stills", "draft": False}
    assert report["backend"]["warnings"] == ["skipped 03.png: not a readable image"]
    assert "skipped 03.png" in caplog.text
    frames, fps = _small_frames(out)
    shown = []
    for shot in report["shots"]:
        middle = round((shot["start"] + shot["end"]) / 2 * fps)
        shown.append(int(np.argmax(frames[middle].mean(axis=(0, 1)))))
    # 01.png red, 02.jpg green, (03.png skipped), 10.png blue: natural name order
    assert shown[:3] == [0, 1, 2], shown
    assert len(report["shots"]) >= 3


def test_silence_renders_with_even_cuts_and_a_warning(tmp_path: Path) -> None:
    song = write_wav(tmp_path / "silence.wav", np.zeros(44100 * 6, np.float32), 44100)
    out, report_path = tmp_path / "s.mp4", tmp_path / "s.json"
    code = main(
        [
            "render",
            str(song),
            "-o",
            str(out),
            "--preset",
            "draft",
            "--json-report",
            str(report_path),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["planning_warnings"]
    assert report["output"]["frames"] == 6 * 24


def test_cancelling_mid_render_leaves_nothing_behind(tiny_song: Path, tmp_path: Path) -> None:
    from engine.config import ConfigManager
    from engine.context import StageContext
    from engine.errors import CancelledError
    from engine.events import JobEvent, JobProgress
    from engine.orchestrator.render_pipeline import RenderRequest, render_video

    out = tmp_path / "out" / "video.mp4"
    out.parent.mkdir()
    context = StageContext()
    seen: list[JobProgress] = []

    def sink(event: JobEvent) -> None:
        if isinstance(event, JobProgress):
            seen.append(event)
            if event.stage == "assemble" and event.step > 0:
                context.cancel_event.set()

    context.sink = sink
    request = RenderRequest(
        audio_path=tiny_song, output_path=out, preset="draft", cache_dir=tmp_path / "cache"
    )
    with pytest.raises(CancelledError, match="cancelled during assemble"):
        render_video(request, config=ConfigManager().config, context=context)
    assert list(out.parent.iterdir()) == []
    stages = list(dict.fromkeys(e.stage for e in seen))
    assert stages == ["analyse", "plan", "generate", "assemble"]


def test_otio_export_matches_the_render(rendered: dict) -> None:
    import opentimelineio as otio

    report = rendered["report"]
    timeline = otio.adapters.read_from_file(str(rendered["dir"] / "edit.otio"))
    video, audio = timeline.video_tracks()[0], timeline.audio_tracks()[0]
    clips = list(video.find_clips())
    assert len(clips) == len(report["shots"])
    assert video.duration().to_frames() == report["output"]["frames"]
    assert audio.duration().to_frames() == report["output"]["frames"]
    assert video.duration().rate == 24
    for clip, shot in zip(clips, report["shots"], strict=True):
        start = video.range_of_child(clip).start_time.to_frames()
        assert start == round(shot["start"] * 24)
        assert clip.metadata["apex"]["prompt"] == shot["prompt"]
        assert Path(clip.media_reference.target_url.removeprefix("file://")).exists()
    fades = [s for s in report["shots"] if s["transition_in"] != "cut"]
    assert fades
    assert len([t for t in video if isinstance(t, otio.schema.Transition)]) == len(fades)
    names = [m.name for m in timeline.tracks.markers]
    assert sum(n.startswith("bar ") for n in names) == report["analysis"]["downbeats"]
    sections = [m.name for m in timeline.tracks.markers if m.color == "RED"]
    assert sections == [s["label"] for s in report["analysis"]["sections"]]
