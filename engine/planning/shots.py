"""The shot planner: one shot per musical phrase, cut on downbeats (or on any beat).

Input is an :class:`~engine.audio.types.AudioAnalysis`; output is a
:class:`ShotList` whose every shot knows its time in seconds and in bar:beat,
its section, the music's energy under it, a prompt and a seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.audio.types import AudioAnalysis, AudioSection, BeatMarker
from engine.errors import ParameterError

__all__ = ["CUT_ON", "PACINGS", "Shot", "ShotList", "ShotOverride", "plan_shots"]

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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shot:
        bar, beat = (int(p) for p in str(data["position"]).split(":"))
        return cls(
            index=int(data["index"]),
            start=float(data["start"]),
            end=float(data["end"]),
            start_bar=bar,
            start_beat=beat,
            section=str(data["section"]),
            section_index=int(data["section_index"]),
            energy=float(data["energy"]),
            prompt=str(data["prompt"]),
            seed=int(data["seed"]),
            transition_in=str(data["transition_in"]),
            motion=str(data["motion"]),
        )

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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShotList:
        return cls(
            shots=tuple(Shot.from_dict(s) for s in data["shots"]),
            duration=float(data["duration"]),
            tempo=float(data["tempo"]),
            warnings=tuple(data.get("warnings", ())),
        )

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


PACINGS = ("even", "energy")
CUT_ON = ("downbeat", "beat")


def _phrase_length(section: AudioSection, phrase_bars: int, pacing: str) -> int:
    """Bars per shot in ``section``: shorter in loud sections, longer in quiet ones."""
    if pacing == "energy":
        if section.energy >= 0.85:
            return max(1, phrase_bars // 2)
        if section.energy < 0.5:
            return phrase_bars * 2
    return phrase_bars


def _boundaries_from_downbeats(
    downbeats: list[BeatMarker], sections: list[AudioSection], phrase_bars: int, pacing: str
) -> list[BeatMarker]:
    """Downbeats where a phrase starts, restarting the count at each section."""
    chosen: list[BeatMarker] = []
    section_of = [_section_at(sections, d.time) for d in downbeats]
    count = 0
    for i, marker in enumerate(downbeats):
        new_section = i == 0 or section_of[i] != section_of[i - 1]
        if new_section:
            count = 0
        if count % _phrase_length(sections[section_of[i]], phrase_bars, pacing) == 0:
            chosen.append(marker)
        count += 1
    return chosen


def _beats_per_shot(
    section: AudioSection, phrase_beats: int, pacing: str, period: float, min_seconds: float
) -> int:
    """Beats per shot in ``section`` when cuts may fall on any beat.

    ``even``: a phrase.  ``energy``: 2 beats in loud sections (energy >= 0.85), a
    quarter phrase in lively ones (>= 0.65; a bar when a phrase is 4 bars), a phrase in
    middling ones and two phrases in quiet ones (< 0.5).  The length then doubles until
    a shot lasts at least ``min_seconds``, so fast songs keep regular cuts instead of
    merged pairs.
    """
    beats = phrase_beats
    if pacing == "energy":
        if section.energy >= 0.85:
            beats = 2
        elif section.energy >= 0.65:
            beats = max(2, phrase_beats // 4)
        elif section.energy < 0.5:
            beats = phrase_beats * 2
    while beats * period < min_seconds - 1e-9:
        beats *= 2
    return beats


def _boundaries_from_beats(
    beats: list[BeatMarker],
    sections: list[AudioSection],
    phrase_beats: int,
    pacing: str,
    min_seconds: float,
) -> list[BeatMarker]:
    """Beats where a shot starts, counted from each section's first beat of a bar.

    A pickup (bar 0) is never a cut; it belongs to the first shot.
    """
    counted = [b for b in beats if b.bar >= 1]
    if len(counted) < 2:
        return counted[:1]
    times = [b.time for b in counted]
    chosen: list[BeatMarker] = []
    section_of = [_section_at(sections, t) for t in times]
    count = 0
    step = 1
    for i, marker in enumerate(counted):
        if i == 0 or section_of[i] != section_of[i - 1]:
            count = 0
            # The local beat period: this section's median beat interval.
            ends = [t for j, t in enumerate(times) if section_of[j] == section_of[i]]
            gaps = sorted(b - a for a, b in itertools.pairwise(ends)) or [times[1] - times[0]]
            period = gaps[len(gaps) // 2]
            step = _beats_per_shot(
                sections[section_of[i]], phrase_beats, pacing, period, min_seconds
            )
        if count % step == 0:
            chosen.append(marker)
        count += 1
    return chosen


@dataclass(frozen=True, kw_only=True)
class ShotOverride:
    """A user's change to the plan, pinned to a musical position so it survives re-planning.

    ``cut=True`` makes sure a shot starts at ``position`` (``"bar:beat"``); ``cut=False``
    removes a planned cut there.  ``prompt``, ``seed``, ``motion`` and ``transition_in``
    replace the planned values of the shot that starts at ``position``.
    """

    position: str
    cut: bool = True
    prompt: str | None = None
    seed: int | None = None
    motion: str | None = None
    transition_in: str | None = None

    def __post_init__(self) -> None:
        try:
            bar, beat = (int(part) for part in self.position.split(":"))
        except ValueError:
            raise ParameterError("position", self.position, "'bar:beat', e.g. '13:1'") from None
        if bar < 1 or beat < 1:
            raise ParameterError("position", self.position, "bar and beat counted from 1")
        if self.seed is not None and self.seed < 0:
            raise ParameterError("seed", self.seed, "an integer >= 0")

    @property
    def bar_beat(self) -> tuple[int, int]:
        bar, beat = self.position.split(":")
        return int(bar), int(beat)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def _apply_cut_overrides(
    starts: list[tuple[float, int, int]],
    beats: list[BeatMarker],
    overrides: Sequence[ShotOverride],
    warnings: list[str],
) -> list[tuple[float, int, int]]:
    by_position = {(b.bar, b.beat): b for b in beats}
    result = list(starts)
    for override in overrides:
        key = override.bar_beat
        if override.cut:
            marker = by_position.get(key)
            if marker is None:
                warnings.append(f"override at {override.position}: no such beat; ignored")
            elif all((bar, beat) != key for _t, bar, beat in result):
                result.append((marker.time, marker.bar, marker.beat))
        else:
            result = [s for i, s in enumerate(result) if i == 0 or (s[1], s[2]) != key]
    return sorted(result)


def plan_shots(
    analysis: AudioAnalysis,
    *,
    phrase_bars: int = 4,
    min_shot_seconds: float = 1.5,
    max_shot_seconds: float = 12.0,
    base_prompt: str = "",
    seed: int = 0,
    pacing: str = "even",
    overrides: Sequence[ShotOverride] = (),
    section_transition: str = "crossfade",
    cut_on: str = "downbeat",
) -> ShotList:
    """Plan one shot per phrase of ``phrase_bars`` bars, cutting on downbeats or beats.

    Section changes get ``section_transition`` (a crossfade unless told otherwise).
    ``pacing="energy"`` halves the phrase in loud sections (a chorus, a drop) and
    doubles it in quiet ones (an intro, a breakdown).  ``overrides`` (the user's
    edits, pinned to bar:beat) add or remove cuts and replace a shot's prompt, seed,
    motion or transition; they are applied again whenever the plan is regenerated.

    ``cut_on="beat"`` lets cuts fall on any beat, counted from each section's first
    bar: with ``pacing="energy"`` a loud section (a chorus, a drop) cuts every 2 beats,
    a lively one every quarter phrase, a quiet one every two phrases; each length is
    doubled until it lasts ``min_shot_seconds``.  ``"downbeat"`` (the default) cuts
    on the first beat of a bar only.

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
    if pacing not in PACINGS:
        raise ParameterError("pacing", pacing, f"one of {', '.join(PACINGS)}")
    if cut_on not in CUT_ON:
        raise ParameterError("cut_on", cut_on, f"one of {', '.join(CUT_ON)}")
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
        if cut_on == "beat":
            phrase_starts = _boundaries_from_beats(
                analysis.beats,
                sections,
                phrase_bars * analysis.beats_per_bar,
                pacing,
                min_shot_seconds,
            )
        else:
            phrase_starts = _boundaries_from_downbeats(downbeats, sections, phrase_bars, pacing)
        starts = [(d.time, d.bar, d.beat) for d in phrase_starts]
        starts = _apply_cut_overrides(starts, analysis.beats, overrides, warnings)
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
    removed = frozenset(o.bar_beat for o in overrides if not o.cut)
    spans = _split_long(spans, downbeats, max_shot_seconds, removed)

    themes = _assign_themes(sections, seed)
    pinned = {o.bar_beat: o for o in overrides if o.cut}
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
        override = pinned.get((bar, beat)) if bar > 0 else None
        shot = Shot(
            index=index,
            start=float(start),
            end=float(end),
            start_bar=bar,
            start_beat=beat,
            section=section.label,
            section_index=section_index,
            energy=float(min(1.0, max(0.0, section.energy))),
            prompt=", ".join(parts),
            # Keyed by the musical position, so adding a cut elsewhere keeps every
            # other shot's picture.
            seed=_stable_int(seed, bar, beat, round(start, 1), section.label),
            transition_in=section_transition if new_section and index > 0 else "cut",
            motion=_MOTIONS[index % len(_MOTIONS)],
        )
        if override is not None:
            changes = {
                name: getattr(override, name)
                for name in ("prompt", "seed", "motion", "transition_in")
                if getattr(override, name) is not None
            }
            shot = dataclasses.replace(shot, **changes)
        shots.append(shot)
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
    forbidden: frozenset[tuple[int, int]] = frozenset(),
) -> list[tuple[tuple[float, int, int], float]]:
    """Split shots longer than ``max_seconds`` on the downbeat nearest their middle.

    Never on a position in ``forbidden`` (cuts the user removed): such a shot stays
    long when no other downbeat will do.  Where there is no downbeat at all near the
    middle (no beat found, a free-time intro) the shot is split at its middle.
    """
    out: list[tuple[tuple[float, int, int], float]] = []
    pending = list(spans)
    while pending:
        (start, bar, beat), end = pending.pop(0)
        if end - start <= max_seconds:
            out.append(((start, bar, beat), end))
            continue
        middle = (start + end) / 2
        quarter = 0.25 * (end - start)
        near_middle = [d for d in downbeats if start + quarter <= d.time <= end - quarter]
        inside = [d for d in near_middle if (d.bar, d.beat) not in forbidden]
        if inside:
            cut = min(inside, key=lambda d: abs(d.time - middle))
            head = ((start, bar, beat), cut.time)
            tail = ((cut.time, cut.bar, cut.beat), end)
        elif not near_middle:  # free time: no downbeat to cut on
            head = ((start, bar, beat), middle)
            tail = ((middle, 0, 0), end)
        else:
            out.append(((start, bar, beat), end))
            continue
        pending[:0] = [head, tail]
    return out
