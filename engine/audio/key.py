"""Musical key from a chroma profile (Krumhansl–Kessler key profiles).

The profile is :func:`engine.audio.features.pitch_class_profile`: the song's mean chroma
on a semitone grid tuned to the song.
"""

from __future__ import annotations

import numpy as np

__all__ = ["estimate_key"]

_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(y: np.ndarray, sr: int) -> tuple[str, float]:
    """Return ``("A minor", confidence)``; ``("unknown", 0.0)`` for silence.

    Confidence is the margin between the best and the second-best key
    correlation, scaled to 0..1.
    """
    from engine.audio.features import pitch_class_profile

    # max and -min rather than max(abs(y)): no song-sized temporary.
    if y.size == 0 or max(float(np.max(y)), -float(np.min(y))) < 1e-4:
        return "unknown", 0.0
    # A mean chroma from a tuned semitone grid, computed block by block (numpy only: no
    # CQT, no numba compile, memory independent of the song's length).
    profile = pitch_class_profile(np.asarray(y, dtype=np.float32), sr)
    if not profile.any():
        return "unknown", 0.0
    if float(profile.std()) < 1e-6:
        return "unknown", 0.0
    scores = []
    for tonic in range(12):
        for mode, template in (("major", _MAJOR), ("minor", _MINOR)):
            corr = float(np.corrcoef(profile, np.roll(template, tonic))[0, 1])
            scores.append((corr, f"{_NAMES[tonic]} {mode}"))
    scores.sort(reverse=True)
    best, second = scores[0][0], scores[1][0]
    confidence = float(np.clip((best - second) * 5.0 + max(best, 0.0) * 0.5, 0.0, 1.0))
    return scores[0][1], confidence
