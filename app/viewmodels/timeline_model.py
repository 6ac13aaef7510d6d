"""The timeline's view model: the edit being made, its undo history and the playhead.

:class:`TimelineModel` holds one :class:`~engine.api.TimelineDocument` (immutable) and
replaces it on every edit.  Each edit is a :class:`QUndoCommand` on the model's
:class:`QUndoStack` that keeps the document before and after, so undo and redo give back
exactly the document that was there (``to_dict()`` equal), never a recomputation.

Edits keep the video track contiguous from the song's start to its end (the renderer
plays one unbroken track), as an editor's *roll*, *slide* and *razor* tools do:

- :meth:`TimelineModel.trim`: move the cut between a clip and the next (a roll edit),
- :meth:`TimelineModel.move`: slide a clip along, its neighbours giving or taking time,
- :meth:`TimelineModel.split`: cut a clip in two at a time,
- :meth:`TimelineModel.set_transition`: the transition into a clip (``None`` for a cut),
- :meth:`TimelineModel.set_still`: another image for a clip (an image dropped on it).

Times given to them snap to the nearest beat of the song while :attr:`snap` is on.  A
clip never becomes shorter than :data:`MIN_CLIP_SECONDS`.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from engine.api import (
    AudioAnalysis,
    Clip,
    ClipSource,
    Marker,
    MediaInputError,
    ParameterError,
    TempoMap,
    TimelineDocument,
    TimePoint,
    Track,
    TransitionSpec,
)

__all__ = [
    "MIN_CLIP_SECONDS",
    "SectionBand",
    "TimelineModel",
    "Waveform",
    "analysis_document",
    "read_wav_waveform",
    "waveform_job",
]

log = logging.getLogger(__name__)

MIN_CLIP_SECONDS = 0.1
# The waveform is kept as min/max peaks at this many buckets per second; drawing at any
# zoom reduces these, never the samples.
WAVEFORM_BUCKETS_PER_SECOND = 400


@dataclasses.dataclass(frozen=True)
class SectionBand:
    """A labelled section of the song: ``start`` to ``end`` seconds."""

    label: str
    start: float
    end: float
    energy: float = 0.5


@dataclasses.dataclass(frozen=True)
class Waveform:
    """Min/max peaks of a song (mono), ``buckets_per_second`` pairs a second."""

    minima: np.ndarray
    maxima: np.ndarray
    buckets_per_second: float

    @classmethod
    def from_samples(
        cls, samples: np.ndarray, sample_rate: int, *, buckets_per_second: int = 0
    ) -> Waveform:
        """Peaks of ``samples`` (``(n,)`` or ``(channels, n)``, float or int).

        Raises
        ------
        ParameterError
            ``sample_rate`` is not positive or ``samples`` is empty.
        """
        if sample_rate <= 0:
            raise ParameterError("sample_rate", sample_rate, "a positive rate in Hz")
        data = np.asarray(samples, dtype=np.float32)
        if data.ndim == 2:
            data = data.mean(axis=0)
        if data.size == 0:
            raise ParameterError("samples", data.shape, "at least one sample")
        rate = buckets_per_second or WAVEFORM_BUCKETS_PER_SECOND
        step = max(1, int(sample_rate // rate))
        count = math.ceil(data.size / step)
        padded = np.zeros(count * step, dtype=np.float32)
        padded[: data.size] = data
        blocks = padded.reshape(count, step)
        return cls(blocks.min(axis=1), blocks.max(axis=1), sample_rate / step)


def read_wav_waveform(path: Path | str) -> Waveform:
    """The waveform of a PCM WAV file, read with the standard library.

    Other formats are decoded by the engine (through the bridge) and passed to
    :meth:`Waveform.from_samples`.

    Raises
    ------
    MediaInputError
        The file cannot be read as 8/16/24/32-bit PCM WAV.
    """
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width = handle.getnchannels(), handle.getsampwidth()
            rate, raw = handle.getframerate(), handle.readframes(handle.getnframes())
    except (OSError, wave.Error, EOFError) as err:
        raise MediaInputError(path, f"cannot read it as a PCM WAV file ({err})") from err
    if width == 3:
        bytes_ = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        ints = (
            bytes_[:, 0].astype(np.int32)
            | (bytes_[:, 1].astype(np.int32) << 8)
            | (bytes_[:, 2].astype(np.int32) << 16)
        )
        data = np.where(ints >= 1 << 23, ints - (1 << 24), ints) / float(1 << 23)
    elif width in (1, 2, 4):
        dtype = {1: np.uint8, 2: np.int16, 4: np.int32}[width]
        ints = np.frombuffer(raw, dtype=dtype).astype(np.float64)
        data = (ints - 128.0) / 128.0 if width == 1 else ints / float(1 << (8 * width - 1))
    else:
        raise MediaInputError(path, f"has {width}-byte samples; use 8-32 bit PCM WAV")
    return Waveform.from_samples(data.reshape(-1, channels).T, rate)


def analysis_document(
    analysis: AudioAnalysis, *, audio_path: Path | str | None = None, fps: int | str = 30
) -> TimelineDocument:
    """The timeline of a song analysed but not yet planned: its beat grid, section
    markers and the song on the audio track, with an empty video track.

    The timeline can show the song's sections as soon as the analysis is done; the
    clips come with the plan (:func:`engine.api.timeline_from_plan`).
    """
    tempo_map = TempoMap.from_analysis(analysis)
    tracks = [Track(name="V1", kind="video")]
    if audio_path is not None:
        start, end = TimePoint("start", 0.0), TimePoint("end", tempo_map.duration)
        song = Clip(
            clip_id="song",
            start=start,
            end=end,
            source=ClipSource(kind="audio", paths=(str(audio_path),)),
        )
        tracks.append(Track(name="A1", kind="audio", items=(song,)))
    markers = tuple(
        Marker(
            name=section.label,
            kind="section",
            time=TimePoint.of(section.start, tempo_map),
            metadata={"energy": section.energy, "confidence": section.confidence},
        )
        for section in analysis.sections
    )
    return TimelineDocument(fps=fps, tempo_map=tempo_map, tracks=tuple(tracks), markers=markers)


def waveform_job(path: Path | str, *, sample_rate: int = 8000) -> Callable[[], Waveform]:
    """Work for the engine bridge that decodes any song into its waveform.

    ``bridge.call(waveform_job(path), on_done=model.set_waveform)``; the decoding
    (PyAV, through :func:`engine.api.decode_audio`) runs off the GUI thread.
    """

    def work() -> Waveform:
        from engine.api import decode_audio

        audio = decode_audio(path, sample_rate=sample_rate, mono=True)
        return Waveform.from_samples(audio.samples, audio.sample_rate)

    return work


class _DocumentCommand(QUndoCommand):
    """One edit: the document before and after it (both immutable, so exact)."""

    def __init__(
        self, model: TimelineModel, before: TimelineDocument, after: TimelineDocument, text: str
    ) -> None:
        super().__init__(text)
        self._model, self._before, self._after = model, before, after

    def redo(self) -> None:
        self._model._set_document(self._after)

    def undo(self) -> None:
        self._model._set_document(self._before)


class TimelineModel(QObject):
    """The edit shown by the timeline, with undo/redo and a playhead.

    Signals
    -------
    document_changed()
        The document was replaced (an edit, undo, redo or a new document).
    waveform_changed()
        The song's waveform arrived or changed.
    selection_changed(str)
        The selected clip's id ("" for none).
    playhead_changed(float)
        The playhead moved (seconds).
    """

    document_changed = Signal()
    waveform_changed = Signal()
    selection_changed = Signal(str)
    playhead_changed = Signal(float)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.snap = True
        self._document: TimelineDocument | None = None
        self._waveform: Waveform | None = None
        self._selected = ""
        self._playhead = 0.0
        self._clips: tuple[Clip, ...] = ()
        self._starts: list[float] = []
        self._spans = (np.zeros(0), np.zeros(0))
        self._beats: tuple[float, ...] = ()
        self._downbeats: tuple[float, ...] = ()
        self._sections: list[SectionBand] = []
        self._downbeat_set: frozenset[float] = frozenset()
        self._beat_array = np.zeros(0)
        self._downbeat_mask = np.zeros(0, dtype=bool)

    # -- state -------------------------------------------------------------------------
    @property
    def document(self) -> TimelineDocument | None:
        return self._document

    @property
    def waveform(self) -> Waveform | None:
        return self._waveform

    @property
    def duration(self) -> float:
        return self._document.duration if self._document else 0.0

    @property
    def clips(self) -> tuple[Clip, ...]:
        """The video track's clips in order."""
        return self._clips

    @property
    def beats(self) -> tuple[float, ...]:
        """Beat times in seconds."""
        return self._beats

    @property
    def downbeats(self) -> tuple[float, ...]:
        return self._downbeats

    @property
    def downbeat_set(self) -> frozenset[float]:
        return self._downbeat_set

    @property
    def beat_array(self) -> np.ndarray:
        """Beat times as an array (for drawing)."""
        return self._beat_array

    @property
    def downbeat_mask(self) -> np.ndarray:
        """True for the beats of :attr:`beat_array` that start a bar."""
        return self._downbeat_mask

    @property
    def sections(self) -> list[SectionBand]:
        """The section markers as bands from each one's start to the next's."""
        return self._sections

    def _section_bands(self) -> list[SectionBand]:
        if self._document is None:
            return []
        marks = sorted(
            (m for m in self._document.markers if m.kind == "section"),
            key=lambda m: m.time.seconds,
        )
        if not marks:
            return []
        ends = [m.time.seconds for m in marks[1:]] + [self.duration]
        return [
            SectionBand(m.name, m.time.seconds, end, float(m.metadata.get("energy", 0.5)))
            for m, end in zip(marks, ends, strict=True)
        ]

    @property
    def selected(self) -> str:
        return self._selected

    @property
    def playhead(self) -> float:
        return self._playhead

    def load(self, document: TimelineDocument, *, waveform: Waveform | None = None) -> None:
        """Show ``document`` (a fresh history: the undo stack is cleared)."""
        self.undo_stack.clear()
        self._waveform = waveform
        self._selected = ""
        self._playhead = 0.0
        self._set_document(document)
        self.selection_changed.emit("")
        self.playhead_changed.emit(0.0)

    def set_waveform(self, waveform: Waveform | None) -> None:
        self._waveform = waveform
        self.waveform_changed.emit()

    def _set_document(self, document: TimelineDocument) -> None:
        self._document = document
        self._clips = document.video_clips
        self._starts = [c.start.seconds for c in self._clips]
        self._spans = (
            np.array(self._starts, dtype=np.float64),
            np.array([c.end.seconds for c in self._clips], dtype=np.float64),
        )
        self._beats = document.tempo_map.beat_times
        self._downbeats = tuple(t for t, _bar, beat in document.tempo_map.beats if beat == 1)
        self._downbeat_set = frozenset(self._downbeats)
        self._beat_array = np.array(self._beats, dtype=np.float64)
        self._downbeat_mask = np.array(
            [beat == 1 for _t, _bar, beat in document.tempo_map.beats], dtype=bool
        )
        self._sections = self._section_bands()
        if self._selected and self.clip(self._selected) is None:
            self._selected = ""
            self.selection_changed.emit("")
        self.document_changed.emit()

    def select(self, clip_id: str) -> None:
        """Select a clip by id ("" clears the selection)."""
        if clip_id and self.clip(clip_id) is None:
            raise ParameterError("clip_id", clip_id, "the id of a clip on the video track")
        if clip_id != self._selected:
            self._selected = clip_id
            self.selection_changed.emit(clip_id)

    def set_playhead(self, seconds: float) -> None:
        """Move the playhead (clamped to the song)."""
        seconds = min(max(0.0, float(seconds)), self.duration)
        if seconds != self._playhead:
            self._playhead = seconds
            self.playhead_changed.emit(seconds)

    # -- look-ups ----------------------------------------------------------------------
    def clip(self, clip_id: str) -> Clip | None:
        return next((c for c in self.clips if c.clip_id == clip_id), None)

    def index_of(self, clip_id: str) -> int:
        for index, clip in enumerate(self.clips):
            if clip.clip_id == clip_id:
                return index
        raise ParameterError("clip_id", clip_id, "the id of a clip on the video track")

    @property
    def clip_spans(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end seconds of every video clip, as arrays (for drawing)."""
        return self._spans

    def clip_at(self, seconds: float) -> Clip | None:
        """The video clip playing at ``seconds``."""
        index = bisect.bisect_right(self._starts, seconds) - 1
        clips = self.clips
        if 0 <= index < len(clips) and seconds < clips[index].end.seconds + 1e-9:
            return clips[index]
        return None

    def visible_clips(self, start: float, end: float) -> range:
        """Indices of the video clips that overlap ``[start, end]`` seconds."""
        first = max(0, bisect.bisect_right(self._starts, start) - 1)
        last = bisect.bisect_right(self._starts, end)
        return range(first, last)

    def snapped(self, seconds: float) -> float:
        """``seconds`` moved to the nearest beat while :attr:`snap` is on."""
        if not self.snap or not self._beats:
            return seconds
        i = bisect.bisect_left(self._beats, seconds)
        near = [self._beats[j] for j in (i - 1, i) if 0 <= j < len(self._beats)]
        return min(near, key=lambda t: abs(t - seconds))

    # -- edits -------------------------------------------------------------------------
    def trim(self, clip_id: str, edge: str, seconds: float) -> bool:
        """Move ``edge`` (``"start"`` or ``"end"``) of a clip to ``seconds`` (a roll edit).

        The neighbour on that side gives or takes the time.  The song's first start and
        last end are fixed.  Returns False (and records nothing) when nothing changes.

        Raises
        ------
        ParameterError
            Unknown clip or edge, or an edge at the song's start or end.
        """
        index = self.index_of(clip_id)
        if edge not in ("start", "end"):
            raise ParameterError("edge", edge, "'start' or 'end'")
        cut = index if edge == "start" else index + 1
        if cut <= 0 or cut >= len(self.clips):
            raise ParameterError(
                "edge", f"{clip_id}.{edge}", "a cut between two clips (the song's ends are fixed)"
            )
        return self._move_cuts({cut: seconds}, f"Trim {clip_id}")

    def move(self, clip_id: str, start_seconds: float) -> bool:
        """Slide a clip so it starts at ``start_seconds``, keeping its length (snapped).

        The clip before it ends later or earlier and the one after starts with its new
        end; the first and last clips cannot move.
        """
        index = self.index_of(clip_id)
        clips = self.clips
        if index == 0 or index == len(clips) - 1:
            raise ParameterError(
                "clip_id", clip_id, "a clip between two others (the first and last stay put)"
            )
        clip = clips[index]
        start = self.snapped(start_seconds)
        low, high = self.slide_range(clip_id)
        if high < low:
            return False
        start = min(max(start, low), high)
        end = start + clip.duration
        if self.snap:
            # keep the end on a beat when the clip was beat-aligned
            end = self.snapped(end)
            end = min(max(end, start + MIN_CLIP_SECONDS), high + clip.duration)
        if abs(start - clip.start.seconds) < 1e-9 and abs(end - clip.end.seconds) < 1e-9:
            return False
        tempo_map = self._need_document().tempo_map
        first, last = TimePoint.of(start, tempo_map), TimePoint.of(end, tempo_map)
        edited = list(clips)
        edited[index - 1] = dataclasses.replace(clips[index - 1], end=first)
        edited[index] = dataclasses.replace(clip, start=first, end=last)
        edited[index + 1] = dataclasses.replace(clips[index + 1], start=last)
        self._push(self._with_clips(edited), f"Move {clip_id}")
        return True

    def slide_range(self, clip_id: str) -> tuple[float, float]:
        """Earliest and latest start :meth:`move` gives a clip (empty when low > high)."""
        index = self.index_of(clip_id)
        clips = self.clips
        if index == 0 or index == len(clips) - 1:
            start = clips[index].start.seconds
            return start, start
        low = clips[index - 1].start.seconds + MIN_CLIP_SECONDS
        high = clips[index + 1].end.seconds - MIN_CLIP_SECONDS - clips[index].duration
        return low, high

    def split(self, clip_id: str, seconds: float) -> str | None:
        """Cut a clip in two at ``seconds`` (snapped); the new right half's id is returned.

        Returns None when the cut would leave a part shorter than
        :data:`MIN_CLIP_SECONDS`.
        """
        doc = self._need_document()
        index = self.index_of(clip_id)
        clip = self.clips[index]
        at = self.snapped(seconds)
        if not (clip.start.seconds + MIN_CLIP_SECONDS <= at <= clip.end.seconds - MIN_CLIP_SECONDS):
            return None
        point = TimePoint.of(at, doc.tempo_map)
        ids = {c.clip_id for c in self.clips}
        suffix = 2
        while f"{clip_id}.{suffix}" in ids:
            suffix += 1
        new_id = f"{clip_id}.{suffix}"
        left = dataclasses.replace(clip, end=point)
        right = dataclasses.replace(clip, clip_id=new_id, start=point, transition_in=None)
        clips = [*self.clips[:index], left, right, *self.clips[index + 1 :]]
        self._push(self._with_clips(clips), f"Split {clip_id}")
        return new_id

    def set_transition(
        self, clip_id: str, kind: str | None, *, seconds: float = 0.5, direction: str = "left"
    ) -> bool:
        """Set the transition into a clip: ``kind`` from :data:`engine.api.TRANSITIONS`,
        or None / ``"cut"`` for a hard cut.

        Raises
        ------
        ParameterError
            Unknown clip, the first clip, or a bad kind/length (from TransitionSpec).
        """
        index = self.index_of(clip_id)
        if index == 0:
            raise ParameterError("clip_id", clip_id, "a clip after the first (it has no cut in)")
        clip = self.clips[index]
        spec = (
            None
            if kind in (None, "cut")
            else TransitionSpec(kind=kind, duration_seconds=seconds, direction=direction)
        )
        if spec == clip.transition_in:
            return False
        clips = list(self.clips)
        clips[index] = dataclasses.replace(clip, transition_in=spec)
        label = "cut" if spec is None else spec.kind
        self._push(self._with_clips(clips), f"Transition into {clip_id}: {label}")
        return True

    def set_still(self, clip_id: str, path: Path | str) -> bool:
        """Show the image at ``path`` in a clip instead of its still (a dropped image).

        Raises
        ------
        ParameterError
            Unknown clip.
        """
        index = self.index_of(clip_id)
        clip = self.clips[index]
        source = ClipSource(kind="still", paths=(str(Path(path)),))
        if source == clip.source:
            return False
        clips = list(self.clips)
        clips[index] = dataclasses.replace(clip, source=source)
        self._push(self._with_clips(clips), f"Replace the still of {clip_id}")
        return True

    # -- helpers -----------------------------------------------------------------------
    def _need_document(self) -> TimelineDocument:
        if self._document is None:
            raise ParameterError("document", None, "a loaded timeline (load a project first)")
        return self._document

    def _move_cuts(self, cuts: dict[int, float], text: str) -> bool:
        """Move cut ``i`` (between clip ``i - 1`` and ``i``) to the given seconds."""
        doc = self._need_document()
        clips = list(self.clips)
        changed = False
        for cut in sorted(cuts):
            at = self.snapped(cuts[cut])
            low = clips[cut - 1].start.seconds + MIN_CLIP_SECONDS
            high = clips[cut].end.seconds - MIN_CLIP_SECONDS
            if high < low:
                continue
            at = min(max(at, low), high)
            if abs(at - clips[cut].start.seconds) < 1e-9:
                continue
            point = TimePoint.of(at, doc.tempo_map)
            clips[cut - 1] = dataclasses.replace(clips[cut - 1], end=point)
            clips[cut] = dataclasses.replace(clips[cut], start=point)
            changed = True
        if changed:
            self._push(self._with_clips(clips), text)
        return changed

    def _with_clips(self, clips: list[Clip]) -> TimelineDocument:
        doc = self._need_document()
        tracks = list(doc.tracks)
        index = next(i for i, t in enumerate(tracks) if t.kind == "video")
        tracks[index] = dataclasses.replace(tracks[index], items=tuple(clips))
        return dataclasses.replace(doc, tracks=tuple(tracks))

    def _push(self, after: TimelineDocument, text: str) -> None:
        before = self._need_document()
        log.debug("timeline edit: %s", text)
        self.undo_stack.push(_DocumentCommand(self, before, after, text))
