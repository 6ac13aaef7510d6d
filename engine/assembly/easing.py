"""Named easing curves: how a move or a fade speeds up and slows down.

Every curve maps progress ``t`` in 0..1 to 0..1 with ``ease(name, 0) == 0`` and
``ease(name, 1) == 1``, and never goes backwards.  Progress outside 0..1 is clamped.

=================  ==========================================================
name               shape
=================  ==========================================================
``linear``         constant speed
``ease_in``        starts at rest, accelerates (cubic)
``ease_out``       starts fast, comes to rest (cubic)
``ease_in_out``    at rest at both ends, fastest in the middle (cubic)
``smoothstep``     gentler version of ``ease_in_out`` (``3t² - 2t³``)
``sine``           raised cosine, ``(1 - cos πt) / 2``: the crossfade curve
=================  ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

from engine.errors import ParameterError

__all__ = ["EASINGS", "check_easing", "ease", "ease_speed"]


def _ease_in_out(t: float) -> float:
    if t < 0.5:
        return 4.0 * t * t * t
    u = 2.0 - 2.0 * t
    return 1.0 - 0.5 * u * u * u


_CURVES: dict[str, Callable[[float], float]] = {
    "linear": lambda t: t,
    "ease_in": lambda t: t * t * t,
    "ease_out": lambda t: 1.0 - (1.0 - t) ** 3,
    "ease_in_out": _ease_in_out,
    "smoothstep": lambda t: t * t * (3.0 - 2.0 * t),
    "sine": lambda t: 0.5 - 0.5 * math.cos(math.pi * t),
}

EASINGS: tuple[str, ...] = tuple(_CURVES)


def check_easing(name: str, *, parameter: str = "easing") -> None:
    """Raise :class:`~engine.errors.ParameterError` unless ``name`` is a known easing."""
    if name not in _CURVES:
        raise ParameterError(parameter, name, f"one of {', '.join(EASINGS)}")


def ease(name: str, t: float) -> float:
    """Eased progress of curve ``name`` at progress ``t`` (clamped to 0..1).

    Raises
    ------
    ParameterError
        If ``name`` is not one of :data:`EASINGS`.

    Examples
    --------
    >>> ease("ease_in_out", 0.5)
    0.5
    >>> round(ease("ease_in", 0.5), 3)
    0.125
    """
    check_easing(name)
    return _CURVES[name](min(1.0, max(0.0, float(t))))


def ease_speed(name: str, t: float) -> float:
    """Speed of curve ``name`` at ``t`` relative to its top speed (0..1).

    Used where something should follow how fast a move goes, such as the length
    of a whip pan's motion blur.  Central differences, so it needs no derivative
    table per curve.
    """
    check_easing(name)
    return _speed(name, min(1.0, max(0.0, float(t)))) / _PEAK_SPEED[name]


def _speed(name: str, t: float) -> float:
    h = 1e-4
    lo, hi = max(0.0, t - h), min(1.0, t + h)
    curve = _CURVES[name]
    return (curve(hi) - curve(lo)) / (hi - lo)


_PEAK_SPEED = {name: max(_speed(name, i / 512) for i in range(513)) for name in _CURVES}
