"""Bad input: one clear line, exit code 2, and nothing left behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from tests.media import write_wav


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _assert_nothing_written(folder: Path, before: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == before


@pytest.fixture
def good_song(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "song.wav", np.zeros(44100, np.float32), 44100)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["render", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "o.mp4")], capsys)
    assert code == 2
    assert "file not found" in _error_line(err)
    _assert_nothing_written(tmp_path, set())


def test_text_file_named_mp3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    song = tmp_path / "song.mp3"
    song.write_text("definitely not an mp3\n" * 50)
    code, err = _run(["render", str(song), "-o", str(tmp_path / "o.mp4")], capsys)
    assert code == 2
    assert "not a readable audio file" in _error_line(err)
    _assert_nothing_written(tmp_path, {"song.mp3"})


def test_zero_length_wav(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    song = tmp_path / "song.wav"
    song.touch()
    code, err = _run(["render", str(song), "-o", str(tmp_path / "o.mp4")], capsys)
    assert code == 2
    assert "file is empty" in _error_line(err)
    _assert_nothing_written(tmp_path, {"song.wav"})


def test_unsupported_extension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    song = tmp_path / "song.aiff2"
    song.write_bytes(b"FORM" + b"\x00" * 64)
    code, err = _run(["render", str(song), "-o", str(tmp_path / "o.mp4")], capsys)
    assert code == 2
    assert "unsupported extension '.aiff2'" in _error_line(err)
    _assert_nothing_written(tmp_path, {"song.aiff2"})


def test_output_folder_missing(
    good_song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(["render", str(good_song), "-o", str(tmp_path / "no" / "o.mp4")], capsys)
    assert code == 2
    assert "does not exist; create it" in _error_line(err)
    _assert_nothing_written(tmp_path, {"song.wav"})


def test_output_with_wrong_extension(
    good_song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(["render", str(good_song), "-o", str(tmp_path / "o.avi")], capsys)
    assert code == 2
    assert "output must end in .mp4" in _error_line(err)


def test_images_folder_without_images(
    good_song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "stills"
    images.mkdir()
    (images / "notes.txt").write_text("no pictures here")
    code, err = _run(
        ["render", str(good_song), "-o", str(tmp_path / "o.mp4"), "--images", str(images)], capsys
    )
    assert code == 2
    assert "contains no images" in _error_line(err)
    _assert_nothing_written(tmp_path, {"song.wav", "stills"})


def test_images_folder_with_only_corrupt_images(
    good_song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "stills"
    images.mkdir()
    (images / "a.png").write_bytes(b"garbage")
    code, err = _run(
        ["render", str(good_song), "-o", str(tmp_path / "o.mp4"), "--images", str(images)], capsys
    )
    assert code == 2
    assert "none of its images can be read" in _error_line(err)
    _assert_nothing_written(tmp_path, {"song.wav", "stills"})


def test_bad_config_file(
    good_song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[presets.web]\nwidth = 641\n")
    code, err = _run(
        ["--config", str(config), "render", str(good_song), "-o", str(tmp_path / "o.mp4")], capsys
    )
    assert code == 2
    assert "presets.web.width: 641 must be even" in _error_line(err)
    _assert_nothing_written(tmp_path, {"song.wav", "config.toml"})


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--debug", "render", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "o.mp4")])
    assert code == 2
    assert "Traceback" in capsys.readouterr().err


def test_existing_output_survives_a_failed_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.mp4"
    out.write_bytes(b"my previous render")
    song = tmp_path / "song.mp3"
    song.write_text("not audio")
    code, _ = _run(["render", str(song), "-o", str(out)], capsys)
    assert code == 2
    assert out.read_bytes() == b"my previous render"
