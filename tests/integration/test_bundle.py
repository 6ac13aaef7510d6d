"""The PyInstaller bundle (packaging/) and what it relies on.

Fast tests: ``engine.resources`` finds ``resources/`` the way a frozen bundle, a wheel and a
checkout lay it out; ``apex-director-gui --smoke-test`` opens the window offscreen; the
desktop entry and icons are well formed.  Slow test (``--run-slow``, after ``make bundle``):
``packaging/smoke_test.sh`` against ``dist/apex-director`` — the frozen CLI's --help and
--version, a draft render of the demo song to a valid MP4, and the GUI's smoke test — and the
bundle carries resources/ but none of the ``sd`` extra.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import resources

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "dist" / "apex-director"
LINUX = ROOT / "packaging" / "linux"


@pytest.fixture
def fresh_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``data_root`` is cached: clear it around a test that changes where it looks."""
    monkeypatch.delenv(resources.DATA_ENV, raising=False)
    resources.data_root.cache_clear()
    yield
    resources.data_root.cache_clear()


def _fake_install(base: Path) -> Path:
    (base / "resources" / "looks").mkdir(parents=True)
    (base / "models").mkdir()
    return base


def test_checkout_layout_is_found(fresh_root: None) -> None:
    assert resources.data_root() == ROOT
    assert resources.resources_dir("demo", "demo_song.mp3").is_file()
    assert (resources.models_catalogue_dir() / "manifest.toml").is_file()


def test_frozen_bundle_uses_meipass(
    fresh_root: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meipass = _fake_install(tmp_path / "_internal")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(meipass), raising=False)
    assert resources.data_root() == meipass
    assert resources.resources_dir("looks") == meipass / "resources" / "looks"


def test_meipass_without_frozen_is_ignored(
    fresh_root: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "_MEIPASS", str(_fake_install(tmp_path / "x")), raising=False)
    monkeypatch.delattr(sys, "frozen", raising=False)
    assert resources.data_root() == ROOT


def test_environment_override_wins(
    fresh_root: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _fake_install(tmp_path / "data")
    monkeypatch.setenv(resources.DATA_ENV, str(base))
    assert resources.data_root() == base


def test_wheel_prefix_share_is_a_candidate(fresh_root: None) -> None:
    assert Path(sys.prefix) / "share" / "apex-director" in resources._candidates()


def test_missing_resources_is_a_typed_error(
    fresh_root: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.errors import AssetError

    monkeypatch.setattr(resources, "_candidates", lambda: [tmp_path / "nowhere"])
    with pytest.raises(AssetError, match=resources.DATA_ENV):
        resources.check_data_root()


def test_gui_smoke_test_flag_opens_the_window_and_exits_0(tmp_path: Path) -> None:
    """``--smoke-test SONG``: the window shows, and the song is analysed in a stage process."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    song = ROOT / "resources" / "demo" / "demo_song.mp3"
    proc = subprocess.run(
        [sys.executable, "-m", "app.main", "--smoke-test", str(song)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "main window shown=True" in proc.stderr
    assert "started a stage process" in proc.stderr
    assert "smoke test: analysed demo_song.mp3" in proc.stderr


def test_desktop_entry_is_well_formed() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(LINUX / "apex-director.desktop", encoding="utf-8")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Exec"].split()[0] == "apex-director-gui"
    assert entry["Icon"] == "apex-director"
    assert entry["Categories"].endswith(";")
    assert "AudioVideo" in entry["Categories"].split(";")


@pytest.mark.parametrize("size", [48, 128, 256])
def test_icons_have_their_sizes(size: int) -> None:
    from PySide6.QtGui import QImage

    image = QImage(str(LINUX / "icons" / f"apex-director-{size}.png"))
    assert (image.width(), image.height()) == (size, size)
    assert image.hasAlphaChannel()
    # Transparent corner (rounded tile), opaque centre.
    assert image.pixelColor(0, 0).alpha() == 0
    assert image.pixelColor(size // 2, size // 2).alpha() == 255


def test_icon_svg_renders() -> None:
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(LINUX / "icons" / "apex-director.svg"))
    assert renderer.isValid()
    assert renderer.defaultSize().width() == 256


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLE.is_dir(), reason="no dist/apex-director: run `make bundle` first")
def test_bundle_smoke_test_passes() -> None:
    if shutil.which("python3") is None:
        pytest.skip("smoke_test.sh reads the render report with python3")
    proc = subprocess.run(
        ["bash", str(ROOT / "packaging" / "smoke_test.sh"), str(BUNDLE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "SMOKE OK" in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLE.is_dir(), reason="no dist/apex-director: run `make bundle` first")
def test_bundle_carries_resources_but_not_the_sd_extra() -> None:
    internal = BUNDLE / "_internal"
    for rel in (
        "resources/demo/demo_song.mp3",
        "resources/looks/teal-orange.cube",
        "resources/sd/sd15/tokenizer/vocab.json",
        "resources/styles/genres/noir.toml",
        "models/manifest.toml",
    ):
        assert (internal / rel).is_file(), rel
    for heavy in ("torch", "diffusers", "transformers", "spandrel", "librosa", "numba"):
        assert not (internal / heavy).exists(), f"the bundle carries {heavy}"
