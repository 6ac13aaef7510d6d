"""Shared validation for the grading settings built from dictionaries (JSON, the API)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from engine.errors import ParameterError

__all__ = ["reject_unknown_keys"]


def reject_unknown_keys(settings_type: Any, values: Mapping[str, Any], what: str) -> None:
    """Raise :class:`ParameterError` naming the first key of ``values`` that is not a field."""
    allowed = [f.name for f in fields(settings_type)]
    for key in values:
        if key not in allowed:
            raise ParameterError(what, key, "one of " + ", ".join(allowed))
