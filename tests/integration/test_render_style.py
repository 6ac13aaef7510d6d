"""The style settings reach the video: a look changes the colours, a bad look is refused
before any work, and the section transition can be chosen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main


def _mean_colour(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        frames = [
            f.to_ndarray(format="rgb24").mean(axis=(0, 1))
            for i, f in enumerate(container.decode(video=0))
            if i % 24 == 0
        ]
    return np.mean(frames, axis=0)


def _render(song: Path, tmp_path: Path, name: str, config_text: str) -> tuple[int, Path]:
    config = tmp_path / f"{name}.toml"
    config.write_text(config_text)
    out = tmp_path / f"{name}.mp4"
    code = main(
        [
            "--config",
            str(config),
            "render",
            str(song),
            "-o",
            str(out),
            "--preset",
            "draft",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json-report",
            str(tmp_path / f"{name}.json"),
        ]
    )
    return code, out


def test_a_look_changes_the_colours(tiny_song: Path, tmp_path: Path) -> None:
    code, plain = _render(tiny_song, tmp_path, "plain", "")
    assert code == 0
    code, graded = _render(
        tiny_song, tmp_path, "graded", '[grade]\nlook = "cool-night"\nlook_strength = 1.0\n'
    )
    assert code == 0
    before, after = _mean_colour(plain), _mean_colour(graded)
    assert np.abs(after - before).max() > 5
    assert after[2] - after[0] > before[2] - before[0]  # cooler: more blue than red


def test_an_unknown_look_is_refused_before_any_work(
    tiny_song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _render(tiny_song, tmp_path, "bad", '[grade]\nlook = "no-such-look"\n')
    assert code == 2
    err = capsys.readouterr().err
    assert "no-such-look" in err and "error:" in err
    assert not out.exists()
    assert not (tmp_path / "cache" / "analysis").exists()


def test_section_transition_setting_reaches_the_plan(
    short_song: tuple[Path, dict], tmp_path: Path
) -> None:
    song, _truth = short_song
    code, _out = _render(song, tmp_path, "whip", '[render]\nsection_transition = "whip_pan"\n')
    assert code == 0
    report = json.loads((tmp_path / "whip.json").read_text())
    kinds = {s["transition_in"] for s in report["shots"][1:]}
    assert "whip_pan" in kinds and "crossfade" not in kinds


def test_section_looks_grade_only_their_sections(
    short_song: tuple[Path, dict], tmp_path: Path
) -> None:
    import av

    song, _truth = short_song
    code, plain = _render(song, tmp_path, "plain", "")
    assert code == 0
    code, graded = _render(
        song,
        tmp_path,
        "chorus",
        '[grade]\nsection_looks = "chorus=bleach-bypass"\nlook_strength = 1.0\n',
    )
    assert code == 0
    report = json.loads((tmp_path / "chorus.json").read_text())

    def frame_means(path: Path) -> list[float]:
        with av.open(str(path)) as container:
            return [
                float(f.to_ndarray(format="rgb24").std(axis=2).mean())
                for f in container.decode(video=0)
            ]

    before, after = frame_means(plain), frame_means(graded)
    for shot in report["shots"]:
        middle = round((shot["start"] + shot["end"]) / 2 * 24)
        if shot["section"] == "chorus":
            assert after[middle] < before[middle] - 2  # bleach bypass: less colour
        else:
            assert after[middle] == pytest.approx(before[middle], abs=0.5)


def test_bad_section_looks_value(tiny_song: Path, tmp_path: Path) -> None:
    code, _out = _render(tiny_song, tmp_path, "bad", '[grade]\nsection_looks = "chorus"\n')
    assert code == 2
