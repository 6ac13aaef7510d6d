"""Shared fixtures.  Every test runs with config and cache folders under tmp_path,
so the developer's own configuration never leaks into a test."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_EVAL = ROOT.parent / "shared" / "eval"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")
    parser.addoption("--run-gpu", action="store_true", help="run tests marked gpu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, option in (("slow", "--run-slow"), ("gpu", "--run-gpu")):
        if config.getoption(option):
            continue
        skip = pytest.mark.skip(reason=f"needs {option}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))


@pytest.fixture(scope="session")
def tiny_sd15_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SD 1.5 diffusers folder (tests/generation_fixtures.py)."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from tests.generation_fixtures import save_tiny_sd15_folder

    return save_tiny_sd15_folder(tmp_path_factory.mktemp("tiny_sd15") / "tiny-sd15")


@pytest.fixture(scope="session")
def tiny_sd15_single_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same tiny weights as one LDM-named .safetensors file, and its config folder."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from tests.generation_fixtures import save_tiny_sd15_single_file

    base = tmp_path_factory.mktemp("tiny_sd15_single")
    return save_tiny_sd15_single_file(base / "tiny-sd15.safetensors", base / "tiny-sd15-config")
