"""Generate APEX Director's own looks as 33x33x33 ``.cube`` files, and the grading contact sheet.

Every look is a few lines of colour math below (no third-party LUT is copied or
sampled), evaluated on the 33^3 grid of sRGB display values.  Regenerate with::

    .venv/bin/python resources/looks/make_looks.py

and the contact sheet of ``docs/grading.md`` with::

    .venv/bin/python resources/looks/make_looks.py --contact-sheet docs/images/grading_stages.png

The output is deterministic: the same script writes byte-identical files.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.grading.lut import Lut, identity_lut, write_cube  # noqa: E402
from engine.grading.primary import LUMA_709, linear_to_srgb, srgb_to_linear  # noqa: E402

log = logging.getLogger("make_looks")

HERE = Path(__file__).resolve().parent
SIZE = 33
TILE_W, TILE_H = 448, 252


def _luma(x: np.ndarray) -> np.ndarray:
    return (x @ LUMA_709)[..., None]


def _smoothstep(a: float, b: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _s_curve(x: np.ndarray, amount: float, pivot: float = 0.45) -> np.ndarray:
    """Contrast that keeps 0, ``pivot`` and 1 fixed: slope ``1 + amount`` at the pivot,
    a toe below it and a shoulder above it (two matched power curves)."""
    k = 1.0 + amount
    x = np.clip(x, 0.0, 1.0)
    low = pivot * (x / pivot) ** k
    high = 1.0 - (1.0 - pivot) * ((1.0 - x) / (1.0 - pivot)) ** k
    return np.where(x < pivot, low, high)


def _saturate(x: np.ndarray, factor: np.ndarray | float) -> np.ndarray:
    y = _luma(x)
    return y + (x - y) * factor


def _keep_luma(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return x + (_luma(reference) - _luma(x))


def teal_orange(x: np.ndarray) -> np.ndarray:
    """Warm hues toward orange, cool hues toward teal; skin stays skin, contrast a touch up."""
    y = _luma(x)
    orange = np.array([1.0, 0.55, 0.2], dtype=np.float32)
    axis = orange - float(orange @ LUMA_709)
    axis /= np.linalg.norm(axis)
    chroma = x - y
    along = (chroma @ axis)[..., None] * axis
    across = chroma - along
    # Stretch chroma along the orange-teal axis, shrink it across (green-magenta).
    chroma = along * 1.08 + across * 0.78
    # Split tone: shadows lean teal, highlights lean warm, by luma weight.
    teal = np.array([-0.6, 0.15, 0.3], dtype=np.float32)
    warm = np.array([0.5, 0.12, -0.45], dtype=np.float32)
    shadow_w = (1.0 - y) ** 2 * 0.05
    high_w = y**2 * 0.035
    out = y + chroma + shadow_w * teal + high_w * warm
    out = _keep_luma(out, x)
    return _s_curve(np.clip(out, 0.0, 1.0), 0.18)


def bleach_bypass(x: np.ndarray) -> np.ndarray:
    """Silver retained: half the colour, more contrast, bright parts a little harsher."""
    y = _luma(x)
    desat = _saturate(x, 0.5)
    overlay = np.where(y < 0.5, 2.0 * desat * y, 1.0 - 2.0 * (1.0 - desat) * (1.0 - y))
    out = desat + (overlay - desat) * 0.55
    # Keep a floor and a ceiling so the blacks and whites do not clip hard.
    return 0.015 + out * 0.975


def warm_film(x: np.ndarray) -> np.ndarray:
    """Warm print film: warm balance, faded blacks, soft shoulder, cyan-green shadows."""
    linear = srgb_to_linear(x) * np.array([1.07, 1.0, 0.88], dtype=np.float32)
    out = linear_to_srgb(linear)
    out = _s_curve(np.clip(out, 0.0, 1.0), 0.3)
    y = _luma(out)
    # Film shoulder: highlights roll off and lose a little colour.
    out = _saturate(out, 1.0 - 0.35 * _smoothstep(0.7, 1.0, y))
    shoulder = 1.0 - 0.08 * _smoothstep(0.75, 1.0, out) * out
    out = out * shoulder
    # Faded print blacks with a hint of cyan-green.
    lift = np.array([0.035, 0.045, 0.05], dtype=np.float32)
    out = lift + out * (1.0 - lift)
    return _saturate(out, 0.95)


def cool_night(x: np.ndarray) -> np.ndarray:
    """Moonlit: a stop and a bit darker, cool balance, less colour, blue-black shadows."""
    linear = srgb_to_linear(x) * (2.0**-0.7) * np.array([0.86, 0.98, 1.16], dtype=np.float32)
    out = linear_to_srgb(linear)
    out = _saturate(np.clip(out, 0.0, 1.0), 0.62)
    y = _luma(out)
    shadows = (1.0 - y) ** 3
    out = out + shadows * np.array([-0.005, 0.012, 0.04], dtype=np.float32)
    out = _s_curve(np.clip(out, 0.0, 1.0), 0.2, pivot=0.35)
    return out


LOOKS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "teal-orange": (
        teal_orange,
        "warm hues pulled toward orange and cool hues toward teal, teal shadows, a little "
        "more contrast: the blockbuster look, kept mild",
    ),
    "bleach-bypass": (
        bleach_bypass,
        "half the colour, higher contrast with an overlay of the luma: gritty, metallic",
    ),
    "warm-film": (
        warm_film,
        "warm balance, faded cyan-green blacks, soft highlight shoulder: a print-film feel",
    ),
    "cool-night": (
        cool_night,
        "about 0.7 stop darker, cool balance, less colour, blue-black shadows: night scenes",
    ),
}


def make_look(name: str) -> Lut:
    """Evaluate look ``name`` on the 33^3 grid."""
    fn, description = LOOKS[name]
    grid = identity_lut(SIZE).table.reshape(-1, 3).astype(np.float32)
    values = np.clip(fn(grid), 0.0, 1.0).astype(np.float32).reshape(SIZE, SIZE, SIZE, 3)
    return Lut(
        title=f"APEX {name}",
        kind="3D",
        size=SIZE,
        domain_min=(0.0, 0.0, 0.0),
        domain_max=(1.0, 1.0, 1.0),
        table=values,
        comments=(
            f"APEX Director look '{name}': {description}.",
            "Generated by resources/looks/make_looks.py from the project's own colour math.",
            "Input and output: sRGB-encoded display values, 0..1.",
        ),
    )


def write_looks(folder: Path = HERE) -> list[Path]:
    """Write every look to ``folder``; returns the paths."""
    paths = []
    for name in LOOKS:
        path = folder / f"{name}.cube"
        write_cube(path, make_look(name), decimals=5)
        paths.append(path)
        log.info("wrote %s", path)
    return paths


# --------------------------------------------------------------------------- contact sheet

DEMO_STAGES: list[tuple[int, dict[str, object]]] = [
    (
        1,
        {
            "exposure": 0.1,
            "contrast": 56,
            "saturation": 42,
            "temperature": 8,
            "lift": [0.0, 0.005, 0.02],
        },
    ),
    (
        2,
        {
            "hue_center": 320,
            "hue_width": 40,
            "hue_softness": 30,
            "sat_low": 0.15,
            "hue_shift": 14,
            "saturation_gain": 0.85,
            "hue_vs_sat": [[30, 1.08], [120, 1.0], [220, 1.1], [300, 0.9]],
        },
    ),
    (3, {"lut": "warm-film", "strength": 0.7}),
    (
        4,
        {
            "halation": {"amount": 0.25},
            "vignette": {"amount": 0.3},
            "grain": {"amount": 0.2, "seed": 1},
            "letterbox": {"aspect": 2.39},
        },
    ),
]


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = tile.copy()
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    (w, h), base = cv2.getTextSize(text, font, scale, thick)
    cv2.rectangle(out, (6, 6), (6 + w + 10, 6 + h + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (11, 10 + h), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def contact_sheet(path: Path) -> Path:
    """Render the still ungraded, after each stage of a demo grade, and with each look."""
    import cv2

    from engine.atomic_files import atomic_path
    from engine.generation.palette import palette_from_prompt
    from engine.generation.procedural import ProceduralBackend
    from engine.generation.types import StillRequest
    from engine.grading.grader import ColorGrader

    prompt = "sunset over desert dunes"
    still = ProceduralBackend().generate(
        StillRequest(
            prompt=prompt,
            seed=1,
            width=640,
            height=360,
            palette=palette_from_prompt(prompt),
            energy=0.7,
        )
    )

    def tile(image: np.ndarray, text: str) -> np.ndarray:
        # Shown at 2/3 size: keeps the PNG small; grain is judged at full size in the docs.
        small = cv2.resize(image, (TILE_W, TILE_H), interpolation=cv2.INTER_AREA)
        return _label(small, text)

    tiles = [tile(still, "ungraded")]
    names = {1: "1 primary", 2: "2 + secondary", 3: "3 + look warm-film 70%", 4: "4 + finishing"}
    grader = ColorGrader()
    for stage, corrections in DEMO_STAGES:
        grader.apply_stage(stage, corrections)
        tiles.append(tile(grader.grade(still, frame_index=0), names[stage]))
    for name in LOOKS:
        look = ColorGrader()
        look.apply_lut(name)
        tiles.append(tile(look.grade(still), f"look: {name}"))
    while len(tiles) % 3:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + 3]) for i in range(0, len(tiles), 3)]
    sheet = np.vstack(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        ok = cv2.imwrite(str(tmp), sheet[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise OSError(f"OpenCV could not write {path}")
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the .cube files")
    parser.add_argument(
        "--contact-sheet", type=Path, help="render the grading contact sheet PNG here instead"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.contact_sheet:
        contact_sheet(args.contact_sheet)
    else:
        write_looks(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
