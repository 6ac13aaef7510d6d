"""Camera motion on a still: slow zoom in/out and pans (the "Ken Burns" move)."""

from __future__ import annotations

import numpy as np

from engine.errors import ParameterError

__all__ = ["MOTIONS", "apply_motion", "motion_matrix"]

MOTIONS = ("zoom_in", "zoom_out", "pan_left", "pan_right", "static")


def motion_matrix(
    motion: str, progress: float, *, width: int, height: int, amount: float
) -> np.ndarray:
    """The 2x3 affine matrix that maps still pixels to frame pixels at ``progress`` (0..1).

    The scale never drops below 1 and a pan never travels past the margin the
    zoom creates, so no border is ever shown.
    """
    if motion not in MOTIONS:
        raise ParameterError("motion", motion, f"one of {', '.join(MOTIONS)}")
    p = min(1.0, max(0.0, progress))
    if motion == "zoom_in":
        scale, shift = 1.0 + amount * p, 0.0
    elif motion == "zoom_out":
        scale, shift = 1.0 + amount * (1.0 - p), 0.0
    elif motion == "static":
        scale, shift = 1.0, 0.0
    else:
        scale = 1.0 + amount
        margin = (scale - 1.0) * width / 2.0
        # pan_right: the camera travels right, so the picture slides left.
        shift = margin * (1.0 - 2.0 * p) if motion == "pan_right" else margin * (2.0 * p - 1.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    return np.array(
        [[scale, 0.0, cx - scale * cx + shift], [0.0, scale, cy - scale * cy]], dtype=np.float64
    )


def apply_motion(still: np.ndarray, motion: str, progress: float, *, amount: float) -> np.ndarray:
    """Render one frame of ``motion`` over ``still`` (``(h, w, 3)`` uint8, frame-sized)."""
    import cv2

    height, width = still.shape[:2]
    if motion == "static" or amount == 0.0:
        return still
    matrix = motion_matrix(motion, progress, width=width, height=height, amount=amount)
    return cv2.warpAffine(
        still, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
    )
