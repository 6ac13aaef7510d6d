"""``apex-director project ...`` and ``apex-director assets ...`` end to end (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli import main


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _image(path: Path, seed: int, scale: float = 1.0, jpeg: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    image = np.zeros((120, 160, 3), np.uint8)
    for _ in range(5):
        centre = (int(rng.integers(0, 160)), int(rng.integers(0, 120)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(10, 50)), colour, -1)
    if scale != 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    params = [cv2.IMWRITE_JPEG_QUALITY, 70] if jpeg else []
    assert cv2.imwrite(str(path), image, params)
    return path


def test_project_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "video"
    code, out, _ = _cli(capsys, "project", "new", str(root), "--name", "Clip", "--tag", "demo")
    assert code == 0 and "created project 'Clip'" in out
    code, _, err = _cli(capsys, "project", "new", str(root))
    assert code == 2 and "already exists" in err
    code, out, _ = _cli(capsys, "project", "info", str(root), "--json")
    info = json.loads(out)
    assert code == 0 and info["name"] == "Clip" and info["tags"] == ["demo"]
    code, out, _ = _cli(capsys, "project", "backup", str(root))
    assert code == 0 and "backed up to" in out
    (root / "project.apex.json").write_text('{"name": "Clip",\n  oops\n}')
    code, _, err = _cli(capsys, "project", "open", str(root))
    assert code == 2 and "line 2, column 3" in err and "--recover" in err
    code, out, _ = _cli(capsys, "project", "open", str(root), "--recover")
    assert code == 0 and "broken file is kept as project.apex.json.broken-" in out
    assert json.loads((root / "project.apex.json").read_text())["name"] == "Clip"
    code, _, err = _cli(capsys, "project", "info", str(tmp_path / "none"))
    assert code == 2 and "no APEX Director project here" in err


def test_assets_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "video"
    assert _cli(capsys, "project", "new", str(root))[0] == 0
    original = _image(tmp_path / "sunset.png", seed=1)
    resized = _image(tmp_path / "sunset_small.jpg", seed=1, scale=0.75, jpeg=True)
    other = _image(tmp_path / "forest.png", seed=2)
    code, out, _ = _cli(
        capsys, "assets", "-p", str(root), "add", str(original), str(resized), "--tag", "sky"
    )
    assert code == 0 and out.count("-> assets/") == 2
    assert _cli(capsys, "assets", "-p", str(root), "add", str(other), "--category", "still")[0] == 0

    code, out, err = _cli(capsys, "assets", "-p", str(root), "search", "sunset", "--json")
    found = json.loads(out)
    assert code == 0 and {m["name"] for m in found} == {"sunset.png", "sunset_small.jpg"}
    code, out, _ = _cli(capsys, "assets", "-p", str(root), "search", "--category", "still")
    assert code == 0 and "forest.png" in out and "sunset" not in out
    code, out, _ = _cli(
        capsys, "assets", "-p", str(root), "search", "--tag", "sky", "--mime", "image/jpeg"
    )
    assert code == 0 and "sunset_small.jpg" in out and "sunset.png" not in out

    digest = found[0]["content_hash"]
    code, out, _ = _cli(capsys, "assets", "-p", str(root), "info", digest, "--json")
    assert code == 0 and json.loads(out)["content_hash"] == digest

    code, out, _ = _cli(capsys, "assets", "-p", str(root), "dupes", "--json")
    groups = json.loads(out)
    assert code == 0 and len(groups) == 1 and len(groups[0]) == 2
    assert all("forest" not in json.dumps(group) for group in groups)

    code, out, _ = _cli(capsys, "assets", "-p", str(root), "stats", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["storage"]["total_assets"] == 3
    assert set(stats["storage"]["by_category"]) == {"image", "still"}

    stale = root / "assets" / ".leftover.png.tmp-x"
    stale.write_bytes(b"half")
    code, out, _ = _cli(capsys, "assets", "-p", str(root), "clean", "--max-age-hours", "0")
    assert code == 0 and "removed 1 temporary files" in out and not stale.exists()

    code, _, err = _cli(capsys, "assets", "-p", str(root), "info", str(tmp_path / "x.png"))
    assert code == 2 and "not inside the assets folder" in err
    code, _, err = _cli(capsys, "assets", "-p", str(tmp_path / "nowhere"), "stats")
    assert code == 2 and "no APEX Director project here" in err
