"""Video QC on generated clips with known defects (written losslessly, so values are exact)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import MediaInputError
from engine.qa import QualityValidator, VideoOptions
from tests.qa_media import planes, ramp, sine, write_video

W, H, FPS = 160, 90, 25


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qa_video")


def _illegal(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, u, v = ramp(W, H, i)
    y[:30, :40] = 0  # 1200 px = 8.33 % of the frame at Y=0
    y[-30:, -40:] = 255  # 8.33 % at Y=255
    return y, u, v


def test_clean_clip_passes(media: Path) -> None:
    path = write_video(
        media / "clean.mp4",
        lambda i: ramp(W, H, 2 * i),
        count=50,
        audio=(sine(2.0, dbfs=-23.0), 48000),
    )
    report = QualityValidator().validate_video(path)
    assert report.passed, report.summary()
    assert report.broadcast_compliant
    assert report.overall_score > 0.95
    assert [i for i in report.issues if i.severity != "info"] == []
    video = report.measurements["video"]
    assert (video["y_min"], video["y_max"], video["c_min"], video["c_max"]) == (32, 220, 120, 136)
    assert video["constant_frame_rate"] and video["gop_max_frames"] == FPS
    assert (video["color_primaries"], video["color_transfer"], video["color_space"]) == (
        "bt709",
        "bt709",
        "bt709",
    )
    assert video["color_range"] == "tv"
    assert report.compliance is not None and report.compliance.compliant


def test_y0_and_y255_regions_fail_with_exact_values(media: Path) -> None:
    path = write_video(media / "illegal.mp4", _illegal, count=10)
    report = QualityValidator().validate_video(path)
    video = report.measurements["video"]
    assert (video["y_min"], video["y_max"]) == (0, 255)
    assert video["y_outside_tolerance_max_pct"] == pytest.approx(100 * 2400 / (W * H))
    assert video["frames_outside_tolerance"] == 10
    assert video["first_outside_tolerance_frame"] == 0
    assert not report.passed and not report.broadcast_compliant
    fail = next(i for i in report.issues if i.check == "luma_range")
    assert fail.severity == "fail" and fail.frame == 0
    assert "Y 0-255" in fail.message
    r103 = report.compliance.get("ebu_r103")  # type: ignore[union-attr]
    item = next(i for i in r103.items if i.check == "luma_within_tolerance")
    assert not item.passed and item.measured == pytest.approx(16.667, abs=0.01)
    artifact = next(a for a in report.artifacts if a.kind == "illegal_level")
    assert artifact.region == (0, 0, W, H)  # the two corners span the frame


def test_full_range_file_is_read_as_full_range(media: Path) -> None:
    """Y=0/255 are the legal extremes of a full-range (pc) file; delivery wants tv range."""
    path = write_video(media / "full.mp4", _illegal, count=5, full_range=True)
    report = QualityValidator().validate_video(path)
    video = report.measurements["video"]
    assert video["color_range"] == "pc" and (video["y_min"], video["y_max"]) == (0, 255)
    assert video["y_outside_tolerance_max_pct"] == 0.0  # nothing outside 0-255
    r103 = report.compliance.get("ebu_r103")  # type: ignore[union-attr]
    assert not next(i for i in r103.items if i.check == "limited_range").passed
    assert any(i.check == "levels" and "full-range" in i.message for i in report.issues)


def test_small_excursions_within_the_one_percent_allowance_pass(media: Path) -> None:
    def frame(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y, u, v = ramp(W, H, i)
        y[:5, :20] = 2  # 100 px = 0.69 % of the frame
        return y, u, v

    report = QualityValidator().validate_video(write_video(media / "small.mp4", frame, count=5))
    assert report.passed, report.summary()
    assert report.measurements["video"]["y_min"] == 2
    assert any(i.check == "levels" and i.severity == "info" for i in report.issues)


def test_5hz_flash_fails_and_2hz_passes(media: Path) -> None:
    # 50 fps, 5 frames white then 5 black: 5 flashes per second over the whole screen.
    fast = write_video(
        media / "flash5.mp4",
        lambda i: planes(W, H, y=235 if i % 10 < 5 else 16),
        count=100,
        fps=50,
    )
    report = QualityValidator().validate_video(fast)
    video = report.measurements["video"]
    assert video["max_flashes_per_second"] == pytest.approx(5.0, abs=0.5)
    issue = next(i for i in report.issues if i.check == "flashes")
    assert issue.severity == "fail" and issue.frame is not None and issue.time < 1.0
    assert any(a.kind == "flash" for a in report.artifacts)

    slow = write_video(
        media / "flash2.mp4",
        lambda i: planes(W, H, y=235 if i % 25 < 12 else 16),
        count=100,
        fps=50,
    )
    report = QualityValidator().validate_video(slow)
    assert report.measurements["video"]["max_flashes_per_second"] <= 2.5
    assert not any(i.check == "flashes" for i in report.issues)


def test_flash_on_a_small_area_passes(media: Path) -> None:
    def frame(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y, u, v = planes(W, H, y=16)
        if i % 10 < 5:
            y[: H // 3, : W // 3] = 235  # one ninth of the screen
        return y, u, v

    report = QualityValidator().validate_video(
        write_video(media / "small_flash.mp4", frame, count=100, fps=50)
    )
    assert report.measurements["video"]["max_flashes_per_second"] == 0.0
    assert report.passed


def test_red_flash(media: Path) -> None:
    # Saturated BT.709 red (Y 63, Cb 102, Cr 240) against black, 5 Hz.
    def frame(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return planes(W, H, y=63, u=102, v=240) if i % 10 < 5 else planes(W, H, y=16)

    report = QualityValidator().validate_video(
        write_video(media / "red.mp4", frame, count=100, fps=50)
    )
    video = report.measurements["video"]
    assert video["max_red_flashes_per_second"] == pytest.approx(5.0, abs=0.5)
    assert any(i.check == "red_flashes" and i.severity == "fail" for i in report.issues)


def test_audio_200ms_longer_than_video(media: Path) -> None:
    path = write_video(
        media / "av.mp4",
        lambda i: ramp(W, H, i),
        count=50,
        audio=(sine(2.2, dbfs=-23.0), 48000),
    )
    report = QualityValidator().validate_video(path)
    video = report.measurements["video"]
    assert video["video_duration"] == pytest.approx(2.0, abs=1e-6)
    assert video["audio_duration"] - video["video_duration"] == pytest.approx(0.2, abs=0.022)
    issue = next(i for i in report.issues if i.check == "av_duration")
    assert issue.severity == "fail" and issue.measured == pytest.approx(0.2, abs=0.022)
    assert "audio is 2" in issue.message


def test_missing_colour_tags(media: Path) -> None:
    path = write_video(media / "untagged.mp4", lambda i: ramp(W, H, i), count=10, tags=False)
    report = QualityValidator().validate_video(path, standards=["web"])
    issue = next(i for i in report.issues if i.check == "colour_tags")
    assert "primaries" in issue.message and "matrix" in issue.message
    web = report.compliance.get("web")  # type: ignore[union-attr]
    tags = next(i for i in web.items if i.check == "colour_tags")
    assert not tags.passed and tags.measured == "unknown/unknown/unknown"


def test_black_and_frozen_runs(media: Path) -> None:
    def frame(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if 10 <= i < 40:
            return planes(W, H, y=16)  # 1.2 s of black
        if 50 <= i < 110:
            return ramp(W, H, 50)  # 2.4 s of one picture
        return ramp(W, H, 3 * i)

    report = QualityValidator(VideoOptions(black_min_seconds=1.0)).validate_video(
        write_video(media / "black_frozen.mp4", frame, count=125)
    )
    video = report.measurements["video"]
    assert [(r["frame"], round(r["seconds"], 2)) for r in video["black_runs"]] == [(10, 1.2)]
    # The black stretch is frozen too (too short for 2 s); the still is 60 frames.
    assert [(r["frame"], round(r["seconds"], 2)) for r in video["frozen_runs"]] == [(50, 2.4)]
    kinds = {i.check for i in report.issues if i.severity == "warning"}
    assert {"black", "frozen"} <= kinds


def test_sampled_mode_counts_fewer_frames(media: Path) -> None:
    path = write_video(media / "sampled.mp4", _illegal, count=25)
    full = QualityValidator(VideoOptions(mode="full")).validate_video(path)
    sampled = QualityValidator(VideoOptions(mode="sampled", sample_rate=5)).validate_video(path)
    assert full.measurements["video"]["frames_level_checked"] == 25
    assert sampled.measurements["video"]["frames_level_checked"] == 5
    assert sampled.measurements["video"]["y_min"] == 0 and not sampled.passed


def test_detect_artifacts_on_video_frames(media: Path) -> None:
    import cv2

    rng = np.random.default_rng(2)
    texture = cv2.resize(rng.integers(40, 200, (18, 32), dtype=np.uint8), (256, 144))
    _ok, data = cv2.imencode(".jpg", texture, [cv2.IMWRITE_JPEG_QUALITY, 4])
    blocky = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)

    def frame(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return blocky.copy(), *planes(256, 144)[1:]

    path = write_video(media / "blocky.mp4", frame, count=10)
    found = QualityValidator().detect_artifacts(path, samples=2)
    assert found and {a.frame for a in found} <= {0, 9}
    assert all(a.kind == "blocking" for a in found if a.severity > 0.5)


@pytest.mark.parametrize("kind", ["truncated", "audio_only", "empty", "missing", "text"])
def test_bad_input_is_a_typed_error(media: Path, kind: str) -> None:
    path = media / f"bad_{kind}.mp4"
    if kind == "truncated":
        source = write_video(media / "whole.mp4", lambda i: ramp(W, H, i), count=25)
        data = source.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # moov at the end: cut off
        match = "truncated"
    elif kind == "audio_only":
        import av

        path = media / "audio_only.m4a"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("aac", rate=48000)
            samples = sine(0.5)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            frame.sample_rate = 48000
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                out.mux(packet)
        match = "no video stream"
    elif kind == "empty":
        path.write_bytes(b"")
        match = "empty"
    elif kind == "missing":
        match = "not found"
    else:
        path.write_text("this is not a video")
        match = "cannot be opened"
    with pytest.raises(MediaInputError, match=match):
        QualityValidator().validate_video(path)


def test_truncated_faststart_file_says_how_many_frames_decoded(media: Path) -> None:
    import av

    source = write_video(media / "fs_src.mp4", lambda i: ramp(W, H, 3 * i), count=50)
    faststart = media / "fs.mp4"
    with (
        av.open(str(source)) as src,
        av.open(str(faststart), "w", options={"movflags": "+faststart"}) as out,
    ):
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = faststart.read_bytes()
    cut = media / "fs_cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(MediaInputError, match=r"stopped at frame \d+.*truncated"):
        QualityValidator().validate_video(cut)


def test_render_gate_on_an_unreadable_output_fails_without_raising(tmp_path: Path) -> None:
    from engine.qa.render_gate import render_qc, standards_for_preset

    broken = tmp_path / "render.mp4"
    broken.write_bytes(b"\x00" * 100)
    qc = render_qc(broken, preset="web", qa_cfg={})
    assert qc["passed"] is False and "cannot be checked" in qc["summary"]
    assert broken.exists()
    assert standards_for_preset("broadcast") == ("ebu_r128", "ebu_r103")
    assert standards_for_preset("web") == ()
    assert standards_for_preset("web", ["web", "ebu_r103"]) == ("web", "ebu_r103")


def test_smooth_flicker_is_counted_though_no_single_frame_jumps_20(media: Path) -> None:
    # A 4 Hz sinusoid between about 20 and 80 cd/m²: at most ~15 cd/m² change per frame at
    # 50 fps, 60 cd/m² peak to peak, so each swing is a transition.
    def frame(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = 133 + 33 * np.sin(2 * np.pi * 4 * i / 50)
        return planes(W, H, y=round(y))

    report = QualityValidator().validate_video(
        write_video(media / "flicker.mp4", frame, count=100, fps=50)
    )
    assert report.measurements["video"]["max_flashes_per_second"] >= 4.0
    assert any(i.check == "flashes" and i.severity == "fail" for i in report.issues)


def test_fewer_frames_than_declared_fail(media: Path) -> None:
    from engine.qa.validator import build_video_report
    from engine.qa.video_checks import measure_video

    path = write_video(media / "count.mp4", lambda i: ramp(W, H, 3 * i), count=25)
    video = measure_video(path)
    assert video.declared_frames == video.frames == 25
    video.declared_frames = 30  # as a header of a file cut short would say
    report = build_video_report(path, video, None)
    issue = next(i for i in report.issues if i.check == "frame_count")
    assert issue.severity == "fail" and "25 of the 30" in issue.message


def test_video_analysis_keeps_no_per_frame_data_but_the_frame_times(media: Path) -> None:
    import tracemalloc

    from engine.qa.video_checks import measure_video

    peaks = {}
    for count in (25, 100, 500):  # the first one warms up (imports, caches)
        path = write_video(media / f"long{count}.mp4", lambda i: ramp(96, 54, 3 * i), count=count)
        tracemalloc.start()
        try:
            measured = measure_video(path)
            peaks[count] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert measured.frames == count
    # 400 more frames may add their 8-byte times (and the array's spare room), no more:
    # no list of frames, thumbnails, flags or Python floats per frame.
    assert peaks[500] - peaks[100] < 400 * 16, peaks
