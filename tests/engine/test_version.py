"""The version lives in engine/__init__.py only; pyproject, the CLI and the changelog agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import engine

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_semantic() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?(a|b|rc|dev)\d*)?", engine.__version__)


def test_pyproject_reads_the_version_from_engine() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"], "the version must live in engine only"
    assert "version" in pyproject["project"]["dynamic"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "engine.__version__"}


def test_installed_metadata_agrees_when_installed() -> None:
    try:
        installed = metadata.version("apex-director")
    except metadata.PackageNotFoundError:
        pytest.skip("apex-director is not installed in this environment")
    assert installed == engine.__version__


def test_cli_version_prints_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--version"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"apex-director {engine.__version__}"


def test_changelog_has_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog")
    assert "## [Unreleased]" in text
    assert "keepachangelog.com" in text
