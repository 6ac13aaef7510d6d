"""Colour grading: four stages (primary, secondary, look, finishing) for 8-bit RGB frames.

Start with :class:`engine.grading.grader.ColorGrader`; the stages live in
:mod:`~engine.grading.primary`, :mod:`~engine.grading.secondary`,
:mod:`~engine.grading.lut` and :mod:`~engine.grading.finishing`.  ``docs/grading.md``
is the user's guide.  Importing this package loads numpy only (OpenCV is imported when
a frame is graded).
"""

from __future__ import annotations

from engine.grading.finishing import FinishingSettings
from engine.grading.grader import ColorGrader, LookSettings, shipped_looks
from engine.grading.lut import Lut, LutParseError, apply_lut, load_cube
from engine.grading.primary import PrimaryCorrection
from engine.grading.secondary import SecondaryCorrection

__all__ = [
    "ColorGrader",
    "FinishingSettings",
    "LookSettings",
    "Lut",
    "LutParseError",
    "PrimaryCorrection",
    "SecondaryCorrection",
    "apply_lut",
    "load_cube",
    "shipped_looks",
]
