"""Types shared by the image backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine.errors import ParameterError

__all__ = ["ImageBackend", "StillRequest"]

RGB = tuple[int, int, int]


@dataclass(frozen=True, kw_only=True)
class StillRequest:
    """What one backend call must paint.

    Attributes
    ----------
    prompt : str
        The shot's text prompt.
    seed : int
        Determines the result together with the other fields.
    width, height : int
        Output size in pixels.
    palette : tuple of RGB
        Colours to draw with (may be empty: the backend picks from the prompt).
    energy : float
        0..1, the loudness/intensity of the music under this shot.
    section : str
        Section label (``"intro"``, ``"verse"``, ``"chorus"``...).
    shot_index : int
        Position of the shot in the video.
    """

    prompt: str
    seed: int
    width: int
    height: int
    palette: tuple[RGB, ...] = field(default_factory=tuple)
    energy: float = 0.5
    section: str = ""
    shot_index: int = 0

    def __post_init__(self) -> None:
        if not (16 <= self.width <= 8192):
            raise ParameterError("width", self.width, "16..8192 pixels")
        if not (16 <= self.height <= 8192):
            raise ParameterError("height", self.height, "16..8192 pixels")
        if not (0.0 <= self.energy <= 1.0):
            raise ParameterError("energy", self.energy, "0.0..1.0")
        for colour in self.palette:
            if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
                raise ParameterError("palette", colour, "RGB triples of 0..255")


class ImageBackend(Protocol):
    """One way of making a still for a shot."""

    name: str
    is_draft: bool

    def generate(self, request: StillRequest) -> np.ndarray:
        """Return an ``(height, width, 3)`` uint8 RGB image."""
        ...
