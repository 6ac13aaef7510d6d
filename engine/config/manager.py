"""``ConfigManager``: load, validate, change and save the configuration (TOML)."""

from __future__ import annotations

import copy
import difflib
import logging
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.atomic_files import atomic_write_text
from engine.config.schema import SCHEMA, SCHEMA_VERSION, default_config, flatten, unflatten
from engine.errors import ConfigurationError

__all__ = ["ConfigManager", "validate_config"]

log = logging.getLogger(__name__)

# Numbered migrations: MIGRATIONS[n] turns a version-n flat dict into version n+1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def validate_config(config: dict[str, Any]) -> list[str]:
    """Every problem in a nested config dictionary, each prefixed with its dotted key."""
    errors: list[str] = []
    flat = flatten(config)
    for key, value in flat.items():
        field = SCHEMA.get(key)
        if field is None:
            hint = difflib.get_close_matches(key, list(SCHEMA), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            errors.append(f"{key}: unknown key{suggestion}")
            continue
        problem = field.validate(key, value)
        if problem:
            errors.append(problem)
    errors.extend(f"{key}: missing" for key in SCHEMA if key not in flat)
    return errors


def _migrate(flat: dict[str, Any], path: Path | None) -> dict[str, Any]:
    version = flat.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigurationError(
            "Invalid configuration",
            config_path=path,
            validation_errors=[f"schema_version: expected int, got {version!r}"],
        )
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"This configuration was written by a newer APEX Director (schema {version}, "
            f"this one reads up to {SCHEMA_VERSION}); upgrade, or remove the file to use defaults",
            config_path=path,
        )
    while version < SCHEMA_VERSION:
        flat = MIGRATIONS[version](flat)
        version += 1
        flat["schema_version"] = version
    return flat


class ConfigManager:
    """The engine's configuration: one validated dictionary with defaults for every key.

    Parameters
    ----------
    config_path : Path, optional
        TOML file to load from and save to.  A missing file means "all defaults".
    default_config : dict, optional
        Overrides applied on top of the built-in defaults (nested dictionary).

    Examples
    --------
    >>> cm = ConfigManager()
    >>> cm.get("render.preset")
    'web'
    >>> cm.set("render.preset", "draft")
    """

    def __init__(
        self, config_path: Path | None = None, default_config: dict[str, Any] | None = None
    ) -> None:
        self.config_path = Path(config_path) if config_path is not None else None
        self._overrides = copy.deepcopy(default_config or {})
        self._config: dict[str, Any] = self._defaults()

    def _defaults(self) -> dict[str, Any]:
        merged = flatten(default_config())
        merged.update(flatten(self._overrides))
        return unflatten(merged)

    @property
    def config(self) -> dict[str, Any]:
        """A deep copy of the current configuration."""
        return copy.deepcopy(self._config)

    def load_config(self, config_path: Path | None = None) -> dict[str, Any]:
        """Load the configuration from ``config_path`` (or the constructor's) over defaults.

        Raises
        ------
        ConfigurationError
            The file is not valid TOML, or one or more values are invalid; every
            problem is listed with its dotted key in ``validation_errors``.
        """
        path = Path(config_path) if config_path is not None else self.config_path
        merged = flatten(self._defaults())
        if path is not None and path.exists():
            try:
                loaded = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise ConfigurationError(
                    f"The configuration file is not valid TOML ({err}); fix it or delete it",
                    config_path=path,
                ) from err
            except OSError as err:
                raise ConfigurationError(
                    f"Cannot read the configuration file ({err.strerror})", config_path=path
                ) from err
            merged.update(_migrate(flatten(loaded), path))
        config = unflatten(merged)
        errors = validate_config(config)
        if errors:
            raise ConfigurationError(
                "Invalid configuration", config_path=path, validation_errors=errors
            )
        self._config = config
        if path is not None:
            self.config_path = path
        log.debug("configuration loaded from %s", path or "defaults")
        return self.config

    def save_config(
        self, config: dict[str, Any] | None = None, config_path: Path | None = None
    ) -> bool:
        """Validate and write ``config`` (default: the current one) atomically as TOML.

        Returns
        -------
        bool
            ``True`` once written.

        Raises
        ------
        ConfigurationError
            ``config`` is invalid (nothing is written), or no path is known.
        """
        import tomli_w

        path = Path(config_path) if config_path is not None else self.config_path
        if path is None:
            raise ConfigurationError("No configuration path given; pass config_path=")
        to_save = copy.deepcopy(config if config is not None else self._config)
        merged = flatten(self._defaults())
        merged.update(flatten(to_save))
        to_save = unflatten(merged)
        errors = validate_config(to_save)
        if errors:
            raise ConfigurationError(
                "Refusing to save an invalid configuration",
                config_path=path,
                validation_errors=errors,
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, tomli_w.dumps(to_save))
        self._config = to_save
        self.config_path = path
        return True

    def get(self, path: str, default: Any = None) -> Any:
        """Value at dotted ``path`` (a sub-dictionary for a prefix), or ``default``."""
        node: Any = self._config
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return copy.deepcopy(node)

    def set(self, path: str, value: Any) -> None:
        """Set the value at dotted ``path``, validating it first.

        Raises
        ------
        ConfigurationError
            Unknown key or invalid value; the configuration is unchanged.
        """
        self.update(unflatten({path: value}))

    def update(self, updates: dict[str, Any]) -> None:
        """Apply a nested dictionary of changes at once (all or nothing)."""
        merged = flatten(self._config)
        merged.update(flatten(updates))
        candidate = unflatten(merged)
        errors = validate_config(candidate)
        if errors:
            raise ConfigurationError(
                "Invalid configuration change",
                config_path=self.config_path,
                validation_errors=errors,
            )
        self._config = candidate
