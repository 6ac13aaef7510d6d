from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from engine.config import SCHEMA, ConfigManager, default_config
from engine.errors import ConfigurationError


def test_every_key_has_a_default_and_defaults_validate() -> None:
    cm = ConfigManager()
    for key, field in SCHEMA.items():
        assert cm.get(key) == field.default, key
    assert cm.get("schema_version") == 1


def test_dot_notation_get_set_and_default() -> None:
    cm = ConfigManager()
    assert cm.get("presets.web.width") == 1920
    assert cm.get("presets.web")["fps"] == 30
    assert cm.get("no.such.key", "fallback") == "fallback"
    cm.set("render.preset", "draft")
    assert cm.get("render.preset") == "draft"


def test_set_rejects_bad_value_and_keeps_the_old_one() -> None:
    cm = ConfigManager()
    with pytest.raises(ConfigurationError, match=r"render\.preset: 'imax' is not one of"):
        cm.set("render.preset", "imax")
    assert cm.get("render.preset") == "web"


def test_update_lists_every_error_with_its_dotted_path() -> None:
    cm = ConfigManager()
    with pytest.raises(ConfigurationError) as info:
        cm.update(
            {
                "presets": {"web": {"width": 641, "fps": 23}},
                "render": {"presett": "web", "crossfade_seconds": "long"},
            }
        )
    errors = info.value.validation_errors
    assert any(e.startswith("presets.web.width: 641 must be even") for e in errors)
    assert any(e.startswith("presets.web.fps: 23 is not one of") for e in errors)
    assert any("render.presett: unknown key (did you mean 'render.preset'?)" in e for e in errors)
    assert any(e.startswith("render.crossfade_seconds: expected float") for e in errors)
    assert len(errors) == 4
    assert cm.get("presets.web.width") == 1920  # all or nothing


def test_boolean_is_not_an_int() -> None:
    cm = ConfigManager()
    with pytest.raises(ConfigurationError, match="got a boolean"):
        cm.set("presets.web.fps", True)


def test_save_and_load_round_trip_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    cm = ConfigManager(path)
    cm.set("style.prompt", "rainy neon city")
    assert cm.save_config() is True
    assert tomllib.loads(path.read_text())["style"]["prompt"] == "rainy neon city"
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temp files left
    again = ConfigManager(path)
    assert again.load_config()["style"]["prompt"] == "rainy neon city"


def test_partial_file_is_merged_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[render]\npreset = "high"\n')
    config = ConfigManager(path).load_config()
    assert config["render"]["preset"] == "high"
    assert config["presets"]["draft"]["width"] == 640


def test_invalid_file_lists_errors_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[presets.high]\nwidth = 99999\n[render]\nmotion_amount = -1.0\n")
    with pytest.raises(ConfigurationError) as info:
        ConfigManager(path).load_config()
    assert info.value.config_path == path
    assert "presets.high.width: 99999 is above the maximum 7680" in info.value.validation_errors
    assert "render.motion_amount: -1.0 is below the minimum 0.0" in info.value.validation_errors
    assert str(path) in str(info.value)


def test_broken_toml_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[render\npreset = ")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        ConfigManager(path).load_config()


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("schema_version = 99\n")
    with pytest.raises(ConfigurationError, match="newer APEX Director"):
        ConfigManager(path).load_config()


def test_save_refuses_invalid_config_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    bad = default_config()
    bad["render"]["preset"] = "nope"
    with pytest.raises(ConfigurationError, match="Refusing to save"):
        ConfigManager(path).save_config(bad)
    assert not path.exists()


def test_default_config_overrides_in_constructor() -> None:
    cm = ConfigManager(default_config={"render": {"preset": "draft"}})
    assert cm.get("render.preset") == "draft"


def test_configuration_reference_is_current() -> None:
    from engine.config.reference import render_reference

    committed = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    assert committed == render_reference(), (
        "docs/configuration.md is stale: python -m engine.config.reference > docs/configuration.md"
    )
