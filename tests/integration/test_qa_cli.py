"""``apex-director qa`` end to end (exit 0 pass, 1 fail, 2 bad input; --json), and the
render gate: every render's JSON report carries its QC, a failure marks it, the file stays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from tests.media import write_wav
from tests.qa_media import planes, ramp, sine, write_video


def _qa(*args: str) -> int:
    # --analysis keeps the developer's own configuration out of the test.
    return main(["qa", *args, "--analysis", "full"])


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("qa_cli")
    clean = write_video(
        d / "clean.mp4", lambda i: ramp(160, 90, i), count=50, audio=(sine(2.0, dbfs=-23.0), 48000)
    )
    flash = write_video(
        d / "flash.mp4",
        lambda i: planes(160, 90, y=235 if i % 10 < 5 else 16),
        count=100,
        fps=50,
    )
    truncated = d / "truncated.mp4"
    truncated.write_bytes(clean.read_bytes()[:3000])
    return {"clean": clean, "flash": flash, "truncated": truncated, "dir": d}


def test_clean_clip_exits_0_and_writes_json(
    clips: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = clips["dir"] / "clean.json"
    assert _qa(str(clips["clean"]), "--standard", "ebu_r128", "--json", str(out)) == 0
    text = capsys.readouterr().out
    assert "QC passed" in text and "ok   integrated_loudness: -23.0" in text
    report = json.loads(out.read_text())
    assert report["passed"] is True and report["media_type"] == "video"
    r128 = report["compliance"]["standards"][0]
    assert r128["standard"] == "ebu_r128" and r128["passed"] is True
    assert r128["items"][0]["measured"] == pytest.approx(-23.0, abs=0.15)


def test_flashing_clip_exits_1_and_says_where(
    clips: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _qa(str(clips["flash"])) == 1
    text = capsys.readouterr().out
    assert "QC FAILED" in text and "fail: flashes" in text and "[frame " in text


def test_a_standard_that_fails_exits_1(
    clips: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # -23 LUFS is 9 LU under the web target, and lossless x264 is not the High profile.
    assert _qa(str(clips["clean"]), "--standard", "web") == 1
    text = capsys.readouterr().out
    assert "FAIL integrated_loudness: -23.05 LUFS (limit -14 +/- 1 LUFS)" in text
    assert "FAIL codec_profile" in text


def test_json_to_stdout(clips: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _qa(str(clips["clean"]), "--json", "-") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["measurements"]["video"]["frames"] == 50


def test_sound_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    song = write_wav(tmp_path / "tone.wav", sine(3.0, dbfs=-24.0), 48000)
    assert _qa(str(song), "--standard", "atsc_a85") == 0
    assert _qa(str(song)) == 1  # EBU R 128 by default: -24 is 1 LU off
    assert "ebu_r128: FAIL" in capsys.readouterr().out


def test_still(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    rng = np.random.default_rng(1)
    image = cv2.resize(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), (640, 480))
    cv2.rectangle(image, (100, 100), (300, 300), (240, 30, 30), -1)
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), image)
    assert _qa(str(path)) == 0
    assert _qa(str(path), "--standard", "hd") == 1
    assert "640x480 is smaller than hd (1920x1080)" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["truncated", "missing", "zero_image", "bad_standard"])
def test_bad_input_exits_2(
    clips: dict[str, Path], case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {
        "truncated": [str(clips["truncated"])],
        "missing": [str(tmp_path / "nope.mp4")],
        "bad_standard": [str(clips["clean"]), "--standard", "ebu_r999"],
    }.get(case)
    if case == "zero_image":
        # A PNG whose header declares 0x0 pixels.
        import struct
        import zlib

        def chunk(kind: bytes, data: bytes) -> bytes:
            crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
            return struct.pack(">I", len(data)) + kind + data + crc

        path = tmp_path / "zero.png"
        header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
        args = [str(path)]
    assert _qa(*args) == 2  # type: ignore[misc]
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.audio.synth import SectionSpec, SongSpec, synthesize_song

    spec = SongSpec(
        tempo=120.0, sections=(SectionSpec(label="chorus", bars=4, energy=0.9),), seed=5
    )
    synth = synthesize_song(spec)
    return write_wav(tmp_path_factory.mktemp("qa_song") / "s.wav", synth.audio, synth.sample_rate)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qa_render_cache")


def _render(song: Path, tmp_path: Path, cache: Path, qa: dict) -> tuple[dict, Path]:
    from engine.config import ConfigManager
    from engine.orchestrator.render_pipeline import RenderRequest, render_video

    config = ConfigManager(
        default_config={
            "presets": {"broadcast": {"width": 320, "height": 180, "encoder_speed": "ultrafast"}},
            "qa": qa,
        }
    ).config
    out = tmp_path / "render.mp4"
    report = render_video(
        RenderRequest(
            audio_path=song,
            output_path=out,
            preset="broadcast",
            json_report=tmp_path / "render.json",
            cache_dir=cache,
        ),
        config=config,
    )
    assert json.loads((tmp_path / "render.json").read_text()).get("qc") == report.get("qc")
    return report, out


def test_render_gate_passes_a_broadcast_render(song: Path, tmp_path: Path, cache: Path) -> None:
    report, _out = _render(song, tmp_path, cache, {})
    qc = report["qc"]
    assert qc["passed"] is True, qc["summary"]
    assert qc["gate_standards"] == ["ebu_r128", "ebu_r103"]
    r128 = qc["report"]["compliance"]["standards"][0]
    assert r128["standard"] == "ebu_r128" and r128["passed"]
    assert r128["items"][0]["measured"] == pytest.approx(-23.0, abs=0.5)
    assert qc["report"]["measurements"]["video"]["frames"] == report["output"]["frames"]
    assert "qa" in report["timings"]


def test_render_gate_failure_marks_the_report_and_keeps_the_file(
    song: Path, tmp_path: Path, cache: Path
) -> None:
    # Held to the web standard as well, a broadcast render (-23 LUFS) fails.
    failed, out = _render(song, tmp_path, cache, {"standards": ["web"]})
    assert failed["qc"]["passed"] is False
    assert failed["qc"]["summary"].startswith("QC FAILED: ")
    assert "web integrated_loudness -23" in failed["qc"]["summary"]
    assert out.exists() and out.stat().st_size > 0


def test_render_gate_can_be_switched_off(song: Path, tmp_path: Path, cache: Path) -> None:
    skipped, _ = _render(song, tmp_path, cache, {"enabled": False})
    assert "qc" not in skipped
