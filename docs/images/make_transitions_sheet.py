"""Contact sheet of every transition (progress 0.25 / 0.5 / 0.75) and the motion effects.

Run from the repository root; writes docs/images/transitions.png.
"""

import functools
import operator
from pathlib import Path

import cv2
import numpy as np

from engine.assembly.motion import MotionSpec, pulse_envelope, render_motion, shake_offset
from engine.assembly.transitions import TRANSITIONS, TransitionSpec, blend_transition
from engine.generation.palette import palette_from_prompt
from engine.generation.procedural import ProceduralBackend
from engine.generation.types import StillRequest

W, H = 480, 270
PAD, LABEL_H = 8, 30
ROOT = Path.cwd()  # run from the repository root


def still(prompt: str, seed: int, scale: float = 1.0) -> np.ndarray:
    w, h = round(W * scale), round(H * scale)
    req = StillRequest(
        prompt=prompt, seed=seed, width=w, height=h, palette=palette_from_prompt(prompt), energy=0.7
    )
    # A light blur takes out the film grain, which is most of the PNG's size and
    # says nothing about the transitions.
    return cv2.GaussianBlur(ProceduralBackend().generate(req), (0, 0), 0.8)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((LABEL_H, tile.shape[1], 3), 24, np.uint8)
    cv2.putText(bar, text, (8, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([bar, tile])


def row(tiles: list[np.ndarray]) -> np.ndarray:
    gap = np.full((tiles[0].shape[0], PAD, 3), 12, np.uint8)
    out = [gap]
    for t in tiles:
        out += [t, gap]
    return np.hstack(out)


def main() -> None:
    a = still("neon city at night, rain, reflections", 11)
    b = still("sunset over desert dunes, warm haze", 4)
    legend = np.full_like(a, 12)
    for i, text in enumerate(
        (
            "Each row: progress 0.25, 0.5, 0.75",
            "through the transition window.",
            "0.5 is the cut point (on the beat).",
            "",
            "Bottom row: motion effects.",
        )
    ):
        cv2.putText(
            legend,
            text,
            (14, 60 + 30 * i),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (220, 220, 220),
            1,
            cv2.LINE_AA,
        )
    rows = [row([label(a, "outgoing"), label(b, "incoming"), label(legend, "")])]
    specs = {
        "cut": TransitionSpec(kind="cut"),
        "crossfade": TransitionSpec(kind="crossfade", duration_beats=2),
        "whip_pan": TransitionSpec(kind="whip_pan", duration_beats=1, direction="right"),
        "dip_to_black": TransitionSpec(kind="dip_to_black", duration_beats=2),
        "dip_to_white": TransitionSpec(kind="dip_to_white", duration_beats=2),
    }
    for kind in TRANSITIONS:
        spec = specs[kind]
        name = f"{kind} right" if kind == "whip_pan" else kind
        rows.append(
            row(
                [
                    label(blend_transition(a, b, p, spec), f"{name}  p={p:.2f}")
                    for p in (0.25, 0.5, 0.75)
                ]
            )
        )
    up = TransitionSpec(kind="whip_pan", duration_beats=1, direction="up")
    rows.append(
        row(
            [
                label(blend_transition(a, b, p, up), f"whip_pan up  p={p:.2f}")
                for p in (0.25, 0.5, 0.75)
            ]
        )
    )

    # Motion effects.
    big = still("deep space nebula, stars, distant planet", 7, scale=1.1)
    beats = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    shake = MotionSpec(kind="static", shake=24.0, shake_frequency=2.0, seed=2)
    pulse = MotionSpec(kind="static", pulse=0.12, pulse_decay=0.15)
    kb = MotionSpec(kind="ken_burns", amount=0.35, seed=5)
    kw = dict(shot_start=0.0, shot_end=4.0, beat_times=beats, out_size=(W, H))

    # shake: the frame, with the camera's path over 2 s drawn 8x around the centre
    shake_tile = render_motion(big, shake, time=1.0, **kw).copy()
    path = np.array([shake_offset(shake, t, height=H) for t in np.arange(0, 2, 1 / 30)])
    points = np.round((np.array([W / 2, H / 2]) + 8.0 * path) * 16).astype(np.int32)
    cv2.polylines(shake_tile, [points], False, (255, 220, 60), 2, cv2.LINE_AA, shift=4)
    for x, y in points[::3]:  # a dot every 0.1 s
        cv2.circle(shake_tile, (int(x), int(y)), 40, (255, 255, 255), -1, cv2.LINE_AA, shift=4)

    # pulse: rest (left half) | on the beat (right half), and the zoom over 2 s
    rest = render_motion(big, pulse, time=0.95, **kw)
    kick = render_motion(big, pulse, time=1.0, **kw)
    pulse_tile = np.hstack([rest[:, : W // 2], kick[:, W // 2 :]])
    cv2.line(pulse_tile, (W // 2, 0), (W // 2, H), (255, 255, 255), 1, cv2.LINE_AA)
    times = np.linspace(0.3, 2.3, W)
    zoom = np.array([pulse_envelope(pulse, t, beat_times=beats) for t in times])
    plot_top, plot_h = H - 58, 48
    pulse_tile[plot_top - 4 :, :] = (pulse_tile[plot_top - 4 :, :] * 0.35).astype(np.uint8)
    pts = np.stack([np.arange(W), plot_top + plot_h - zoom * plot_h], axis=1)
    for b in beats:
        x = round((b - times[0]) / (times[-1] - times[0]) * (W - 1))
        if 0 <= x < W:
            cv2.line(pulse_tile, (x, plot_top), (x, plot_top + plot_h), (120, 120, 120), 1)
    cv2.polylines(
        pulse_tile,
        [np.round(pts * 16).astype(np.int32)],
        False,
        (255, 220, 60),
        1,
        cv2.LINE_AA,
        shift=4,
    )

    # ken burns: the start frame with the end window drawn on it
    (x0, y0, w0, _), (x1, y1, w1, _) = kb.rects()
    kb_tile = render_motion(big, kb, time=0.0, **kw).copy()
    sx, sy, sw = (x1 - x0) / w0, (y1 - y0) / w0, w1 / w0
    cv2.rectangle(
        kb_tile,
        (round(sx * W), round(sy * H)),
        (round((sx + sw) * W) - 1, round((sy + sw) * H) - 1),
        (255, 220, 60),
        2,
        cv2.LINE_AA,
    )
    rows.append(
        row(
            [
                label(shake_tile, "shake 24 px, 2 Hz: path over 2 s (x8)"),
                label(pulse_tile, "pulse 0.12: rest | on beat; zoom vs time"),
                label(kb_tile, "ken_burns: start frame, end window"),
            ]
        )
    )
    sheet = np.vstack(
        [
            np.full((PAD, rows[0].shape[1], 3), 12, np.uint8),
            *functools.reduce(
                operator.iadd, ([r, np.full((PAD, r.shape[1], 3), 12, np.uint8)] for r in rows), []
            ),
        ]
    )
    out = ROOT / "docs" / "images" / "transitions.png"
    # 6 bits per channel (centred) keeps the file small; the eye cannot tell here.
    sheet = (sheet & 0xFC) | 0x02
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(out, sheet.shape, out.stat().st_size)


main()
