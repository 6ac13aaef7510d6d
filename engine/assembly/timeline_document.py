"""The timeline document: the whole edit as plain data, timed in music and in seconds.

A :class:`TimelineDocument` holds tracks (a video track of clips, an audio track with the
song, an effects track with the global grade), transitions, camera moves and grades as
data, plus the :class:`~engine.assembly.tempo_map.TempoMap` of the song.  Every time in
it is a :class:`TimePoint`: a musical position (``bar:beat[:fraction]``, or the anchors
``"start"`` and ``"end"`` of the song) together with its seconds, derived from the tempo
map.  :meth:`TimelineDocument.retime` recomputes every time from its position for a new
tempo map (the song re-analysed, a remix at another tempo) and/or a new frame rate, so
a cut pinned to ``17:1`` lands on the new bar 17 exactly.  Frame numbers follow from
seconds and the frame rate (:func:`~engine.assembly.tempo_map.frame_at`, the renderer's
own rule).

The renderer plays a document through :meth:`TimelineDocument.render_plan`, which gives
the shot list, camera moves, transitions and grades the frame renderer takes: the render
pipeline builds the document first and renders from that conversion, so the saved
document and the rendered video cannot disagree.

JSON (``schema_version`` 1) is written atomically by :func:`save_timeline`; a document
that does not parse raises :class:`~engine.errors.ParameterError` whose ``name`` is the
path of the bad field, e.g. ``tracks[0].clips[3].start.position``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.assembly.motion import MotionSpec
from engine.assembly.tempo_map import MusicalPosition, TempoMap, frame_at, parse_fps
from engine.assembly.transitions import TransitionSpec
from engine.atomic_files import atomic_write_text
from engine.errors import ParameterError

if TYPE_CHECKING:
    from engine.audio.types import AudioAnalysis
    from engine.planning.shots import ShotList

__all__ = [
    "ANCHORS",
    "SCHEMA_VERSION",
    "SOURCE_KINDS",
    "TRACK_KINDS",
    "Clip",
    "ClipSource",
    "Effect",
    "Marker",
    "RenderPlan",
    "TimePoint",
    "TimelineDocument",
    "Track",
    "load_timeline",
    "save_timeline",
    "timeline_from_plan",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
KIND = "apex-director.timeline"
ANCHORS = ("start", "end")
TRACK_KINDS = ("video", "audio", "effects")
SOURCE_KINDS = ("still", "image_sequence", "audio")
EFFECT_KINDS = ("grade",)
# Seconds written in a document may differ from those its positions give by this much
# (a hand edit that moved one and not the other is an error, not a rounding).
_SECONDS_TOLERANCE = 1e-3

Position = MusicalPosition | str


# -- times -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TimePoint:
    """A time of the document: its musical position and the seconds the tempo map gives it.

    ``position`` is a :class:`MusicalPosition` or one of :data:`ANCHORS` (``"start"`` is
    0 s, ``"end"`` is the song's length), so the first clip starts at 0 and the last one
    ends with the song whatever the tempo map.
    """

    position: Position
    seconds: float

    @classmethod
    def at(cls, position: Position, tempo_map: TempoMap) -> TimePoint:
        """The point at ``position`` on ``tempo_map``, held inside the song (a position
        past the end of a shorter remix is at its end)."""
        if position == "start":
            return cls("start", 0.0)
        if position == "end":
            return cls("end", float(tempo_map.duration))
        if not isinstance(position, MusicalPosition):
            raise ParameterError("position", position, "a MusicalPosition, 'start' or 'end'")
        return cls(position, min(max(tempo_map.seconds(position), 0.0), tempo_map.duration))

    def inside(self, tempo_map: TempoMap) -> bool:
        """Whether the position itself lies within the song on ``tempo_map``."""
        if not isinstance(self.position, MusicalPosition):
            return True
        return 0.0 <= tempo_map.seconds(self.position) <= tempo_map.duration

    @classmethod
    def of(cls, seconds: float, tempo_map: TempoMap) -> TimePoint:
        """The point at ``seconds``: the anchors at 0 and the song's end, else a position."""
        if seconds <= 0.0:
            return cls("start", 0.0)
        if abs(seconds - tempo_map.duration) <= 1e-9:
            return cls("end", float(tempo_map.duration))
        return cls.at(tempo_map.position(seconds), tempo_map)

    def retimed(self, tempo_map: TempoMap) -> TimePoint:
        return TimePoint.at(self.position, tempo_map)

    def frame(self, fps: Fraction) -> int:
        return frame_at(self.seconds, fps)

    def to_dict(self, fps: Fraction) -> dict[str, Any]:
        return {"position": str(self.position), "seconds": self.seconds, "frame": self.frame(fps)}


# -- content ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClipSource:
    """What a clip shows or plays.

    ``kind`` is ``"still"`` (one image in ``paths``), ``"image_sequence"`` (the images of
    ``paths`` in order, ``rate`` images per second from the clip's start, the last one
    held) or ``"audio"`` (one sound file).
    """

    kind: str
    paths: tuple[str, ...]
    rate: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))
        if self.kind not in SOURCE_KINDS:
            raise ParameterError("kind", self.kind, f"one of {', '.join(SOURCE_KINDS)}")
        if not self.paths:
            raise ParameterError("paths", self.paths, "at least one file")
        if self.kind != "image_sequence" and len(self.paths) != 1:
            raise ParameterError("paths", self.paths, f"exactly one file for a {self.kind}")
        if self.kind == "image_sequence":
            if self.rate is None or not (0 < self.rate <= 1000):
                raise ParameterError("rate", self.rate, "images per second in (0, 1000]")
        elif self.rate is not None:
            raise ParameterError("rate", self.rate, "None unless kind='image_sequence'")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "paths": list(self.paths)}
        if self.rate is not None:
            out["rate"] = self.rate
        return out


@dataclass(frozen=True, kw_only=True)
class Clip:
    """A clip on a video or audio track.

    ``motion`` (video only) is the camera move over the picture; ``transition_in`` (video
    only, ``None`` for a hard cut) the transition from the previous clip, centred on this
    clip's start; ``grade`` (video only) a :meth:`ColorGrader.to_dict
    <engine.grading.grader.ColorGrader.to_dict>` grade that replaces the global grade on
    frames whose main picture is this clip; ``gain_db`` (audio only) a level change;
    ``metadata`` what the planner knew (section, energy, prompt, seed, planned position).
    """

    clip_id: str
    start: TimePoint
    end: TimePoint
    source: ClipSource
    motion: MotionSpec | None = None
    transition_in: TransitionSpec | None = None
    grade: Mapping[str, Any] | None = None
    gain_db: float = 0.0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.end.seconds - self.start.seconds

    def retimed(self, tempo_map: TempoMap) -> Clip:
        return dataclasses.replace(
            self, start=self.start.retimed(tempo_map), end=self.end.retimed(tempo_map)
        )


@dataclass(frozen=True, kw_only=True)
class Effect:
    """An effect over a span of the whole picture: ``kind="grade"`` with ``parameters``
    a :meth:`ColorGrader.to_dict <engine.grading.grader.ColorGrader.to_dict>` grade."""

    effect_id: str
    kind: str
    start: TimePoint
    end: TimePoint
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def retimed(self, tempo_map: TempoMap) -> Effect:
        return dataclasses.replace(
            self, start=self.start.retimed(tempo_map), end=self.end.retimed(tempo_map)
        )


@dataclass(frozen=True, kw_only=True)
class Track:
    """A named track: ``video`` and ``audio`` tracks hold clips, ``effects`` tracks effects."""

    name: str
    kind: str
    items: tuple[Clip | Effect, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in TRACK_KINDS:
            raise ParameterError("kind", self.kind, f"one of {', '.join(TRACK_KINDS)}")


@dataclass(frozen=True, kw_only=True)
class Marker:
    """A named point (a section start, a note) on the timeline."""

    name: str
    kind: str
    time: TimePoint
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderPlan:
    """What the frame renderer takes, converted from a document without loss.

    ``still_paths`` lists every image by image index: each clip's images in order, a
    still clip one, an image sequence all of its own.  ``image_at`` (for
    :class:`~engine.assembly.frame_renderer.FrameStyle`) says which image a shot shows
    at a time into it; ``None`` when every clip is a still (shot ``i`` shows image ``i``).
    """

    shots: ShotList
    still_paths: tuple[str, ...]
    motions: dict[int, MotionSpec]
    transitions: dict[int, TransitionSpec]
    transition_seconds: dict[int, float]
    beat_times: tuple[float, ...]
    grade: Mapping[str, Any] | None
    shot_grades: dict[int, Mapping[str, Any]]
    image_at: Callable[[int, float], int] | None = None


# -- the document ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TimelineDocument:
    """The edit: tracks of clips and effects, markers, on one tempo map at one frame rate.

    Build one from a plan with :func:`timeline_from_plan`, re-time it with
    :meth:`retime`, render it through :meth:`render_plan`, save and load it with
    :func:`save_timeline` / :func:`load_timeline`.
    """

    fps: Fraction
    tempo_map: TempoMap
    tracks: tuple[Track, ...]
    markers: tuple[Marker, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fps", parse_fps(self.fps))

    @property
    def duration(self) -> float:
        """The song's length in seconds (the ``"end"`` anchor)."""
        return self.tempo_map.duration

    @property
    def frame_count(self) -> int:
        return max(1, frame_at(self.duration, self.fps))

    def track(self, kind: str) -> Track | None:
        """The first track of ``kind``."""
        return next((t for t in self.tracks if t.kind == kind), None)

    @property
    def video_clips(self) -> tuple[Clip, ...]:
        track = self.track("video")
        return tuple(c for c in track.items if isinstance(c, Clip)) if track else ()

    def cut_frames(self) -> list[int]:
        """Frame of every video clip's start (the first is 0)."""
        return [c.start.frame(self.fps) for c in self.video_clips]

    # -- re-timing ---------------------------------------------------------------------
    def retime(
        self, tempo_map: TempoMap | None = None, *, fps: Fraction | float | str | None = None
    ) -> TimelineDocument:
        """The same edit on a new tempo map and/or at a new frame rate.

        Every time is recomputed from its musical position; frame numbers follow from
        the new seconds and frame rate.  Transitions given in beats take the new beat
        length, those in seconds keep it.  Items that fall outside the new song
        (a shorter remix) are clamped to it, and dropped when nothing is left of them.
        """
        new_map = tempo_map or self.tempo_map
        rate = self.fps if fps is None else parse_fps(fps)
        tracks = []
        for track in self.tracks:
            items: list[Clip | Effect] = []
            for item in track.items:
                moved = item.retimed(new_map)  # times held inside the new song
                if moved.end.seconds <= moved.start.seconds:
                    log.warning("%s falls outside the re-timed song; dropped", _item_id(item))
                    continue
                items.append(moved)
            tracks.append(dataclasses.replace(track, items=tuple(items)))
        markers = tuple(
            dataclasses.replace(m, time=m.time.retimed(new_map))
            for m in self.markers
            if m.time.inside(new_map)
        )
        return dataclasses.replace(
            self, fps=rate, tempo_map=new_map, tracks=tuple(tracks), markers=markers
        )

    # -- rendering ---------------------------------------------------------------------
    def render_plan(self) -> RenderPlan:
        """The shot list, moves, transitions and grades the frame renderer takes.

        Raises
        ------
        ParameterError
            The document cannot be rendered: no video clips, clips that leave gaps or
            overlap (the renderer needs one contiguous video track from 0 to the end),
            or more than one video track with clips (the renderer draws one track).
        """
        from engine.planning.shots import Shot, ShotList

        video_tracks = [i for i, t in enumerate(self.tracks) if t.kind == "video" and t.items]
        if len(video_tracks) != 1:
            raise ParameterError(
                "tracks", len(video_tracks), "exactly one video track with clips to render"
            )
        where = f"tracks[{video_tracks[0]}].clips"
        clips = self.video_clips
        shots: list[Shot] = []
        motions: dict[int, MotionSpec] = {}
        transitions: dict[int, TransitionSpec] = {}
        lengths: dict[int, float] = {}
        grades: dict[int, Mapping[str, Any]] = {}
        images: list[str] = []
        first_image: list[int] = []
        sequences: dict[int, tuple[float, int]] = {}
        previous_end = 0.0
        for index, clip in enumerate(clips):
            if clip.source.kind not in ("still", "image_sequence"):
                raise ParameterError(
                    f"{where}[{index}].source.kind",
                    clip.source.kind,
                    "'still' or 'image_sequence' on a video track",
                )
            first_image.append(len(images))
            images.extend(clip.source.paths)
            if clip.source.kind == "image_sequence":
                assert clip.source.rate is not None  # validated by ClipSource
                sequences[index] = (clip.source.rate, len(clip.source.paths))
            if abs(clip.start.seconds - previous_end) > 1e-9:
                raise ParameterError(
                    f"{where}[{index}].start",
                    str(clip.start.position),
                    f"the previous clip's end ({previous_end:.6f} s): no gaps or overlaps",
                )
            previous_end = clip.end.seconds
            meta = clip.metadata
            bar, beat = _label(meta.get("position"), clip.start.position)
            motion = clip.motion or MotionSpec(kind="static", amount=0.0)
            shots.append(
                Shot(
                    index=index,
                    start=clip.start.seconds,
                    end=clip.end.seconds,
                    start_bar=bar,
                    start_beat=beat,
                    section=str(meta.get("section", "")),
                    section_index=int(meta.get("section_index", 0)),
                    energy=float(meta.get("energy", 0.5)),
                    prompt=str(meta.get("prompt", "")),
                    seed=int(meta.get("seed", index)),
                    transition_in=clip.transition_in.kind if clip.transition_in else "cut",
                    motion=motion.kind,
                )
            )
            motions[index] = motion
            if clip.transition_in is not None and index > 0:
                transitions[index] = clip.transition_in
                period = self.tempo_map.beat_period_at(clip.start.seconds)
                lengths[index] = clip.transition_in.seconds(period)
            if clip.grade is not None:
                grades[index] = clip.grade
        if abs(previous_end - self.duration) > 1e-9:
            raise ParameterError(
                f"{where}[{len(clips) - 1}].end", previous_end, f"the song's end, {self.duration}"
            )
        effects = self.track("effects")
        global_grade = None
        for effect in effects.items if effects else ():
            if isinstance(effect, Effect) and effect.kind == "grade":
                global_grade = effect.parameters
        shot_list = ShotList(
            shots=tuple(shots),
            duration=self.duration,
            tempo=self.tempo_map.tempo,
            warnings=self.notes,
        )
        image_at = None
        if sequences:

            def image_at(index: int, seconds: float) -> int:
                """Image ``floor(seconds * rate)`` of a sequence (held at its ends)."""
                if index not in sequences:
                    return first_image[index]
                rate, count = sequences[index]
                step = math.floor(seconds * rate + 1e-9)
                return first_image[index] + min(count - 1, max(0, step))

        return RenderPlan(
            shots=shot_list,
            still_paths=tuple(images),
            motions=motions,
            transitions=transitions,
            transition_seconds=lengths,
            beat_times=self.tempo_map.beat_times if self.tempo_map.measured else (),
            grade=global_grade,
            shot_grades=grades,
            image_at=image_at,
        )

    # -- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see the module docstring)."""
        fps = self.fps
        tracks = []
        for track in self.tracks:
            key = "effects" if track.kind == "effects" else "clips"
            tracks.append(
                {
                    "name": track.name,
                    "kind": track.kind,
                    key: [
                        _effect_to_dict(i, fps) if isinstance(i, Effect) else _clip_to_dict(i, fps)
                        for i in track.items
                    ],
                }
            )
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": KIND,
            "fps": f"{fps.numerator}/{fps.denominator}",
            "duration": TimePoint("end", self.duration).to_dict(fps),
            "frame_count": self.frame_count,
            "tempo_map": self.tempo_map.to_dict(),
            "tracks": tracks,
            "markers": [
                {
                    "name": m.name,
                    "kind": m.kind,
                    "time": m.time.to_dict(fps),
                    "metadata": copy.deepcopy(dict(m.metadata)),
                }
                for m in self.markers
            ],
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> TimelineDocument:
        """Rebuild a document from :meth:`to_dict`'s form.

        Raises
        ------
        ParameterError
            A missing, malformed or inconsistent field; ``name`` is its path.
        """
        return _Reader().document(data)

    @classmethod
    def from_json(cls, text: str, *, source: str = "timeline") -> TimelineDocument:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ParameterError(
                source, f"line {err.lineno} column {err.colno}", f"valid JSON ({err.msg})"
            ) from None
        return cls.from_dict(data)


def _item_id(item: Clip | Effect) -> str:
    return item.clip_id if isinstance(item, Clip) else item.effect_id


def _label(text: Any, position: Position) -> tuple[int, int]:
    """The planner's ``bar:beat`` label of a shot (``0:1`` for the pickup at 0 s)."""
    if isinstance(text, str):
        try:
            bar, beat = (int(p) for p in text.split(":")[:2])
            return bar, beat
        except ValueError:
            pass
    if isinstance(position, MusicalPosition):
        return position.bar, position.beat
    return 0, 0


def _clip_to_dict(clip: Clip, fps: Fraction) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": clip.clip_id,
        "start": clip.start.to_dict(fps),
        "end": clip.end.to_dict(fps),
        "source": clip.source.to_dict(),
    }
    if clip.motion is not None:
        out["motion"] = _spec_to_dict(clip.motion)
    if clip.transition_in is not None:
        out["transition_in"] = _spec_to_dict(clip.transition_in)
    if clip.grade is not None:
        out["grade"] = copy.deepcopy(dict(clip.grade))
    if clip.gain_db:
        out["gain_db"] = clip.gain_db
    if clip.metadata:
        out["metadata"] = copy.deepcopy(dict(clip.metadata))
    return out


def _effect_to_dict(effect: Effect, fps: Fraction) -> dict[str, Any]:
    return {
        "id": effect.effect_id,
        "kind": effect.kind,
        "start": effect.start.to_dict(fps),
        "end": effect.end.to_dict(fps),
        "parameters": copy.deepcopy(dict(effect.parameters)),
    }


def _spec_to_dict(spec: MotionSpec | TransitionSpec) -> dict[str, Any]:
    values = dataclasses.asdict(spec)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v is not None}


# -- reading ---------------------------------------------------------------------------


class _Reader:
    """Parses a document's JSON form; every error names the path of the bad field."""

    def __init__(self) -> None:
        self.tempo_map: TempoMap | None = None
        self.fps = Fraction(30)

    def document(self, data: Any) -> TimelineDocument:
        obj = self.obj(data, "timeline")
        version = obj.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ParameterError(
                "schema_version", version, f"{SCHEMA_VERSION} (a timeline document)"
            )
        if obj.get("kind", KIND) != KIND:
            raise ParameterError("kind", obj.get("kind"), repr(KIND))
        self.fps = parse_fps(self.need(obj, "fps", ""), name="fps")
        self.tempo_map = TempoMap.from_dict(self.need(obj, "tempo_map", ""))
        tracks = []
        for t, raw in enumerate(self.array(self.need(obj, "tracks", ""), "tracks")):
            tracks.append(self.track(raw, f"tracks[{t}]"))
        markers = []
        for m, raw in enumerate(self.array(obj.get("markers", []), "markers")):
            path = f"markers[{m}]"
            item = self.obj(raw, path)
            markers.append(
                Marker(
                    name=self.text(item, "name", path),
                    kind=self.text(item, "kind", path),
                    time=self.time(self.need(item, "time", path), f"{path}.time"),
                    metadata=self.obj(item.get("metadata", {}), f"{path}.metadata"),
                )
            )
        notes = self.array(obj.get("notes", []), "notes")
        if not all(isinstance(n, str) for n in notes):
            raise ParameterError("notes", notes, "a list of strings")
        return TimelineDocument(
            fps=self.fps,
            tempo_map=self.tempo_map,
            tracks=tuple(tracks),
            markers=tuple(markers),
            notes=tuple(notes),
        )

    # -- pieces --------------------------------------------------------------------------
    def track(self, raw: Any, path: str) -> Track:
        obj = self.obj(raw, path)
        kind = self.text(obj, "kind", path)
        if kind not in TRACK_KINDS:
            raise ParameterError(f"{path}.kind", kind, f"one of {', '.join(TRACK_KINDS)}")
        name = self.text(obj, "name", path)
        key = "effects" if kind == "effects" else "clips"
        raws = self.array(obj.get(key, []), f"{path}.{key}")
        items: list[Clip | Effect] = []
        for i, item in enumerate(raws):
            where = f"{path}.{key}[{i}]"
            items.append(self.effect(item, where) if kind == "effects" else self.clip(item, where))
        return Track(name=name, kind=kind, items=tuple(items))

    def clip(self, raw: Any, path: str) -> Clip:
        obj = self.obj(raw, path)
        start = self.time(self.need(obj, "start", path), f"{path}.start")
        end = self.time(self.need(obj, "end", path), f"{path}.end")
        if end.seconds <= start.seconds:
            raise ParameterError(f"{path}.end", str(end.position), "a time after the start")
        source = self.obj(self.need(obj, "source", path), f"{path}.source")
        paths = self.array(self.need(source, "paths", f"{path}.source"), f"{path}.source.paths")
        if not all(isinstance(p, str) for p in paths):
            raise ParameterError(f"{path}.source.paths", paths, "a list of file paths")
        rate = source.get("rate")
        src = self.build(
            ClipSource,
            f"{path}.source",
            kind=self.text(source, "kind", f"{path}.source"),
            paths=tuple(paths),
            rate=None if rate is None else self.number(rate, f"{path}.source.rate"),
        )
        motion = obj.get("motion")
        transition = obj.get("transition_in")
        grade = obj.get("grade")
        if grade is not None:
            self.grade(grade, f"{path}.grade")
        return Clip(
            clip_id=self.text(obj, "id", path),
            start=start,
            end=end,
            source=src,
            motion=None if motion is None else self.spec(MotionSpec, motion, f"{path}.motion"),
            transition_in=None
            if transition is None
            else self.spec(TransitionSpec, transition, f"{path}.transition_in"),
            grade=grade,
            gain_db=self.number(obj.get("gain_db", 0.0), f"{path}.gain_db"),
            metadata=self.obj(obj.get("metadata", {}), f"{path}.metadata"),
        )

    def effect(self, raw: Any, path: str) -> Effect:
        obj = self.obj(raw, path)
        kind = self.text(obj, "kind", path)
        if kind not in EFFECT_KINDS:
            raise ParameterError(f"{path}.kind", kind, f"one of {', '.join(EFFECT_KINDS)}")
        parameters = self.obj(obj.get("parameters", {}), f"{path}.parameters")
        self.grade(parameters, f"{path}.parameters")
        return Effect(
            effect_id=self.text(obj, "id", path),
            kind=kind,
            start=self.time(self.need(obj, "start", path), f"{path}.start"),
            end=self.time(self.need(obj, "end", path), f"{path}.end"),
            parameters=parameters,
        )

    def time(self, raw: Any, path: str) -> TimePoint:
        assert self.tempo_map is not None
        obj = self.obj(raw, path)
        text = self.text(obj, "position", path)
        position: Position = (
            text if text in ANCHORS else MusicalPosition.parse(text, name=f"{path}.position")
        )
        try:
            point = TimePoint.at(position, self.tempo_map)
        except ParameterError as err:
            raise ParameterError(f"{path}.position", text, err.allowed) from None
        if "seconds" in obj:
            seconds = self.number(obj["seconds"], f"{path}.seconds")
            if abs(seconds - point.seconds) > _SECONDS_TOLERANCE:
                raise ParameterError(
                    f"{path}.seconds",
                    seconds,
                    f"{point.seconds:.6f}, the time of position {text} on the tempo map "
                    "(edit the position; seconds follow from it)",
                )
        if "frame" in obj and obj["frame"] != point.frame(self.fps):
            raise ParameterError(
                f"{path}.frame", obj["frame"], f"{point.frame(self.fps)} (from seconds and fps)"
            )
        return point

    def spec(self, cls: type[Any], raw: Any, path: str) -> Any:
        obj = self.obj(raw, path)
        names = {f.name for f in dataclasses.fields(cls)}
        for key in obj:
            if key not in names:
                raise ParameterError(f"{path}.{key}", obj[key], f"one of {', '.join(names)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in obj.items()}
        return self.build(cls, path, **values)

    def grade(self, raw: Any, path: str) -> None:
        from engine.grading.grader import ColorGrader

        try:
            ColorGrader.from_dict(self.obj(raw, path))
        except ParameterError as err:
            raise ParameterError(f"{path}.{err.name}", err.value, err.allowed) from None

    @staticmethod
    def build(factory: type[Any], path: str, **values: Any) -> Any:
        try:
            return factory(**values)
        except ParameterError as err:
            raise ParameterError(f"{path}.{err.name}", err.value, err.allowed) from None
        except TypeError as err:
            raise ParameterError(path, values, f"valid fields ({err})") from None

    @staticmethod
    def obj(raw: Any, path: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise ParameterError(path, raw, "a JSON object")
        return raw

    @staticmethod
    def array(raw: Any, path: str) -> list[Any]:
        if not isinstance(raw, list):
            raise ParameterError(path, raw, "a JSON array")
        return raw

    @staticmethod
    def need(obj: dict[str, Any], key: str, path: str) -> Any:
        if key not in obj:
            raise ParameterError(f"{path}.{key}" if path else key, None, "a value (missing)")
        return obj[key]

    def text(self, obj: dict[str, Any], key: str, path: str) -> str:
        value = self.need(obj, key, path)
        if not isinstance(value, str):
            raise ParameterError(f"{path}.{key}", value, "a string")
        return value

    @staticmethod
    def number(value: Any, path: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ParameterError(path, value, "a finite number")
        return float(value)


# -- files -----------------------------------------------------------------------------


def save_timeline(path: Path | str, document: TimelineDocument) -> Path:
    """Write ``document`` as JSON to ``path``, atomically."""
    atomic_write_text(path, document.to_json())
    return Path(path)


def load_timeline(path: Path | str) -> TimelineDocument:
    """Read a document written by :func:`save_timeline`.

    Raises
    ------
    MediaInputError
        The file cannot be read.
    ParameterError
        The file is not a valid timeline document (``name`` is the bad field's path).
    """
    from engine.errors import MediaInputError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MediaInputError(path, f"cannot read the timeline document: {err}") from err
    return TimelineDocument.from_json(text, source=str(path))


# -- from a plan -----------------------------------------------------------------------


def timeline_from_plan(
    shots: ShotList,
    analysis: AudioAnalysis | TempoMap,
    *,
    fps: Fraction | float | str,
    still_paths: Sequence[Path | str],
    audio_path: Path | str | None = None,
    motion_amount: float = 0.08,
    beat_pulse: float = 0.0,
    transition_seconds: float = 0.5,
    grade: Mapping[str, Any] | None = None,
    shot_grades: Mapping[int, Mapping[str, Any]] | None = None,
    sections: Sequence[Any] = (),
) -> TimelineDocument:
    """The document of a planned edit, with the moves and transitions the renderer draws.

    Parameters
    ----------
    shots : ShotList
        The plan (:func:`~engine.planning.shots.plan_shots`).
    analysis : AudioAnalysis or TempoMap
        The song's analysis (its beats become the tempo map; its sections markers) or a
        tempo map.
    fps : Fraction, float or str
        The frame rate (``"30000/1001"`` for 29.97).
    still_paths : sequence of str or Path
        One still per shot.
    audio_path : str or Path, optional
        The song, for the audio track.
    motion_amount, beat_pulse, transition_seconds : float
        ``render.motion_amount``, ``render.beat_pulse`` and ``render.crossfade_seconds``:
        each shot's move is its planned kind at that amount (kicking on the beats when
        ``beat_pulse`` > 0); a transition into a shot other than a cut takes that long,
        whip pans alternating right and left.
    grade : mapping, optional
        The global grade (``ColorGrader.to_dict()``), on the effects track.
    shot_grades : mapping, optional
        Grades by shot index (a section's look over the global grade), per clip.
    sections : sequence, optional
        Section markers when ``analysis`` is a tempo map.

    Raises
    ------
    ParameterError
        ``still_paths`` does not have one path per shot.
    """
    if len(still_paths) != len(shots.shots):
        raise ParameterError(
            "still_paths", len(still_paths), f"one still per shot ({len(shots.shots)})"
        )
    if isinstance(analysis, TempoMap):
        tempo_map = analysis
    else:
        tempo_map = TempoMap.from_analysis(analysis)
        sections = analysis.sections
    if abs(tempo_map.duration - shots.duration) > 1e-9:
        tempo_map = dataclasses.replace(tempo_map, duration=shots.duration)
    # The document owns its data: later edits of the caller's dicts do not reach it.
    per_shot = copy.deepcopy(dict(shot_grades or {}))
    grade = copy.deepcopy(dict(grade)) if grade is not None else None
    clips = []
    for shot in shots.shots:
        transition = None
        # A zero-length transition is a cut on screen (the renderer's Timeline gives it
        # no frames), so it is written as one.
        if shot.index > 0 and shot.transition_in != "cut" and transition_seconds > 0:
            transition = TransitionSpec(
                kind=shot.transition_in,
                duration_seconds=max(transition_seconds, 1e-3),
                direction="left" if shot.index % 2 else "right",
            )
        motion = MotionSpec(
            kind=shot.motion,
            amount=motion_amount,
            seed=shot.seed % (2**31),
            pulse=beat_pulse,
            pulse_decay=0.15,
            pulse_source="beats",
        )
        meta = {
            k: v
            for k, v in shot.to_dict().items()
            if k in ("index", "position", "section", "section_index", "energy", "prompt", "seed")
        }
        meta["energy"] = shot.energy
        clips.append(
            Clip(
                clip_id=f"shot-{shot.index + 1:03d}",
                start=TimePoint.of(shot.start, tempo_map),
                end=TimePoint.of(shot.end, tempo_map),
                source=ClipSource(kind="still", paths=(str(still_paths[shot.index]),)),
                motion=motion,
                transition_in=transition,
                grade=per_shot.get(shot.index),
                metadata=meta,
            )
        )
    start, end = TimePoint("start", 0.0), TimePoint("end", tempo_map.duration)
    tracks = [Track(name="V1", kind="video", items=tuple(clips))]
    if audio_path is not None:
        tracks.append(
            Track(
                name="A1",
                kind="audio",
                items=(
                    Clip(
                        clip_id="song",
                        start=start,
                        end=end,
                        source=ClipSource(kind="audio", paths=(str(audio_path),)),
                    ),
                ),
            )
        )
    effects = ()
    if grade is not None:
        effects = (Effect(effect_id="grade", kind="grade", start=start, end=end, parameters=grade),)
    tracks.append(Track(name="FX", kind="effects", items=effects))
    markers = tuple(
        Marker(
            name=s.label,
            kind="section",
            time=TimePoint.of(s.start, tempo_map),
            metadata={"energy": s.energy, "confidence": s.confidence},
        )
        for s in sections
    )
    return TimelineDocument(
        fps=parse_fps(fps),
        tempo_map=tempo_map,
        tracks=tuple(tracks),
        markers=markers,
        notes=tuple(shots.warnings),
    )
