from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main


def test_analyze_writes_json_and_plot(
    short_song: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2

    song, truth = short_song
    out_json, out_png = tmp_path / "a.json", tmp_path / "a.png"
    code = main(
        [
            "analyze",
            str(song),
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    summary = capsys.readouterr().out
    tempo = float(summary.split(" BPM")[0].rsplit(" ", 1)[1])
    assert tempo == pytest.approx(132.0, rel=0.02)
    assert "sections: intro 0:00" in summary
    data = json.loads(out_json.read_text())
    assert set(data) >= {
        "duration",
        "tempo",
        "time_signature",
        "key",
        "beats",
        "sections",
        "analyzer_version",
    }
    assert data["time_signature"] == "4/4"
    assert set(data["beats"][0]) == {"time", "strength", "is_downbeat", "bar", "beat"}
    assert set(data["sections"][0]) >= {"start", "end", "label", "confidence"}
    downbeats = [b["time"] for b in data["beats"] if b["is_downbeat"]]
    assert np.abs(np.array(downbeats[:4]) - np.array(truth["downbeats"][:4])).max() < 0.07
    image = cv2.imread(str(out_png))
    assert image is not None and image.shape[1] == 1800
    assert float(image.std()) > 20  # a picture, not a blank canvas


def test_analyze_json_to_stdout(
    tiny_song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["analyze", str(tiny_song), "--json", "-", "--cache-dir", str(tmp_path)])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tempo"] == pytest.approx(150.0, rel=0.04)


def test_analyze_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    song = tmp_path / "x.mp3"
    song.write_text("no")
    assert main(["analyze", str(song)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if line.startswith("error:")] == [
        f"error: {song}: not a readable audio file (InvalidDataError); convert it to wav, "
        "flac or mp3 and try again"
    ]
    assert main(["analyze", str(tmp_path / "missing.wav"), "--plot", str(tmp_path / "p.jpg")]) == 2
    assert main(["analyze", str(song), "--sensitivity", "2"]) == 2
    assert not (tmp_path / "p.jpg").exists()
