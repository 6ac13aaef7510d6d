"""The shot planner: one shot per musical phrase, cut on downbeats.

Input is an :class:`~engine.audio.types.AudioAnalysis`; output is a
:class:`ShotList` whose every shot knows its time in seconds and in bar:beat,
its section, the music's energy under it, a prompt and a seed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from engine.audio.types import AudioAnalysis, AudioSection, BeatMarker
from engine.errors import ParameterError

__all__ = ["Shot", "ShotList", "plan_shots"]

log = logging.getLogger(__name__)

# Scene themes a section can take; repeated sections (same label) keep their theme,
# so a chorus looks like the chorus every time it comes back.
_THEMES = (
    "neon city at night, rain, reflections",
    "sunset over desert dunes, warm haze",
    "deep space nebula, stars, distant planet",
    "ocean waves at dawn, soft light",
    "misty pine forest, light rays through fog",
    "abstract golden light, flowing ribbons",
    "snowy mountains under the moon, cold blue",
    "fire and embers, dark smoke, glowing sparks",
)
_SECTION_MOOD = {
    "intro": "calm, quiet, dim",
    "verse": "moody, steady",
    "pre-chorus": "rising tension",
    "chorus": "vivid, bright, energetic",
    "bridge": "dreamy, unexpected",
    "breakdown": "sparse, minimal",
    "drop": "explosive, intense",
    "outro": "fading, calm, dark",
}
_MOTIONS = ("zoom_in", "pan_right", "zoom_out", "pan_left")


@dataclass(frozen=True, kw_only=True)
class Shot:
    """One shot of the video: a still shown from ``start`` to ``end`` seconds."""

    index: int
    start: float
    end: float
    start_bar: int
    start_beat: int
    section: str
    section_index: int
    energy: float
    prompt: str
    seed: int
    transition_in: str
    motion: str

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def position(self) -> str:
        """Musical position of the cut as ``bar:beat``."""
        return f"{self.start_bar}:{self.start_beat}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "position": self.position,
            "section": self.section,
            "section_index": self.section_index,
            "energy": round(self.energy, 3),
            "prompt": self.prompt,
            "seed": self.seed,
            "transition_in": self.transition_in,
            "motion": self.motion,
        }


@dataclass(frozen=True)
class ShotList:
    """The shots of one video, contiguous from 0 to ``duration``."""

    shots: tuple[Shot, ...]
    duration: float
    tempo: float
    warnings: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.shots)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.shots)

    @property
    def cut_times(self) -> list[float]:
        """Start times of every shot but the first."""
        return [s.start for s in self.shots[1:]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration": round(self.duration, 4),
            "tempo": round(self.tempo, 3),
            "shots": [s.to_dict() for s in self.shots],
            "warnings": list(self.warnings),
        }


def _stable_int(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# Section boundaries and downbeats come from different estimators; a downbeat this close
# before a section's start belongs to that section.
_BOUNDARY_TOLERANCE = 0.06


def _section_at(sections: list[AudioSection], time: float) -> int:
    for i in range(len(sections) - 1, -1, -1):
        if time + _BOUNDARY_TOLERANCE >= sections[i].start:
            return i
    return 0


def _boundaries_from_downbeats(
    downbeats: list[BeatMarker], sections: list[AudioSection], phrase_bars: int
) -> list[BeatMarker]:
    """Downbeats where a phrase starts: every ``phrase_bars`` bars, restarting at each section."""
    chosen: list[BeatMarker] = []
    section_of = [_section_at(sections, d.time) for d in downbeats]
    count = 0
    for i, marker in enumerate(downbeats):
        new_section = i == 0 or section_of[i] != section_of[i - 1]
        if new_section:
            count = 0
        if count % phrase_bars == 0:
            chosen.append(marker)
        count += 1
    return chosen


def plan_shots(
    analysis: AudioAnalysis,
    *,
    phrase_bars: int = 4,
    min_shot_seconds: float = 1.5,
    max_shot_seconds: float = 12.0,
    base_prompt: str = "",
    seed: int = 0,
) -> ShotList:
    """Plan one shot per phrase of ``phrase_bars`` bars, cutting on downbeats.

    ``base_prompt`` (the style bible's prompt) is the subject of every shot, with the
    section's mood added; when it is empty, each section label gets one of a set of
    scene themes.  Phrases restart at every section boundary, so a section change is always a
    cut (later rendered as a crossfade).  Shots shorter than ``min_shot_seconds``
    merge into their neighbour; shots longer than ``max_shot_seconds`` split on
    the downbeat nearest their middle.  Without beats (silence, noise, free
    time) the song is cut at even intervals and a warning says so.

    Raises
    ------
    ParameterError
        A parameter is out of range.
    """
    if phrase_bars < 1:
        raise ParameterError("phrase_bars", phrase_bars, "an integer >= 1")
    if not (0 < min_shot_seconds < max_shot_seconds):
        raise ParameterError(
            "min_shot_seconds", min_shot_seconds, f"0 < min_shot_seconds < {max_shot_seconds}"
        )
    duration = analysis.duration
    sections = list(analysis.sections) or [
        AudioSection(start=0.0, end=duration, label="song", confidence=0.0)
    ]
    downbeats = analysis.downbeats
    warnings: list[str] = []

    starts: list[tuple[float, int, int]]  # (time, bar, beat)
    if len(downbeats) >= 2:
        phrase_starts = _boundaries_from_downbeats(downbeats, sections, phrase_bars)
        starts = [(d.time, d.bar, d.beat) for d in phrase_starts]
        # The first shot starts at 0 and shows the pickup before the first downbeat.
        if starts[0][0] > 1e-6:
            if starts[0][0] < min_shot_seconds:
                starts[0] = (0.0, starts[0][1], starts[0][2])
            else:
                starts.insert(0, (0.0, 0, 1))
    else:
        step = min(max_shot_seconds, max(min_shot_seconds, 4.0))
        count = max(1, round(duration / step))
        starts = [(duration * i / count, 0, 0) for i in range(count)]
        warnings.append("no beat found: shots are cut at even intervals, not on the music")

    bounds = [*starts, (duration, 0, 0)]
    spans: list[tuple[tuple[float, int, int], float]] = [
        (bounds[i], bounds[i + 1][0]) for i in range(len(starts))
    ]
    spans = _merge_short(spans, min_shot_seconds)
    spans = _split_long(spans, downbeats, max_shot_seconds)

    themes = _assign_themes(sections, seed)
    shots: list[Shot] = []
    previous_section = -1
    for index, ((start, bar, beat), end) in enumerate(spans):
        section_index = _section_at(sections, start)
        section = sections[section_index]
        new_section = section_index != previous_section
        previous_section = section_index
        mood = _SECTION_MOOD.get(section.label, "")
        # The user's prompt is the subject of every shot; without one, each section
        # gets a scene theme so the video still has variety.
        parts = [p for p in (base_prompt or themes[section_index], mood) if p]
        shots.append(
            Shot(
                index=index,
                start=float(start),
                end=float(end),
                start_bar=bar,
                start_beat=beat,
                section=section.label,
                section_index=section_index,
                energy=float(min(1.0, max(0.0, section.energy))),
                prompt=", ".join(parts),
                seed=_stable_int(seed, index, section.label),
                transition_in="crossfade" if new_section and index > 0 else "cut",
                motion=_MOTIONS[index % len(_MOTIONS)],
            )
        )
    log.info("planned %d shots over %.1f s (%d sections)", len(shots), duration, len(sections))
    return ShotList(
        shots=tuple(shots), duration=duration, tempo=analysis.tempo, warnings=tuple(warnings)
    )


def _assign_themes(sections: list[AudioSection], seed: int) -> list[str]:
    """One theme per section; sections with the same label share a theme."""
    order = sorted(range(len(_THEMES)), key=lambda i: _stable_int(seed, "theme", i))
    by_label: dict[str, str] = {}
    themes = []
    for section in sections:
        if section.label not in by_label:
            by_label[section.label] = _THEMES[order[len(by_label) % len(order)]]
        themes.append(by_label[section.label])
    return themes


def _merge_short(
    spans: list[tuple[tuple[float, int, int], float]], min_seconds: float
) -> list[tuple[tuple[float, int, int], float]]:
    merged = list(spans)
    i = 0
    while i < len(merged) and len(merged) > 1:
        (start, end) = (merged[i][0][0], merged[i][1])
        if end - start >= min_seconds:
            i += 1
            continue
        if i == len(merged) - 1:  # last: extend the previous shot to the end
            merged[i - 1] = (merged[i - 1][0], end)
            del merged[i]
        else:  # otherwise the next shot starts where this one started
            merged[i + 1] = (merged[i][0], merged[i + 1][1])
            del merged[i]
    return merged


def _split_long(
    spans: list[tuple[tuple[float, int, int], float]],
    downbeats: list[BeatMarker],
    max_seconds: float,
) -> list[tuple[tuple[float, int, int], float]]:
    out: list[tuple[tuple[float, int, int], float]] = []
    pending = list(spans)
    while pending:
        (start, bar, beat), end = pending.pop(0)
        if end - start <= max_seconds:
            out.append(((start, bar, beat), end))
            continue
        middle = (start + end) / 2
        quarter = 0.25 * (end - start)
        inside = [d for d in downbeats if start + quarter <= d.time <= end - quarter]
        if inside:
            cut = min(inside, key=lambda d: abs(d.time - middle))
            head = ((start, bar, beat), cut.time)
            tail = ((cut.time, cut.bar, cut.beat), end)
        else:
            head = ((start, bar, beat), middle)
            tail = ((middle, 0, 0), end)
        pending[:0] = [head, tail]
    return out
