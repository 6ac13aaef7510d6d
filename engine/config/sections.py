"""Settings of one service read from a configuration dict.

The asset manager and the orchestrator take either a whole configuration with their own
section (``{"assets": {...}}``: unknown keys in it are an error) or a flat dict of their
keys (other keys are ignored, so the same dict can serve several services).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import ParameterError

__all__ = ["section_settings"]


def section_settings(
    config: Mapping[str, Any], section: str, defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """``defaults`` updated with the keys of ``config[section]`` (or of flat ``config``).

    Raises
    ------
    ParameterError
        ``config[section]`` holds a key that ``defaults`` does not know.
    """
    own = config.get(section)
    strict = isinstance(own, Mapping)
    source = own if strict else config
    merged = dict(defaults)
    for key, value in source.items():
        if key in defaults:
            merged[key] = value
        elif strict:
            raise ParameterError(f"{section}.{key}", value, f"one of {sorted(defaults)}")
    return merged
