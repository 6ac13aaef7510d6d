"""Result types of the audio analysis (immutable, JSON-friendly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AudioAnalysis", "AudioSection", "BeatMarker", "SpectralFeatures"]


def _identity(value: float, _digits: int) -> float:
    return float(value)


@dataclass(frozen=True, slots=True)
class BeatMarker:
    """One beat.

    Attributes
    ----------
    time : float
        Seconds from the start of the audio.
    strength : float
        Onset strength at the beat, normalised to 0..1 over the song.
    is_downbeat : bool
        True on the first beat of a bar.
    bar : int
        1-based bar number (a pickup before the first downbeat is bar 0).
    beat : int
        1-based position in the bar.
    """

    time: float
    strength: float
    is_downbeat: bool
    bar: int
    beat: int

    def to_dict(self, *, precise: bool = False) -> dict[str, Any]:
        r = _identity if precise else round
        return {
            "time": r(self.time, 4),
            "strength": r(self.strength, 4),
            "is_downbeat": self.is_downbeat,
            "bar": self.bar,
            "beat": self.beat,
        }


@dataclass(frozen=True, slots=True)
class AudioSection:
    """A musical section between two downbeats."""

    start: float
    end: float
    label: str
    confidence: float
    energy: float = 0.5

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self, *, precise: bool = False) -> dict[str, Any]:
        r = _identity if precise else round
        return {
            "start": r(self.start, 4),
            "end": r(self.end, 4),
            "label": self.label,
            "confidence": r(self.confidence, 3),
            "energy": r(self.energy, 3),
        }


@dataclass(frozen=True)
class SpectralFeatures:
    """Per-video-frame curves for audio-reactive motion, each normalised to 0..1.

    All arrays have the same length: one value per frame at ``fps``.
    """

    fps: float
    rms: np.ndarray
    onset: np.ndarray
    low: np.ndarray
    mid: np.ndarray
    high: np.ndarray
    centroid: np.ndarray

    def __len__(self) -> int:
        return int(self.rms.shape[0])

    def at(self, time: float, curve: str = "rms") -> float:
        """Value of ``curve`` at ``time`` seconds (clamped to the ends)."""
        values: np.ndarray = getattr(self, curve)
        if values.size == 0:
            return 0.0
        index = int(np.clip(round(time * self.fps), 0, values.size - 1))
        return float(values[index])


@dataclass(frozen=True)
class AudioAnalysis:
    """Everything the planner and assembler need to know about a song."""

    duration: float
    tempo: float
    key: str
    time_signature: str
    sections: list[AudioSection]
    beats: list[BeatMarker]
    spectral_features: SpectralFeatures | None
    sample_rate: int
    analyzer_version: str
    warnings: list[str] = field(default_factory=list)
    key_confidence: float = 0.0

    @property
    def beats_per_bar(self) -> int:
        return int(self.time_signature.split("/")[0])

    @property
    def beat_times(self) -> list[float]:
        return [b.time for b in self.beats]

    @property
    def downbeats(self) -> list[BeatMarker]:
        return [b for b in self.beats if b.is_downbeat]

    def to_dict(self, *, precise: bool = False) -> dict[str, Any]:
        """JSON-ready form (times rounded to 0.1 ms unless ``precise``); no curves."""
        r = _identity if precise else round
        return {
            "duration": r(self.duration, 4),
            "tempo": r(self.tempo, 3),
            "time_signature": self.time_signature,
            "key": self.key,
            "key_confidence": r(self.key_confidence, 3),
            "beats": [b.to_dict(precise=precise) for b in self.beats],
            "sections": [s.to_dict(precise=precise) for s in self.sections],
            "analyzer_version": self.analyzer_version,
            "sample_rate": self.sample_rate,
            "warnings": list(self.warnings),
        }
