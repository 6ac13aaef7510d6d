"""``apex-director generate`` end to end: real CLI parsing, real backends, PNGs on disk."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli import main
from tests.generation_fixtures import one_torch_thread


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    pytest.importorskip("torch")
    with one_torch_thread():
        yield


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image


def test_generate_with_the_diffusers_backend_writes_seeded_variants(
    tiny_sd15_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shot.png"
    argv = [
        "generate",
        "a neon city at night",
        "-o",
        str(out),
        "--backend",
        "diffusers",
        "--model",
        str(tiny_sd15_folder),
        "--device",
        "cpu",
        "--seed",
        "5",
        "--steps",
        "2",
        "--variants",
        "2",
        "--width",
        "32",
        "--height",
        "48",
    ]
    assert main(argv) == 0
    first, second = tmp_path / "shot-1.png", tmp_path / "shot-2.png"
    a, b = _read(first), _read(second)
    assert a.shape == (48, 32, 3)
    assert not np.array_equal(a, b)  # seeds 5 and 6
    printed = capsys.readouterr().out
    assert "seed 5, score " in printed and "seed 6, score " in printed
    assert "(diffusers)" in printed and "best: " in printed
    # same seed again: same pixels; then img2img from the first image
    again = tmp_path / "again.png"
    argv_one = [*argv[:3], str(again), *argv[4:]]
    argv_one[argv_one.index("--variants") + 1] = "1"
    assert main(argv_one) == 0
    np.testing.assert_array_equal(_read(again), a)
    repaint = tmp_path / "repaint.png"
    assert (
        main(
            [
                *argv_one[:3],
                str(repaint),
                *argv_one[4:],
                "--init-image",
                str(first),
                "--strength",
                "0.5",
            ]
        )
        == 0
    )
    assert _read(repaint).shape == (48, 32, 3)


def test_generate_fails_over_to_the_labelled_draft_painter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("diffusers")
    config = tmp_path / "config.toml"
    config.write_text('[render]\nbackend_order = ["diffusers", "procedural"]\n', encoding="utf-8")
    out = tmp_path / "draft.png"
    with caplog.at_level(logging.WARNING):
        code = main(
            [
                "--config",
                str(config),
                "generate",
                "a misty forest",
                "-o",
                str(out),
                "--model",
                str(tmp_path / "missing.safetensors"),
                "--width",
                "64",
                "--height",
                "48",
            ]
        )
    assert code == 0
    assert _read(out).shape == (48, 64, 3)
    assert "procedural DRAFT" in capsys.readouterr().out
    assert any(
        "diffusers" in r.message and "missing.safetensors" in r.message for r in caplog.records
    )


def test_generate_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("diffusers")
    code = main(
        [
            "generate",
            "x",
            "-o",
            str(tmp_path / "x.png"),
            "--backend",
            "diffusers",
            "--model",
            str(tmp_path / "missing.safetensors"),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 1 and len(errors) == 1 and "model not found" in errors[0]
    assert main(["generate", "x", "-o", str(tmp_path / "x.jpg")]) == 2
    assert main(["generate", "x", "-o", str(tmp_path / "x.png"), "--variants", "0"]) == 2


def test_render_with_the_diffusers_backend(
    tiny_song: Path, tiny_sd15_folder: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    # "turbo" in the name: few-step defaults (4 steps, no guidance) keep the render quick
    model = tmp_path / "tiny-sd-turbo"
    shutil.copytree(tiny_sd15_folder, model)
    video, report = tmp_path / "video.mp4", tmp_path / "report.json"
    argv = ["render", str(tiny_song), "-o", str(video), "--preset", "draft"]
    argv += ["--backend", "diffusers", "--model", str(model), "--device", "cpu"]
    argv += ["--json-report", str(report), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    data = json.loads(report.read_text())
    assert data["backend"]["name"] == "diffusers" and data["backend"]["draft"] is False
    assert video.stat().st_size > 0
