"""The one configuration schema: every key, its type, default and allowed values.

Keys are dotted paths (``render.preset``).  The schema is flat on purpose: it is
easy to read, to document (``docs/configuration.md`` is written from it) and to
validate with messages that name the exact key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = [
    "FRAME_RATES",
    "MEMORY_STRATEGIES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Field",
    "default_config",
    "flatten",
    "frame_rate",
    "unflatten",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Field:
    """One configuration key."""

    type: type | tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None

    def validate(self, key: str, value: Any) -> str | None:
        """Return an error message naming ``key``, or ``None`` when ``value`` is fine."""
        expected = self.type if isinstance(self.type, tuple) else (self.type,)
        # bool is an int in Python; a config that says `fps = true` is a mistake.
        if isinstance(value, bool) and bool not in expected:
            return f"{key}: expected {_type_names(expected)}, got a boolean ({value!r})"
        int_for_float = float in expected and isinstance(value, int)  # TOML `fps = 30`
        if not isinstance(value, expected) and not int_for_float:
            got = type(value).__name__
            return f"{key}: expected {_type_names(expected)}, got {got} ({value!r})"
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            return f"{key}: {value!r} is not one of {allowed}"
        if self.minimum is not None and value < self.minimum:
            return f"{key}: {value!r} is below the minimum {self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return f"{key}: {value!r} is above the maximum {self.maximum}"
        if self.check is not None:
            problem = self.check(value)
            if problem:
                return f"{key}: {problem}"
        return None


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def _even(value: Any) -> str | None:
    return None if value % 2 == 0 else f"{value} must be even (H.264 with 4:2:0 chroma)"


def parse_section_looks(value: str) -> dict[str, str]:
    """``"chorus=teal-orange, intro=cool-night"`` → ``{"chorus": "teal-orange", ...}``."""
    looks: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        label, sep, look = (x.strip() for x in item.partition("="))
        if not sep or not label or not look:
            raise ValueError(f"{item!r} is not 'section=look'")
        looks[label] = look
    return looks


def _finite(value: Any) -> str | None:
    return None if math.isfinite(value) else f"{value!r} is not a finite number"


def _section_looks(value: Any) -> str | None:
    try:
        parse_section_looks(value)
    except ValueError as err:
        return str(err)
    return None


def _backend_order(value: Any) -> str | None:
    known = {"diffusers", "procedural", "stills"}
    bad = [v for v in value if v not in known]
    if bad:
        return f"unknown backend(s) {bad}; known: {sorted(known)}"
    return None


def _qa_standards(value: Any) -> str | None:
    known = {"ebu_r128", "atsc_a85", "ebu_r103", "web"}
    bad = [v for v in value if v not in known]
    if bad:
        return f"unknown standard(s) {bad}; known: {sorted(known)}"
    return None


# The diffusers memory levels (engine.generation.memory_strategy.MEMORY_LEVELS, fastest
# first; a test keeps the two in step) and "auto".
MEMORY_STRATEGIES = (
    "auto",
    "none",
    "attention_slicing",
    "vae_tiling",
    "model_cpu_offload",
    "sequential_cpu_offload",
)


# Frame rates as written in the configuration; NTSC rates are exact fractions.
FRAME_RATES = {
    23.976: Fraction(24000, 1001),
    24.0: Fraction(24),
    25.0: Fraction(25),
    29.97: Fraction(30000, 1001),
    30.0: Fraction(30),
    50.0: Fraction(50),
    59.94: Fraction(60000, 1001),
    60.0: Fraction(60),
}


def frame_rate(value: float) -> Fraction:
    """The exact rate for a configured ``fps`` (29.97 → 30000/1001)."""
    return FRAME_RATES[float(value)]


def _preset(
    name: str,
    *,
    width: int,
    height: int,
    fps: float,
    crf: int,
    speed: str,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    gop_seconds: float = 2.0,
    loudness: float = 0.0,
) -> dict[str, Field]:
    p = f"presets.{name}"
    return {
        f"{p}.width": Field(
            type=int,
            default=width,
            minimum=64,
            maximum=7680,
            check=_even,
            help="Frame width in pixels (landscape; --aspect rotates it).",
        ),
        f"{p}.height": Field(
            type=int,
            default=height,
            minimum=64,
            maximum=4320,
            check=_even,
            help="Frame height in pixels.",
        ),
        f"{p}.fps": Field(
            type=float,
            default=fps,
            choices=tuple(FRAME_RATES),
            help="Constant frame rate; 23.976, 29.97 and 59.94 are exact NTSC rates.",
        ),
        f"{p}.crf": Field(
            type=int,
            default=crf,
            minimum=0,
            maximum=51,
            help="Constant rate factor (lower is better and bigger).",
        ),
        f"{p}.encoder_speed": Field(
            type=str,
            default=speed,
            choices=("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"),
            help="Encoder preset: slower gives smaller files at the same quality.",
        ),
        f"{p}.codec": Field(
            type=str,
            default=codec,
            choices=("libx264", "libx265"),
            help="libx264 (H.264) or libx265 (HEVC).",
        ),
        f"{p}.pix_fmt": Field(
            type=str,
            default=pix_fmt,
            choices=("yuv420p", "yuv420p10le"),
            help="Pixel format: 8-bit, or 10-bit (HEVC only).",
        ),
        f"{p}.gop_seconds": Field(
            type=float,
            default=gop_seconds,
            minimum=0.1,
            maximum=10.0,
            help="Longest interval between keyframes.",
        ),
        f"{p}.audio_bitrate": Field(
            type=int,
            default=192_000,
            minimum=64_000,
            maximum=512_000,
            help="AAC bit rate in bit/s.",
        ),
        f"{p}.loudness_lufs": Field(
            type=float,
            default=loudness,
            minimum=-70.0,
            maximum=0.0,
            help="Normalise the audio to this integrated loudness (EBU R 128: -23); "
            "0 keeps the song's level.",
        ),
    }


SCHEMA: dict[str, Field] = {
    "schema_version": Field(
        type=int,
        default=SCHEMA_VERSION,
        minimum=1,
        help="Version of this file's layout; migrated on load.",
    ),
    "render.preset": Field(
        type=str,
        default="web",
        choices=("draft", "web", "high", "broadcast", "cinema"),
        help="Output preset used when the command line names none.",
    ),
    "render.backend_order": Field(
        type=list,
        default=["procedural"],
        check=_backend_order,
        help="Image backends to try, in order, when the command line names none.",
    ),
    "render.model": Field(
        type=str,
        default="",
        help="Stable Diffusion checkpoint for the diffusers backend: a .safetensors file, a "
        "diffusers folder, or a name under paths.models_dir (--model overrides it).",
    ),
    "render.device": Field(
        type=str,
        default="auto",
        choices=("auto", "cuda", "mps", "cpu"),
        help="Where the diffusers backend runs: auto tries CUDA, then MPS, then the CPU.",
    ),
    "render.crossfade_seconds": Field(
        type=float,
        default=0.5,
        minimum=0.0,
        maximum=4.0,
        help="Length of the crossfade at section changes.",
    ),
    "render.motion_amount": Field(
        type=float,
        default=0.08,
        minimum=0.0,
        maximum=0.5,
        help="How far the slow zoom/pan travels over a shot (0..0.5 of the frame).",
    ),
    "render.section_transition": Field(
        type=str,
        default="crossfade",
        choices=("cut", "crossfade", "whip_pan", "dip_to_black", "dip_to_white"),
        help="Transition at section changes (its length is render.crossfade_seconds).",
    ),
    "render.beat_pulse": Field(
        type=float,
        default=0.012,
        minimum=0.0,
        maximum=0.2,
        help="Zoom kick on every beat (0 = none; 0.012 = a 1.2 % push that decays in 0.15 s).",
    ),
    "grade.look": Field(
        type=str,
        default="",
        help="A shipped look (teal-orange, bleach-bypass, warm-film, cool-night) or a .cube "
        "file; empty for none.",
    ),
    "grade.section_looks": Field(
        type=str,
        default="",
        check=_section_looks,
        help="Looks per section, over the global grade: 'chorus=teal-orange, intro=cool-night'.",
    ),
    "grade.look_strength": Field(
        type=float, default=0.8, minimum=0.0, maximum=1.0, help="How much of the look to apply."
    ),
    "grade.exposure": Field(
        type=float, default=0.0, minimum=-2.0, maximum=2.0, help="Exposure in stops."
    ),
    "grade.contrast": Field(
        type=float, default=50.0, minimum=0.0, maximum=100.0, help="Contrast, 50 = neutral."
    ),
    "grade.saturation": Field(
        type=float, default=50.0, minimum=0.0, maximum=100.0, help="Saturation, 50 = neutral."
    ),
    "grade.vignette": Field(
        type=float, default=0.0, minimum=0.0, maximum=1.0, help="Vignette amount (0 = none)."
    ),
    "grade.grain": Field(
        type=float,
        default=0.0,
        minimum=0.0,
        maximum=1.0,
        help="Film grain amount (0 = none); it changes every frame.",
    ),
    "planning.phrase_bars": Field(
        type=int,
        default=4,
        minimum=1,
        maximum=16,
        help="Bars per musical phrase: one shot per phrase.",
    ),
    "planning.pacing": Field(
        type=str,
        default="energy",
        choices=("even", "energy"),
        help="energy: shorter shots in loud sections, longer in quiet ones; even: every "
        "shot planning.phrase_bars long.",
    ),
    "planning.cut_on": Field(
        type=str,
        default="downbeat",
        choices=("downbeat", "beat"),
        help="downbeat: cut on the first beat of a bar only; beat: cuts may fall on any "
        "beat (with energy pacing a loud chorus cuts every 2 beats, within "
        "planning.min_shot_seconds).",
    ),
    "planning.min_shot_seconds": Field(
        type=float,
        default=1.5,
        minimum=0.25,
        maximum=30.0,
        help="Shorter phrases are merged with their neighbour.",
    ),
    "planning.max_shot_seconds": Field(
        type=float,
        default=12.0,
        minimum=1.0,
        maximum=120.0,
        help="Longer phrases are split on a downbeat.",
    ),
    "audio.max_duration_minutes": Field(
        type=float, default=20.0, minimum=0.1, maximum=240.0, help="Longest song accepted."
    ),
    "audio.analysis_sample_rate": Field(
        type=int,
        default=22050,
        choices=(16000, 22050, 44100),
        help="Sample rate the analyser works at.",
    ),
    "audio.beat_sensitivity": Field(
        type=float,
        default=0.5,
        minimum=0.0,
        maximum=1.0,
        help="Beat detection sensitivity (see docs/configuration.md).",
    ),
    "style.prompt": Field(
        type=str,
        default="",
        help="The subject of every shot (the section's mood is added); empty gives each "
        "section its own scene theme.",
    ),
    "style.palette": Field(
        type=str,
        default="",
        help="Comma-separated hex colours ('#ff8800,#112233'); empty picks from the prompt.",
    ),
    "style.seed": Field(
        type=int,
        default=1234,
        minimum=0,
        maximum=2**31 - 1,
        help="Seed for every stochastic choice of a render.",
    ),
    "paths.models_dir": Field(
        type=str,
        default="models",
        help="Weights folder (may point at a ComfyUI or A1111 models folder).",
    ),
    "paths.cache_max_gb": Field(
        type=float,
        default=0.0,
        minimum=0.0,
        check=_finite,
        help="Size limit of the render cache (stills, segments, analyses) in GB; after each "
        "render the least recently used files are removed until it fits. 0 = no limit.",
    ),
    "generation.memory_strategy": Field(
        type=str,
        default="auto",
        choices=MEMORY_STRATEGIES,
        help="Memory level the diffusers backend starts at (auto = the fastest, 'none'); "
        "on out-of-memory it still steps down to leaner levels. Offload levels need a GPU.",
    ),
    "logging.level": Field(
        type=str,
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="Log level of the engine.",
    ),
    "qa.enabled": Field(
        type=bool,
        default=True,
        help="Run delivery QC on every render and put its report in the render's JSON report "
        "(a failed check marks the render; the file is kept).",
    ),
    "qa.video_analysis": Field(
        type=str,
        default="full",
        choices=("full", "sampled"),
        help="full: video levels counted on every frame; sampled: on 4 frames per second "
        "(flashes, black and frozen frames always use every frame).",
    ),
    "qa.standards": Field(
        type=list,
        default=[],
        check=_qa_standards,
        help="Standards every render is held to (ebu_r128, atsc_a85, ebu_r103, web); empty: "
        "ebu_r128 and ebu_r103 for the broadcast preset, none beyond the technical checks "
        "for the others.",
    ),
    **_preset("draft", width=640, height=360, fps=24.0, crf=26, speed="veryfast"),
    **_preset("web", width=1920, height=1080, fps=30.0, crf=21, speed="veryfast"),
    **_preset("high", width=1920, height=1080, fps=30.0, crf=16, speed="medium"),
    **_preset(
        "broadcast",
        width=1920,
        height=1080,
        fps=25.0,
        crf=16,
        speed="medium",
        gop_seconds=1.0,
        loudness=-23.0,
    ),
    **_preset(
        "cinema",
        width=3840,
        height=2160,
        fps=24.0,
        crf=18,
        speed="medium",
        codec="libx265",
        pix_fmt="yuv420p10le",
    ),
}


def default_config() -> dict[str, Any]:
    """A fresh nested dictionary with every key at its default."""
    return unflatten({key: _copy(field.default) for key, field in SCHEMA.items()})


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` → ``{"a": {"b": 1}}``."""
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested
