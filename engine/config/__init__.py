"""Configuration: one validated schema with defaults, stored as TOML."""

from engine.config.manager import ConfigManager, validate_config
from engine.config.schema import SCHEMA, SCHEMA_VERSION, default_config

__all__ = ["SCHEMA", "SCHEMA_VERSION", "ConfigManager", "default_config", "validate_config"]
