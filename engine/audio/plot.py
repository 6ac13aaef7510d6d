"""A picture of an analysis a musician can check at a glance: the waveform, every beat,
the downbeats with bar numbers, and the sections as labelled colour bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.atomic_files import atomic_write_bytes
from engine.audio.types import AudioAnalysis

__all__ = ["plot_analysis", "render_analysis_image"]

_SECTION_COLOURS = {  # BGR, muted so beats stay readable on top
    "intro": (120, 100, 70),
    "verse": (150, 120, 60),
    "pre-chorus": (70, 140, 150),
    "chorus": (60, 90, 170),
    "bridge": (140, 90, 140),
    "breakdown": (110, 130, 90),
    "drop": (50, 60, 180),
    "outro": (100, 90, 90),
}
_DEFAULT_COLOUR = (110, 110, 110)


def render_analysis_image(
    samples: np.ndarray, sample_rate: int, analysis: AudioAnalysis, *, width: int = 1800
) -> np.ndarray:
    """Draw the analysis over the mono ``samples``; returns a BGR uint8 image."""
    import cv2

    height, top, wave_h, axis_h = 420, 56, 300, 40
    image = np.full((height, width, 3), 28, np.uint8)
    duration = max(analysis.duration, 1e-6)

    def x_of(t: float) -> int:
        return round(t / duration * (width - 1))

    # Section bands with their label and confidence.
    for section in analysis.sections:
        x0, x1 = x_of(section.start), x_of(section.end)
        colour = _SECTION_COLOURS.get(section.label, _DEFAULT_COLOUR)
        cv2.rectangle(image, (x0, top), (x1, top + wave_h), colour, thickness=-1)
        cv2.line(image, (x0, top - 6), (x0, top + wave_h), (235, 235, 235), 2)
        text = f"{section.label} {section.confidence:.2f}"
        cv2.putText(
            image,
            text,
            (x0 + 6, top + 20),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.55,
            (245, 245, 245),
            1,
            cv2.LINE_AA,
        )

    # Waveform as a min/max envelope per pixel column.
    mono = samples if samples.ndim == 1 else samples.mean(axis=0)
    if mono.size:
        columns = np.array_split(mono, width)
        peak = max(float(np.max(np.abs(mono))), 1e-6)
        mid = top + wave_h // 2
        for x, chunk in enumerate(columns):
            if chunk.size == 0:
                continue
            lo = int(mid - float(chunk.max()) / peak * (wave_h / 2 - 30))
            hi = int(mid - float(chunk.min()) / peak * (wave_h / 2 - 30))
            cv2.line(image, (x, lo), (x, hi), (215, 215, 215), 1)

    # Beats: thin ticks; downbeats: full-height lines with the bar number.
    for beat in analysis.beats:
        x = x_of(beat.time)
        if beat.is_downbeat:
            cv2.line(image, (x, top + 26), (x, top + wave_h), (60, 220, 255), 1)
            if beat.bar % 4 == 1:
                cv2.putText(
                    image,
                    str(beat.bar),
                    (x + 2, top + wave_h - 6),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.38,
                    (60, 220, 255),
                    1,
                    cv2.LINE_AA,
                )
        else:
            cv2.line(image, (x, top + wave_h - 18), (x, top + wave_h), (120, 200, 120), 1)

    # Time axis.
    axis_y = top + wave_h + 8
    step = 5 if duration <= 60 else 10 if duration <= 240 else 30
    for t in np.arange(0.0, duration + 1e-9, step):
        x = x_of(float(t))
        cv2.line(image, (x, axis_y), (x, axis_y + 6), (200, 200, 200), 1)
        label = f"{int(t) // 60}:{int(t) % 60:02d}"
        cv2.putText(
            image,
            label,
            (min(x + 2, width - 40), axis_y + axis_h // 2 + 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (200, 200, 200),
            1,
            cv2.LINE_AA,
        )

    title = (
        f"{analysis.tempo:.1f} BPM   {analysis.time_signature}   {analysis.key}"
        f"   {len(analysis.beats)} beats   {len(analysis.downbeats)} bars   "
        f"{len(analysis.sections)} sections   {analysis.duration:.1f} s"
    )
    cv2.putText(
        image, title, (12, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA
    )
    legend = "yellow: downbeats (bar numbers)   green: beats   bands: sections (label confidence)"
    cv2.putText(
        image,
        legend,
        (12, height - 10),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.42,
        (170, 170, 170),
        1,
        cv2.LINE_AA,
    )
    return image


def plot_analysis(
    path: Path, samples: np.ndarray, sample_rate: int, analysis: AudioAnalysis
) -> Path:
    """Write :func:`render_analysis_image` to ``path`` as PNG, atomically."""
    import cv2

    ok, data = cv2.imencode(".png", render_analysis_image(samples, sample_rate, analysis))
    if not ok:  # pragma: no cover - only on invalid arrays
        raise ValueError("could not encode the analysis plot")
    atomic_write_bytes(path, data.tobytes())
    return Path(path)
