"""VideoAssembler and AssemblyJob, the API reference's assembly interface."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from engine.api import AssemblyJob, ConfigManager, ParameterError, VideoAssembler
from engine.errors import MediaInputError
from tests.media import tone, write_wav


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    import cv2

    paths = []
    for name, bgr in (("a.png", (40, 40, 220)), ("b.png", (40, 200, 40)), ("c.png", (220, 60, 40))):
        image = np.full((400, 600, 3), bgr, np.uint8)
        cv2.circle(image, (300, 200), 80, (250, 250, 250), -1)  # detail for the motion
        cv2.imwrite(str(tmp_path / name), image)
        paths.append(tmp_path / name)
    return paths


@pytest.fixture
def song(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "song.wav", tone(6.0), 44100)


def _small_config() -> dict:
    return ConfigManager(
        default_config={
            "presets": {"draft": {"width": 320, "height": 180, "encoder_speed": "ultrafast"}}
        }
    ).config


def _frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_offline_assembly_with_transition_motion_and_grade(
    tmp_path: Path, images: list[Path], song: Path
) -> None:
    assembler = VideoAssembler(tmp_path / "work", _small_config())
    assert assembler.add_transition("dip_to_black", 1.8, 2.2).startswith("transition-")
    assembler.add_motion_effect("shake", 0.0, 6.0, {"shake": 20.0})
    assert assembler.apply_color_grade(1, {"saturation": 0.0}) is True
    job = AssemblyJob(
        "job-1",
        song,
        tmp_path / "out.mp4",
        [
            {"image_path": images[0], "start": 0.0},
            {"image_path": images[1], "start": 2.0},
            {"image_path": images[2], "start": 4.0, "transition": "crossfade"},
        ],
        quality_mode="draft",
    )
    result = asyncio.run(assembler.assemble_video(job))
    assert result["success"] and result["frames"] == 144 and result["width"] == 320
    frames = _frames(tmp_path / "out.mp4").astype(int)
    assert len(frames) == 144
    assert frames[48].mean() < 12  # the cut at 2.0 s is the bottom of the dip to black
    spread = np.abs(frames[10] - frames[10].mean(axis=2, keepdims=True)).max()
    assert spread < 12  # saturation 0: grey everywhere
    assert np.abs(frames[5] - frames[40]).mean() > 1.0  # the camera moves over the shot


def test_realtime_mode_serves_preview_frames(
    tmp_path: Path, images: list[Path], song: Path
) -> None:
    assembler = VideoAssembler(tmp_path / "work", _small_config())
    job = AssemblyJob(
        "job-2",
        song,
        tmp_path / "unused.mp4",
        [{"image_path": p} for p in images],
        quality_mode="draft",
        assembly_mode="realtime",
    )
    result = assembler.assemble(job)
    server = result["frame_server"]
    assert result["frame_count"] == 144
    frame = server.frame_at(3.0)  # images share the 6 s evenly: the second one
    assert frame.shape == (360, 640, 3)
    assert int(np.argmax(np.median(frame.reshape(-1, 3), axis=0))) == 1  # green
    assert not (tmp_path / "unused.mp4").exists()


def test_bad_jobs_and_edits(tmp_path: Path, images: list[Path], song: Path) -> None:
    with pytest.raises(ParameterError, match="quality_mode='imax'"):
        AssemblyJob("j", song, tmp_path / "o.mp4", [{"image_path": images[0]}], quality_mode="imax")
    with pytest.raises(ParameterError, match="at least one image"):
        AssemblyJob("j", song, tmp_path / "o.mp4", [])
    with pytest.raises(ParameterError, match="image_path"):
        AssemblyJob("j", song, tmp_path / "o.mp4", [{"path": images[0]}])
    assembler = VideoAssembler(tmp_path / "work", _small_config())
    with pytest.raises(ParameterError, match="transition_type='spin'"):
        assembler.add_transition("spin", 1.0, 2.0)
    with pytest.raises(ParameterError, match="effect_type='wobble'"):
        assembler.add_motion_effect("wobble", 0.0, 1.0, {})
    with pytest.raises(ParameterError, match="shake"):
        assembler.add_motion_effect("shake", 0.0, 1.0, {"shake": -5.0})
    job = AssemblyJob(
        "j",
        song,
        tmp_path / "o.mp4",
        [{"image_path": tmp_path / "missing.png"}],
        quality_mode="draft",
    )
    with pytest.raises(MediaInputError, match="not a readable image"):
        assembler.assemble(job)
    assert not (tmp_path / "o.mp4").exists()
