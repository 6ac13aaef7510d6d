"""The end-to-end render: song in, beat-synced video and JSON report out.

Stages: analyse → plan → generate → assemble (compose + encode) → report.
Every input is checked before any work starts, so bad input fails in
milliseconds with a message that says what to do, and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine import __version__
from engine.assembly.compose import compose_video
from engine.assembly.encoder import EncodeSettings
from engine.assembly.frame_renderer import FrameStyle
from engine.assembly.tempo_map import TempoMap
from engine.assembly.timeline_document import (
    Effect,
    RenderPlan,
    TimelineDocument,
    Track,
    load_timeline,
    save_timeline,
    timeline_from_plan,
)
from engine.atomic_files import atomic_path, atomic_write_text
from engine.audio.analyzer import AudioAnalyzer
from engine.audio.decode import (
    AudioBytes,
    AudioSource,
    check_audio_path,
    check_audio_source,
    probe_audio,
    source_digest,
)
from engine.config.schema import frame_rate
from engine.context import StageContext
from engine.errors import MediaInputError, ParameterError
from engine.generation.backends import BACKEND_NAMES, create_backend, create_first_available
from engine.generation.palette import palette_from_prompt, parse_palette
from engine.generation.types import ImageBackend, StillRequest
from engine.orchestrator.cache_trim import trim_cache
from engine.output_paths import check_output_path
from engine.planning.shots import ShotList, plan_shots

__all__ = [
    "OUTPUT_EXTENSIONS",
    "PRESET_NAMES",
    "MissingStillsError",
    "RenderRequest",
    "TimelineMismatchError",
    "apply_grades",
    "check_timeline_matches",
    "render_video",
]

log = logging.getLogger(__name__)

PRESET_NAMES = ("draft", "web", "high", "broadcast", "cinema")
ASPECTS = ("16:9", "9:16", "1:1")
OUTPUT_EXTENSIONS = (".mp4", ".m4v", ".mov")
STAGES = ("analyse", "plan", "generate", "assemble")
_STILL_FORMAT_VERSION = 1
_SEGMENT_FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class RenderRequest:
    """One render, as the CLI or GUI asks for it (validated on construction)."""

    audio_path: Path
    output_path: Path
    preset: str = "web"
    aspect: str = "16:9"
    backend: str = "procedural"
    images_dir: Path | None = None
    # diffusers: the checkpoint (path or name under paths.models_dir) and the device.
    model: str | None = None
    device: str = "auto"
    # When set, the backends are tried in this order (the first that loads is used).
    backend_order: tuple[str, ...] = ()
    json_report: Path | None = None
    otio_path: Path | None = None
    timeline_json: Path | None = None
    cache_dir: Path | None = None
    # Render this edit (a saved TimelineDocument) instead of planning one.
    timeline_path: Path | None = None
    # Grades over the edit's (the GUI's ``settings.grades``: global, sections, shots).
    grades: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESET_NAMES:
            raise ParameterError("preset", self.preset, f"one of {', '.join(PRESET_NAMES)}")
        if self.aspect not in ASPECTS:
            raise ParameterError("aspect", self.aspect, f"one of {', '.join(ASPECTS)}")
        if self.backend not in BACKEND_NAMES:
            raise ParameterError("backend", self.backend, f"one of {', '.join(BACKEND_NAMES)}")
        if self.backend == "stills" and self.images_dir is None:
            raise ParameterError("images_dir", None, "a folder of images (--images DIR) for stills")
        for name in self.backend_order:
            if name not in BACKEND_NAMES:
                raise ParameterError("backend_order", name, f"one of {', '.join(BACKEND_NAMES)}")
        if self.grades is not None and not isinstance(self.grades, dict):
            raise ParameterError("grades", self.grades, "a dict with global, sections, shots")


class TimelineMismatchError(MediaInputError):
    """The timeline document is not an edit of this song: its tempo map (beats, length)
    differs from the song's analysis.  Render it with the song it was made from, or plan a
    new edit for this song."""


class MissingStillsError(MediaInputError):
    """Stills the timeline document names are missing and cannot be made again (their
    clip has no prompt, or they belong to an image sequence).  ``missing`` lists them."""

    def __init__(self, path: Path | str, missing: list[str]) -> None:
        self.missing = list(missing)
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        super().__init__(
            path,
            f"{len(missing)} picture(s) it names are missing and have no prompt to make them "
            f"again: {shown}. Put the files back or point the clips at existing images.",
        )


def check_timeline_matches(
    document: TimelineDocument, tempo_map: TempoMap, *, source: Path | str, tolerance: float = 0.05
) -> None:
    """Refuse a document made for another song.

    The document's tempo map must have the song's length and, for a measured grid, the
    same beats (each within ``tolerance`` seconds) as ``tempo_map`` (the song's analysis).

    Raises
    ------
    TimelineMismatchError
        The two differ; the message says how.
    """
    ours = document.tempo_map
    if abs(ours.duration - tempo_map.duration) > tolerance:
        raise TimelineMismatchError(
            source,
            f"this edit is {ours.duration:.2f} s long but the song is "
            f"{tempo_map.duration:.2f} s: it was made for another song",
        )
    if ours.measured and tempo_map.measured:
        if len(ours.beats) != len(tempo_map.beats):
            raise TimelineMismatchError(
                source,
                f"this edit's tempo map has {len(ours.beats)} beats, the song's analysis "
                f"{len(tempo_map.beats)}: it was made for another song (or another analysis)",
            )
        worst = max(abs(a[0] - b[0]) for a, b in zip(ours.beats, tempo_map.beats, strict=True))
        if worst > tolerance:
            raise TimelineMismatchError(
                source,
                f"this edit's beats are up to {worst:.3f} s away from the song's: it was "
                "made for another song",
            )


def _check_grades(grades: dict[str, Any] | None) -> None:
    """Every grade of ``grades`` parses (a ParameterError names the one that does not)."""
    if not grades:
        return
    from engine.grading.grader import ColorGrader

    shots = dict(grades.get("shots") or {})
    sections = dict(grades.get("sections") or {})
    for where, grade in [
        *((f"grades.shots.{k}", v) for k, v in shots.items()),
        *((f"grades.sections.{k}", v) for k, v in sections.items()),
        ("grades.global", grades.get("global")),
    ]:
        if grade is None:
            continue
        try:
            ColorGrader.from_dict(grade)
        except (TypeError, ValueError, KeyError) as err:
            raise ParameterError(where, grade, f"a ColorGrader.to_dict() grade ({err})") from err


def apply_grades(document: TimelineDocument, grades: dict[str, Any] | None) -> TimelineDocument:
    """The document with the GUI's grades (``settings.grades``) put on it.

    ``grades["shots"][clip_id]`` becomes that clip's grade, else
    ``grades["sections"][label]`` the grade of every clip of that section (its
    ``metadata.section``); ``grades["global"]`` becomes the effects track's grade.  Each
    grade is a whole ``ColorGrader.to_dict()`` (what the panel previewed), so a clip's
    grade replaces the global one on its frames, as everywhere in the document.

    Raises
    ------
    ParameterError
        A grade that does not parse (its name says which).
    """
    if not grades:
        return document
    import dataclasses

    _check_grades(grades)
    shots = dict(grades.get("shots") or {})
    sections = dict(grades.get("sections") or {})
    overall = grades.get("global")
    tracks = list(document.tracks)
    for t, track in enumerate(tracks):
        if track.kind != "video":
            continue
        items = []
        for clip in track.items:
            grade = shots.get(clip.clip_id)
            if grade is None:
                grade = sections.get(str(clip.metadata.get("section", "")))
            items.append(clip if grade is None else dataclasses.replace(clip, grade=dict(grade)))
        tracks[t] = dataclasses.replace(track, items=tuple(items))
    if overall is not None:
        clips = document.video_clips
        effect = Effect(
            effect_id="grade",
            kind="grade",
            start=clips[0].start,
            end=clips[-1].end,
            parameters=dict(overall),
        )
        for t, track in enumerate(tracks):
            if track.kind == "effects":
                kept = [e for e in track.items if not (isinstance(e, Effect) and e.kind == "grade")]
                tracks[t] = dataclasses.replace(track, items=(*kept, effect))
                break
        else:
            tracks.append(Track(name="FX", kind="effects", items=(effect,)))
    return dataclasses.replace(document, tracks=tuple(tracks))


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "apex-director"


def build_grader(grade_cfg: dict[str, Any]) -> Any:
    """The configured global grade, or ``None`` when it changes nothing."""
    from engine.grading.grader import ColorGrader

    grader = ColorGrader()
    grader.set_primary_correction(
        float(grade_cfg["exposure"]),
        float(grade_cfg["contrast"]),
        50.0,
        float(grade_cfg["saturation"]),
    )
    if grade_cfg["look"]:
        grader.apply_lut(str(grade_cfg["look"]), float(grade_cfg["look_strength"]))
    if grade_cfg["vignette"] > 0:
        grader.add_finishing_effect("vignette", {"amount": float(grade_cfg["vignette"])})
    if grade_cfg["grain"] > 0:
        grader.add_finishing_effect("grain", {"amount": float(grade_cfg["grain"])})
    if grader.is_identity:
        return None
    grader.prepare()
    return grader


def build_section_graders(grade_cfg: dict[str, Any], base: Any) -> dict[str, Any]:
    """A grader per section label with a look, over the global grade."""
    from engine.config.schema import parse_section_looks
    from engine.grading.grader import ColorGrader

    graders = {}
    for label, look in parse_section_looks(str(grade_cfg["section_looks"])).items():
        grader = ColorGrader()
        grader.apply_lut(look, float(grade_cfg["look_strength"]))
        graders[label] = grader if base is None else grader.over(base)
        graders[label].prepare()
    return graders


def _grade_function(grader: Any) -> Any:
    return lambda frame, index: grader.grade(frame, frame_index=index)


def frame_size(width: int, height: int, aspect: str) -> tuple[int, int]:
    """The preset's landscape size turned to ``aspect`` (9:16 portrait, 1:1 square)."""
    if aspect == "9:16":
        return height, width
    if aspect == "1:1":
        return height, height
    return width, height


def _loudness_gain(
    audio_path: AudioSource, target_lufs: float, max_duration: float
) -> tuple[float, float | None]:
    """Gain (dB) that brings the song to ``target_lufs`` without pushing peaks over -1 dBFS.

    A target of 0 means "keep the song's level": no measurement, no gain.
    """
    if target_lufs == 0.0:
        return 0.0, None
    from engine.audio.decode import decode_audio
    from engine.audio.loudness import SILENCE_LUFS, integrated_loudness

    audio = decode_audio(audio_path, max_duration=max_duration)
    measured = integrated_loudness(audio.samples, audio.sample_rate)
    if measured <= SILENCE_LUFS:
        return 0.0, measured
    peak = float(np.max(np.abs(audio.samples)))
    headroom = -1.0 - 20 * np.log10(max(peak, 1e-9))
    gain = min(target_lufs - measured, headroom)
    log.info("loudness %.1f LUFS, target %.1f: gain %+.2f dB", measured, target_lufs, gain)
    return float(gain), measured


def _render_key(
    audio_path: AudioSource,
    still_paths: list[Path],
    document: TimelineDocument,
    settings: Any,
    render_cfg: dict[str, Any],
    *,
    max_duration: float,
) -> str:
    """Hash of everything that determines the encoded segments (their folder's name)."""
    payload = json.dumps(
        {
            "v": _SEGMENT_FORMAT_VERSION,
            "engine": __version__,
            # the song's content (a file's, or an encrypted asset's clear bytes)
            "audio": source_digest(audio_path),
            "max_duration": max_duration,
            "stills": [p.name for p in still_paths],
            # The picture's tracks (the song is keyed by its content above).
            "timeline": [t for t in document.to_dict()["tracks"] if t["kind"] != "audio"],
            "settings": repr(settings),
            "render": render_cfg,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _stage(context: StageContext, name: str, timings: dict[str, float]) -> Callable[[], None]:
    context.stage = name
    context.progress(0, 1, f"{name}…")
    started = time.perf_counter()

    def done() -> None:
        timings[name] = round(time.perf_counter() - started, 3)

    return done


def _still_key(backend: ImageBackend, request: StillRequest, source: str) -> str:
    payload = json.dumps(
        {
            "v": _STILL_FORMAT_VERSION,
            "backend": backend.name,
            "backend_version": getattr(backend, "version", "1"),
            "request": {
                "prompt": request.prompt,
                "seed": request.seed,
                "w": request.width,
                "h": request.height,
                "palette": request.palette,
                "energy": round(request.energy, 4),
                "section": request.section,
                "shot": request.shot_index,
            },
            "source": source,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    ok, data = cv2.imencode(
        ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    if not ok:  # pragma: no cover - OpenCV fails only on invalid arrays
        raise MediaInputError(path, "could not encode the still as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


def _read_png(path: Path) -> np.ndarray | None:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _clip_still_request(
    clip: Any, index: int, *, width: int, height: int, fixed_palette: Any
) -> StillRequest | None:
    """The request that makes a still clip's picture again (``None``: no prompt kept)."""
    meta = clip.metadata or {}
    prompt = meta.get("prompt")
    if clip.source.kind != "still" or not prompt:
        return None
    return StillRequest(
        prompt=str(prompt),
        seed=int(meta.get("seed", index)),
        width=width,
        height=height,
        palette=fixed_palette or palette_from_prompt(str(prompt)),
        energy=float(meta.get("energy", 0.5)),
        section=str(meta.get("section", "")),
        shot_index=int(meta.get("index", index)),
    )


def _unmakeable_stills(document: TimelineDocument) -> list[str]:
    """Pictures the document names that are missing and that no prompt can make again."""
    missing = []
    for clip in document.video_clips:
        makeable = clip.source.kind == "still" and bool((clip.metadata or {}).get("prompt"))
        if makeable:
            continue
        missing.extend(p for p in clip.source.paths if not Path(p).is_file())
    return missing


def _with_stills(
    document: TimelineDocument, replaced: dict[tuple[int, int], str]
) -> TimelineDocument:
    """The document with clip ``i``'s picture ``j`` replaced by ``replaced[i, j]``."""
    if not replaced:
        return document
    import dataclasses

    tracks = list(document.tracks)
    for t, track in enumerate(tracks):
        if track.kind == "video":
            items = []
            for i, clip in enumerate(track.items):
                paths = tuple(replaced.get((i, j), p) for j, p in enumerate(clip.source.paths))
                source = dataclasses.replace(clip.source, paths=paths)
                items.append(dataclasses.replace(clip, source=source))
            tracks[t] = dataclasses.replace(track, items=tuple(items))
            break
    return dataclasses.replace(document, tracks=tuple(tracks))


def render_video(
    request: RenderRequest,
    *,
    config: dict[str, Any],
    context: StageContext | None = None,
    until: str | None = None,
    audio_source: AudioBytes | None = None,
) -> dict[str, Any]:
    """Render ``request`` and return the report (also written to ``request.json_report``).

    With ``request.timeline_path`` the video shows that edit (a saved
    :class:`TimelineDocument`: its cuts, stills, moves, transitions and grades) instead of
    a freshly planned one; its stills that are missing are made again from their clip's
    prompt and seed.  ``request.grades`` (global / sections / shots) are put over the edit
    either way (:func:`apply_grades`).

    ``until`` (``"analyse"``, ``"plan"`` or ``"generate"``) stops after that stage, its
    results cached, and returns a short summary instead: the job queue runs a render as
    one job per stage this way (engine.orchestrator.render_jobs).

    ``audio_source`` is the song's bytes when ``request.audio_path`` is a sealed asset
    of an encrypted project (the job handlers open it with the project's key): the
    song is then decoded from memory and its clear bytes are never written to disk;
    caches are keyed by its content (docs/security.md).

    Raises
    ------
    AudioInputError, MediaInputError, ParameterError
        Bad input, found before any work is done; nothing is written.
    TimelineMismatchError
        ``request.timeline_path`` is an edit of another song (found after the analysis).
    MissingStillsError
        The edit names pictures that are missing and cannot be made again.
    CancelledError
        ``context.cancel_event`` was set; nothing is written.
    AssemblyError
        Encoding failed.
    """
    context = context or StageContext()
    if until not in (None, *STAGES):
        raise ParameterError("until", until, f"one of {', '.join(STAGES)}")
    started = time.perf_counter()
    started_wall = time.time()  # files used since then are in use (cache trim)
    preset = dict(config["presets"][request.preset])
    render_cfg, planning_cfg, audio_cfg, style_cfg = (
        config["render"],
        config["planning"],
        config["audio"],
        config["style"],
    )
    max_duration = float(audio_cfg["max_duration_minutes"]) * 60.0

    # -- check everything before doing anything ------------------------------------
    audio_path = check_audio_path(request.audio_path)
    song: Path | AudioBytes = (
        audio_path if audio_source is None else check_audio_source(audio_source)
    )
    audio_info = probe_audio(song)
    output_path = check_output_path(
        request.output_path, what="output", extensions=OUTPUT_EXTENSIONS
    )
    if output_path.resolve() == audio_path.resolve():
        raise MediaInputError(output_path, "the output would overwrite the input song")
    if request.json_report is not None:
        check_output_path(request.json_report, what="report", extensions=(".json",))
    if request.otio_path is not None:
        check_output_path(request.otio_path, what="OpenTimelineIO file", extensions=(".otio",))
    if request.timeline_json is not None:
        check_output_path(request.timeline_json, what="timeline document", extensions=(".json",))
    edit: TimelineDocument | None = None
    if request.timeline_path is not None:
        edit = load_timeline(request.timeline_path)
        edit.render_plan()  # one contiguous video track, or a ParameterError naming the clip
        unmakeable = _unmakeable_stills(edit)
        if unmakeable:
            raise MissingStillsError(request.timeline_path, unmakeable)
    _check_grades(request.grades)
    backend_options: dict[str, Any] = {
        "images_dir": request.images_dir,
        "model": request.model,
        "device": request.device,
        "models_dir": Path(str(config.get("paths", {}).get("models_dir") or "models")),
        # diffusers: the starting memory level (generation.memory_strategy)
        "memory_level": str(config.get("generation", {}).get("memory_strategy") or "auto"),
    }
    if request.backend_order:
        backend = create_first_available(request.backend_order, **backend_options)
    else:
        backend = create_backend(request.backend, **backend_options)
    backend_warnings = list(getattr(backend, "warnings", []))
    grader = build_grader(config["grade"])  # a bad look fails here, before any work
    section_graders = build_section_graders(config["grade"], grader)
    # A palette from the style bible holds for every shot; otherwise each shot's
    # prompt (its section's theme) picks one.
    fixed_palette = parse_palette(style_cfg["palette"]) if style_cfg["palette"] else None
    cache_dir = Path(request.cache_dir) if request.cache_dir else default_cache_dir()
    stills_dir = cache_dir / "stills"
    stills_dir.mkdir(parents=True, exist_ok=True)
    if backend.is_draft:
        log.warning(
            "image backend %r is a DRAFT renderer (procedural, not Stable Diffusion)", backend.name
        )

    timings: dict[str, float] = {}

    # -- analyse -------------------------------------------------------------------
    done = _stage(context, "analyse", timings)
    analyzer = AudioAnalyzer(
        sample_rate=int(audio_cfg["analysis_sample_rate"]),
        max_duration=max_duration,
        sensitivity=float(audio_cfg["beat_sensitivity"]),
        fps=float(preset["fps"]),
        cache_dir=cache_dir / "analysis",
    )
    analysis = analyzer.analyze(song, progress=context.progress)
    if edit is not None:
        assert request.timeline_path is not None
        check_timeline_matches(edit, TempoMap.from_analysis(analysis), source=request.timeline_path)
    done()
    if until == "analyse":
        return {"stage": until, "duration": analysis.duration, "beats": len(analysis.beats)}

    # -- plan ----------------------------------------------------------------------
    done = _stage(context, "plan", timings)
    fps = frame_rate(float(preset["fps"]))
    if edit is not None and edit.fps != fps:
        edit = edit.retime(fps=fps)  # the preset's rate; cuts stay at their seconds
    edit_plan: RenderPlan | None = None if edit is None else edit.render_plan()
    shots: ShotList = (
        edit_plan.shots
        if edit_plan is not None
        else plan_shots(
            analysis,
            phrase_bars=int(planning_cfg["phrase_bars"]),
            min_shot_seconds=float(planning_cfg["min_shot_seconds"]),
            max_shot_seconds=float(planning_cfg["max_shot_seconds"]),
            base_prompt=str(style_cfg["prompt"]),
            seed=int(style_cfg["seed"]),
            pacing=str(planning_cfg["pacing"]),
            cut_on=str(planning_cfg["cut_on"]),
            section_transition=str(render_cfg["section_transition"]),
        )
    )
    context.progress(1, 1, f"{len(shots)} shots")
    done()
    if until == "plan":
        return {"stage": until, "shots": len(shots)}

    # -- generate ------------------------------------------------------------------
    done = _stage(context, "generate", timings)
    width, height = frame_size(int(preset["width"]), int(preset["height"]), request.aspect)
    still_paths: list[Path] = []
    reused = 0
    if edit is not None:
        # The edit's own pictures; a missing still is made again from its prompt and seed.
        replaced: dict[tuple[int, int], str] = {}
        clips = edit.video_clips
        for i, clip in enumerate(clips):
            for j, name in enumerate(clip.source.paths):
                path = Path(name)
                if path.is_file():
                    reused += 1
                    still_paths.append(path)
                    continue
                still_request = _clip_still_request(
                    clip, i, width=width, height=height, fixed_palette=fixed_palette
                )
                if still_request is None:  # checked before the render started
                    raise MissingStillsError(request.timeline_path or path, [name])
                path = stills_dir / f"{_still_key(backend, still_request, '')}.png"
                if not (path.exists() and _read_png(path) is not None):
                    log.info("making the edit's missing still %s again", name)
                    _write_png(path, backend.generate(still_request))
                replaced[i, j] = str(path.resolve())
                still_paths.append(path)
            context.progress(i + 1, len(clips), f"still {i + 1}/{len(clips)}")
        edit = _with_stills(edit, replaced)
    for shot in shots if edit is None else ():
        palette = fixed_palette or palette_from_prompt(shot.prompt)
        still_request = StillRequest(
            prompt=shot.prompt,
            seed=shot.seed,
            width=width,
            height=height,
            palette=palette,
            energy=shot.energy,
            section=shot.section,
            shot_index=shot.index,
        )
        source = ""
        if hasattr(backend, "source_for"):
            src = backend.source_for(shot.index)
            source = f"{src.resolve()}:{src.stat().st_mtime_ns}:{src.stat().st_size}"
        path = stills_dir / f"{_still_key(backend, still_request, source)}.png"
        if path.exists() and _read_png(path) is not None:
            reused += 1
        else:
            _write_png(path, backend.generate(still_request))
        still_paths.append(path)
        context.progress(
            shot.index + 1, len(shots), f"still {shot.index + 1}/{len(shots)}", preview_path=path
        )
    done()
    if until == "generate":
        return {"stage": until, "stills": [str(p) for p in still_paths], "reused": reused}

    # -- assemble ------------------------------------------------------------------
    done = _stage(context, "assemble", timings)
    # The edit as a document (tracks, moves, transitions, grades on the tempo map); the
    # frames are rendered from it, so the saved document is what the video shows.
    document = (
        edit
        if edit is not None
        else timeline_from_plan(
            shots,
            analysis,
            fps=fps,
            # absolute, so the saved document still finds its files from anywhere
            still_paths=[p.resolve() for p in still_paths],
            audio_path=audio_path.resolve(),
            motion_amount=float(render_cfg["motion_amount"]),
            beat_pulse=float(render_cfg["beat_pulse"]),
            transition_seconds=float(render_cfg["crossfade_seconds"]),
            grade=None if grader is None else grader.to_dict(),
            shot_grades={
                shot.index: section_graders[shot.section].to_dict()
                for shot in shots
                if shot.section in section_graders
            },
        )
    )
    document = apply_grades(document, request.grades)
    plan = document.render_plan()
    graders: dict[str, Any] = {}

    def grade_of(settings: Any) -> Any:
        key = json.dumps(settings, sort_keys=True)
        if key not in graders:
            from engine.grading.grader import ColorGrader

            graders[key] = ColorGrader.from_dict(settings)
            graders[key].prepare()
        return _grade_function(graders[key])

    def load_still(index: int) -> np.ndarray:
        path = Path(plan.still_paths[index])
        image = _read_png(path)
        if image is None:
            raise MediaInputError(path, "cached still vanished during the render")
        return image

    label = "procedural draft" if backend.is_draft else backend.name
    gain_db, loudness = _loudness_gain(song, float(preset["loudness_lufs"]), max_duration)
    settings = EncodeSettings.from_preset(
        preset,
        width=width,
        height=height,
        fps=fps,
        audio_gain_db=gain_db,
        metadata=(
            ("title", audio_path.stem),
            ("comment", f"APEX Director {__version__}; images: {label}; preset: {request.preset}"),
        ),
    )
    work_key = _render_key(
        song, still_paths, document, settings, render_cfg, max_duration=max_duration
    )
    style = FrameStyle(
        motion_amount=float(render_cfg["motion_amount"]),
        transition_seconds=float(render_cfg["crossfade_seconds"]),
        beat_pulse=float(render_cfg["beat_pulse"]),
        beat_times=plan.beat_times,
        grade=None if plan.grade is None else grade_of(plan.grade),
        shot_grades={index: grade_of(g) for index, g in plan.shot_grades.items()},
        motions=plan.motions,
        transitions=plan.transitions,
        image_at=plan.image_at,
    )
    stats = compose_video(
        plan.shots,
        load_still,
        output_path=output_path,
        audio_path=song,
        work_dir=cache_dir / "segments" / work_key,
        settings=settings,
        crossfade_seconds=float(render_cfg["crossfade_seconds"]),
        motion_amount=float(render_cfg["motion_amount"]),
        max_audio_duration=max_duration,
        progress=lambda d, t: context.progress(d, t, f"frame {d}/{t}"),
        style=style,
        transition_seconds=plan.transition_seconds,
    )
    done()

    report: dict[str, Any] = {
        "apex_director_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "inputs": {
            "audio": str(audio_path),
            "audio_codec": audio_info.codec,
            "audio_sample_rate": audio_info.sample_rate,
            "images_dir": str(request.images_dir) if request.images_dir else None,
            "timeline": str(request.timeline_path) if request.timeline_path else None,
        },
        "preset": {"name": request.preset, **preset},
        "backend": {
            "name": backend.name,
            "draft": backend.is_draft,
            "label": (
                "procedural draft renderer: abstract stills, NOT Stable Diffusion"
                if backend.is_draft
                else f"{backend.name}"
            ),
            "warnings": backend_warnings,
            "stills_reused_from_cache": reused,
        },
        "analysis": {
            "duration": round(analysis.duration, 4),
            "tempo": round(analysis.tempo, 3),
            "time_signature": analysis.time_signature,
            "key": analysis.key,
            "beats": len(analysis.beats),
            "downbeats": len(analysis.downbeats),
            "sections": [s.to_dict() for s in analysis.sections],
            "analyzer_version": analysis.analyzer_version,
            "warnings": list(analysis.warnings),
        },
        "shots": [s.to_dict() for s in shots],
        "planning_warnings": list(shots.warnings),
        "output": {
            "path": str(output_path),
            "width": width,
            "height": height,
            "fps": float(fps),
            "fps_exact": f"{fps.numerator}/{fps.denominator}",
            "aspect": request.aspect,
            "frames": stats.frames,
            "video_duration": round(stats.frames / float(fps), 4),
            "audio_duration": round(stats.audio.duration, 4),
            "audio_sample_rate": stats.audio.sample_rate,
            "video_codec": "hevc" if settings.codec == "libx265" else "h264",
            "pix_fmt": settings.pix_fmt,
            "audio_codec": "aac",
            "audio_gain_db": round(gain_db, 2),
            "source_loudness_lufs": None if loudness is None else round(loudness, 2),
            "segments": stats.segments,
            "segments_reused": stats.segments_reused,
        },
        "timings": {**timings, "total": round(time.perf_counter() - started, 3)},
    }
    if request.otio_path is not None:
        from engine.assembly.otio_export import build_otio_timeline, export_otio

        export_otio(
            request.otio_path,
            build_otio_timeline(
                shots,
                analysis,
                still_paths=(
                    still_paths
                    if edit is None
                    else [Path(c.source.paths[0]) for c in document.video_clips]
                ),
                audio_path=audio_path,
                fps=fps,
                transition_seconds=float(render_cfg["crossfade_seconds"]),
                name=f"{audio_path.stem} (APEX Director)",
            ),
        )
        report["output"]["otio"] = str(request.otio_path)
    if request.timeline_json is not None:
        save_timeline(request.timeline_json, document)
        report["output"]["timeline"] = str(request.timeline_json)
    qa_cfg = config.get("qa", {})
    if qa_cfg.get("enabled", True):
        # Delivery QC of the written file; a failure marks the report, the file is kept.
        from engine.qa.render_gate import render_qc

        done = _stage(context, "qa", timings)
        report["qc"] = render_qc(
            output_path,
            preset=request.preset,
            qa_cfg=qa_cfg,
            check_cancelled=context.check_cancelled,
        )
        done()
        report["timings"]["qa"] = timings["qa"]
        report["timings"]["total"] = round(time.perf_counter() - started, 3)
    cache_max_gb = float(config.get("paths", {}).get("cache_max_gb") or 0.0)
    if cache_max_gb > 0:
        trimmed = trim_cache(
            cache_dir,
            cache_max_gb,
            keep=[*still_paths, cache_dir / "segments" / work_key],
            since=started_wall,
        )
        report["cache"] = {
            "bytes": trimmed.size_after,
            "limit_bytes": trimmed.limit,
            "removed_files": len(trimmed.removed),
        }
    if request.json_report is not None:
        atomic_write_text(request.json_report, json.dumps(report, indent=2) + "\n")
    log.info(
        "rendered %s (%d frames) in %.1f s", output_path, stats.frames, report["timings"]["total"]
    )
    return report
