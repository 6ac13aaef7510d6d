"""Write the configuration reference (``docs/configuration.md``) from the schema.

Run ``python -m engine.config.reference > docs/configuration.md``; a test checks the
committed file is current.
"""

from __future__ import annotations

import sys

from engine.config.schema import SCHEMA, SCHEMA_VERSION

__all__ = ["render_reference"]


def _allowed(field: object) -> str:
    choices = getattr(field, "choices", None)
    if choices:
        return ", ".join(f"`{c}`" for c in choices)
    lo, hi = getattr(field, "minimum", None), getattr(field, "maximum", None)
    if lo is not None or hi is not None:
        return f"{lo if lo is not None else '…'} to {hi if hi is not None else '…'}"
    return ""


def render_reference() -> str:
    lines = [
        "# Configuration reference",
        "",
        "The configuration is one TOML file (`~/.config/apex-director/config.toml`, or",
        "`--config FILE`). Every key has a default; a file only needs the keys it changes.",
        "Invalid values are reported all at once, each with its dotted key.",
        f"This page is generated from the schema (version {SCHEMA_VERSION}) by",
        "`python -m engine.config.reference > docs/configuration.md`.",
        "",
        "| key | type | default | allowed | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, field in SCHEMA.items():
        types = field.type if isinstance(field.type, tuple) else (field.type,)
        type_name = " or ".join(t.__name__ for t in types)
        lines.append(
            f"| `{key}` | {type_name} | `{field.default!r}` | {_allowed(field)} | {field.help} |"
        )
    lines += [
        "",
        "Example:",
        "",
        "```toml",
        "[render]",
        'preset = "high"',
        "crossfade_seconds = 0.75",
        "",
        "[style]",
        'prompt = "rainy neon city, cinematic"',
        'palette = "#0b1d3a,#ff2e88,#00e5ff"',
        "```",
        "",
        "`audio.beat_sensitivity` (0 to 1): higher values accept weaker onsets as music",
        "and let beats follow local timing more closely; lower values favour a steady",
        "tempo and call quiet, beatless audio 'no beat'.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render_reference())
