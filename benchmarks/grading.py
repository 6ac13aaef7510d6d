"""Per-stage grading cost on a 1920x1080 procedural still (median of repeats)."""

import os
import statistics
import time

import numpy as np

from engine.generation.palette import palette_from_prompt
from engine.generation.procedural import ProceduralBackend
from engine.generation.types import StillRequest
from engine.grading.grader import _CUBES, ColorGrader, shipped_looks
from engine.grading.lut import apply_lut, load_cube

prompt = "sunset over desert dunes"
frame = ProceduralBackend().generate(
    StillRequest(
        prompt=prompt,
        seed=1,
        width=1920,
        height=1080,
        palette=palette_from_prompt(prompt),
        energy=0.7,
    )
)


def med(fn, n=15):
    fn()
    ts = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - s)
    return statistics.median(ts) * 1000


def grader(*stages):
    g = ColorGrader()
    for st, c in stages:
        g.apply_stage(st, c)
    return g


def case(name, *stages, n=15):
    _CUBES.clear()
    g = grader(*stages)
    s = time.perf_counter()
    g.prepare()
    prep = time.perf_counter() - s
    ms = med(lambda: g.grade(frame, frame_index=3), n)
    print(f"| {name} | {prep * 1000:.0f} | {ms:.1f} |")


P1 = (1, {"exposure": 0.3, "contrast": 58, "brightness": 52, "temperature": 10, "lift": 0.02})
P1S = (1, {"exposure": 0.3, "contrast": 58, "brightness": 52, "saturation": 45, "temperature": 10})
S2 = (
    2,
    {
        "hue_center": 320,
        "hue_width": 40,
        "hue_shift": 12,
        "saturation_gain": 0.85,
        "hue_vs_sat": [[30, 1.1], [220, 1.1], [300, 0.9]],
    },
)
L3 = (3, {"lut": "teal-orange", "strength": 0.8})
L3T = (3, {"lut": "teal-orange", "strength": 0.8, "interpolation": "tetrahedral"})
F4 = (4, {"halation": {}, "bloom": {}, "vignette": {}, "grain": {"seed": 1}, "letterbox": {}})
print(f"load average before: {os.getloadavg()[0]:.2f}")
print("| grade (1920x1080, uint8 RGB) | compile once, ms | per frame, ms |")
print("| --- | ---: | ---: |")
case("nothing set (identity fast path)")
case("1 primary: exposure, contrast, brightness, temperature, lift", P1)
case("1 primary with saturation", P1S)
case("2 secondary (qualifier + hue-vs-sat)", S2)
case("3 look 33^3 trilinear", L3)
case("3 look 33^3 tetrahedral", L3T)
case("1 + 3 (curves, then look)", P1, L3)
case("1 + 2 + 3 (one composite cube)", P1S, S2, L3)
for eff in ("halation", "bloom", "vignette", "grain", "letterbox"):
    case(f"4 finishing: {eff} only", (4, {eff: {}}))
case("4 finishing: all five", F4)
case("all four stages", P1S, S2, L3, F4)
lut = load_cube(shipped_looks()["teal-orange"])
f = frame.astype(np.float32) / 255
for interp in ("trilinear", "tetrahedral"):
    ms = med(lambda interp=interp: apply_lut(f, lut, interpolation=interp), 3)
    print(f"float reference apply_lut 33^3 {interp}: {ms:.0f} ms/frame")
g = grader(P1S, S2, L3, F4)
ms = med(lambda: g.grade_float(frame), 3)
print(f"exact float path grade_float, all four stages: {ms:.0f} ms/frame")
print(f"load average after: {os.getloadavg()[0]:.2f}")
