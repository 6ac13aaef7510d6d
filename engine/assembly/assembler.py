"""``VideoAssembler`` and ``AssemblyJob``: assemble a video from your own timed images.

The API reference's assembly interface.  A job names the song, the output and an
image sequence (each image with its start and end in seconds); transitions, motion
effects and the colour grade are added on the assembler before the job runs.  The
``offline`` mode encodes the final video (resumably, in segments); the ``realtime``
mode returns a :class:`~engine.assembly.frame_server.FrameServer` for previews.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.assembly.frame_renderer import FrameStyle
from engine.assembly.motion import MOTION_KINDS, MotionSpec
from engine.assembly.transitions import TRANSITIONS, TransitionSpec
from engine.errors import AssemblyError, MediaInputError, ParameterError
from engine.planning.shots import Shot, ShotList

__all__ = ["ASSEMBLY_MODES", "QUALITY_MODES", "AssemblyJob", "VideoAssembler"]

log = logging.getLogger(__name__)

QUALITY_MODES = ("draft", "web", "high", "broadcast", "cinema")
ASSEMBLY_MODES = ("offline", "realtime")
MOTION_EFFECTS = (*MOTION_KINDS, "shake", "beat_pulse")


@dataclass
class AssemblyJob:
    """One assembly: the song, the output, and the images with their times.

    ``image_sequence`` entries are dictionaries with ``image_path`` and, optionally,
    ``start`` and ``end`` (seconds; without them the images share the song evenly),
    ``transition`` (the transition into this image) and ``motion`` (its camera move).
    """

    job_id: str
    audio_path: Path
    output_path: Path
    image_sequence: list[dict[str, Any]]
    quality_mode: str = "high"
    assembly_mode: str = "offline"

    def __post_init__(self) -> None:
        self.audio_path = Path(self.audio_path)
        self.output_path = Path(self.output_path)
        if self.quality_mode not in QUALITY_MODES:
            raise ParameterError(
                "quality_mode", self.quality_mode, f"one of {', '.join(QUALITY_MODES)}"
            )
        if self.assembly_mode not in ASSEMBLY_MODES:
            raise ParameterError(
                "assembly_mode", self.assembly_mode, f"one of {', '.join(ASSEMBLY_MODES)}"
            )
        if not self.image_sequence:
            raise ParameterError("image_sequence", self.image_sequence, "at least one image")
        for position, entry in enumerate(self.image_sequence):
            if "image_path" not in entry:
                raise ParameterError(
                    f"image_sequence[{position}]", entry, "a dictionary with an 'image_path'"
                )


@dataclass
class _Pending:
    transitions: dict[str, tuple[str, float, float, dict[str, Any]]] = field(default_factory=dict)
    motions: dict[str, tuple[str, float, float, dict[str, Any]]] = field(default_factory=dict)


class VideoAssembler:
    """Assembles videos from timed images.

    Parameters
    ----------
    base_dir : Path
        Working folder (segments of unfinished renders live under ``assembly/``).
    config : dict, optional
        A full configuration (see :class:`~engine.config.ConfigManager`); defaults
        when omitted.
    """

    def __init__(self, base_dir: Path, config: dict[str, Any] | None = None) -> None:
        from engine.config import ConfigManager
        from engine.grading.grader import ColorGrader

        self.base_dir = Path(base_dir)
        self.config = config or ConfigManager().config
        self.grader = ColorGrader()
        self._pending = _Pending()
        self.preview_size = (640, 360)

    # -- edits ------------------------------------------------------------------------
    def add_transition(
        self,
        transition_type: str,
        start_time: float,
        end_time: float,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        """Add a transition over ``start_time``..``end_time`` (seconds).

        It applies to the cut nearest the middle of that span; its length is the span.
        ``parameters`` go to :class:`~engine.assembly.transitions.TransitionSpec`
        (``direction``, ``easing``, ``blur``).  Returns the transition's id.
        """
        if transition_type not in TRANSITIONS:
            raise ParameterError(
                "transition_type", transition_type, f"one of {', '.join(TRANSITIONS)}"
            )
        if not 0 <= start_time < end_time:
            raise ParameterError("end_time", end_time, f"a time after start_time={start_time}")
        params = dict(parameters or {})
        TransitionSpec(kind=transition_type, duration_seconds=end_time - start_time, **params)
        transition_id = f"transition-{uuid.uuid4().hex[:8]}"
        self._pending.transitions[transition_id] = (transition_type, start_time, end_time, params)
        return transition_id

    def add_motion_effect(
        self, effect_type: str, start_time: float, end_time: float, parameters: dict[str, Any]
    ) -> str:
        """Give the shots that overlap ``start_time``..``end_time`` a camera move.

        ``effect_type`` is a move (``ken_burns``, ``zoom_in``, ``pan_left``...) or
        ``shake`` / ``beat_pulse`` (added to each shot's own move).  ``parameters`` go to
        :class:`~engine.assembly.motion.MotionSpec`; ``beat_pulse`` also takes
        ``beat_times`` (seconds).  Returns the effect's id.
        """
        if effect_type not in MOTION_EFFECTS:
            raise ParameterError("effect_type", effect_type, f"one of {', '.join(MOTION_EFFECTS)}")
        if not 0 <= start_time < end_time:
            raise ParameterError("end_time", end_time, f"a time after start_time={start_time}")
        params = dict(parameters)
        beats = params.pop("beat_times", None) if effect_type == "beat_pulse" else None
        _motion_spec(effect_type, "zoom_in", params)  # validates now, not at render time
        if beats is not None:
            params["beat_times"] = tuple(float(b) for b in beats)
        effect_id = f"motion-{uuid.uuid4().hex[:8]}"
        self._pending.motions[effect_id] = (effect_type, start_time, end_time, params)
        return effect_id

    def apply_color_grade(self, stage: int, corrections: dict[str, Any]) -> bool:
        """Set grading stage 1-4 (see :meth:`ColorGrader.apply_stage`) for every frame."""
        return self.grader.apply_stage(stage, corrections)

    # -- running ------------------------------------------------------------------------
    async def assemble_video(self, job: AssemblyJob) -> dict[str, Any]:
        """Run ``job`` in a worker thread; see :meth:`assemble` for the result."""
        return await asyncio.to_thread(self.assemble, job)

    def assemble(self, job: AssemblyJob) -> dict[str, Any]:
        """Assemble ``job`` synchronously.

        Returns
        -------
        dict
            ``offline``: ``success``, ``job_id``, ``output_path``, ``frames``, ``fps``,
            ``duration``, ``width``, ``height``, ``segments``, ``segments_reused``.
            ``realtime``: ``success``, ``job_id``, ``frame_server``, ``frame_count``.

        Raises
        ------
        AudioInputError, MediaInputError, ParameterError
            Bad input, found before any work.
        AssemblyError
            Encoding failed.
        """
        from engine.assembly.compose import compose_video
        from engine.assembly.encoder import EncodeSettings
        from engine.assembly.frame_server import FrameServer
        from engine.audio.decode import check_audio_path, probe_audio
        from engine.config.schema import frame_rate
        from engine.generation.stills import cover_crop, read_rgb
        from engine.output_paths import check_output_path

        audio_path = check_audio_path(job.audio_path)
        duration = probe_audio(audio_path).duration
        if job.assembly_mode == "offline":
            check_output_path(job.output_path, what="output", extensions=(".mp4", ".m4v", ".mov"))
        images = [Path(e["image_path"]) for e in job.image_sequence]
        for path in images:
            if read_rgb(path) is None:
                raise MediaInputError(path, "is missing or not a readable image")
        shots, transition_seconds, style = self._plan(job, duration)
        preset = self.config["presets"][job.quality_mode]
        if job.assembly_mode == "realtime":
            server = FrameServer(
                shots,
                lambda i: read_rgb(images[i]),
                fps=float(frame_rate(preset["fps"])),
                width=self.preview_size[0],
                height=self.preview_size[1],
                style=style,
                transition_seconds=transition_seconds,
            )
            return {
                "success": True,
                "job_id": job.job_id,
                "frame_server": server,
                "frame_count": server.frame_count,
            }

        width, height = int(preset["width"]), int(preset["height"])

        def load(index: int) -> np.ndarray:
            image = read_rgb(images[index])
            if image is None:
                raise MediaInputError(images[index], "changed or vanished during assembly")
            return cover_crop(image, width, height)

        settings = EncodeSettings.from_preset(
            preset, width=width, height=height, fps=frame_rate(preset["fps"])
        )
        key = hashlib.sha256(
            repr((job, shots.to_dict(), settings, self.grader.to_dict(), self._pending)).encode()
        ).hexdigest()[:24]
        try:
            stats = compose_video(
                shots,
                load,
                output_path=job.output_path,
                audio_path=audio_path,
                work_dir=self.base_dir / "assembly" / key,
                settings=settings,
                crossfade_seconds=style.transition_seconds,
                motion_amount=style.motion_amount,
                style=style,
                transition_seconds=transition_seconds,
            )
        except (OSError, ValueError) as err:
            if isinstance(err, ParameterError | MediaInputError):
                raise
            raise AssemblyError(
                str(err), job_id=job.job_id, component="compose", stage="encode"
            ) from err
        return {
            "success": True,
            "job_id": job.job_id,
            "output_path": str(job.output_path),
            "frames": stats.frames,
            "fps": float(settings.fps),
            "duration": stats.frames / float(settings.fps),
            "width": width,
            "height": height,
            "segments": stats.segments,
            "segments_reused": stats.segments_reused,
        }

    def _plan(
        self, job: AssemblyJob, duration: float
    ) -> tuple[ShotList, dict[int, float], FrameStyle]:
        entries = job.image_sequence
        count = len(entries)
        starts = [float(e.get("start", duration * i / count)) for i, e in enumerate(entries)]
        order = sorted(range(count), key=lambda i: starts[i])
        shots: list[Shot] = []
        for position, i in enumerate(order):
            entry = entries[i]
            start = 0.0 if position == 0 else starts[i]
            end = starts[order[position + 1]] if position + 1 < count else duration
            if end <= start:
                raise ParameterError(
                    f"image_sequence[{i}].start", starts[i], "times that increase, inside the song"
                )
            shots.append(
                Shot(
                    index=position,
                    start=start,
                    end=end,
                    start_bar=0,
                    start_beat=0,
                    section=str(entry.get("section", "")),
                    section_index=0,
                    energy=0.5,
                    prompt=str(entry.get("prompt", Path(entry["image_path"]).name)),
                    seed=position,
                    transition_in=str(entry.get("transition", "cut")),
                    motion=str(entry.get("motion", "zoom_in")),
                )
            )
        transitions: dict[int, TransitionSpec] = {}
        lengths: dict[int, float] = {}
        for kind, t0, t1, params in self._pending.transitions.values():
            middle = (t0 + t1) / 2
            index = min(
                range(1, len(shots)), key=lambda k: abs(shots[k].start - middle), default=None
            )
            if index is None:
                continue
            shots[index] = dataclasses.replace(shots[index], transition_in=kind)
            transitions[index] = TransitionSpec(kind=kind, duration_seconds=t1 - t0, **params)
            lengths[index] = t1 - t0
        motions: dict[int, MotionSpec] = {}
        beat_times: tuple[float, ...] = ()
        for kind, t0, t1, stored in self._pending.motions.values():
            params = dict(stored)
            beat_times = params.pop("beat_times", beat_times)
            for shot in shots:
                if shot.start < t1 and shot.end > t0:
                    base = motions.get(shot.index)
                    motions[shot.index] = _motion_spec(kind, shot.motion, params, base)
        render_cfg = self.config["render"]
        style = FrameStyle(
            motion_amount=float(render_cfg["motion_amount"]),
            transition_seconds=float(render_cfg["crossfade_seconds"]),
            beat_times=beat_times,
            motions=motions,
            transitions=transitions,
            grade=None
            if self.grader.is_identity
            else (lambda frame, index: self.grader.grade(frame, frame_index=index)),
        )
        shot_list = ShotList(shots=tuple(shots), duration=duration, tempo=0.0)
        return shot_list, lengths, style


def _motion_spec(
    effect: str, shot_motion: str, params: dict[str, Any], base: MotionSpec | None = None
) -> MotionSpec:
    """A move for ``effect``: a kind of its own, or shake/pulse on top of the shot's move."""
    if effect in MOTION_KINDS:
        return MotionSpec(kind=effect, **params)
    start = dataclasses.asdict(base) if base is not None else {"kind": shot_motion}
    if effect == "shake":
        return MotionSpec(**{**start, "shake": params.get("shake", 12.0), **params})
    return MotionSpec(
        **{**start, "pulse": params.get("pulse", 0.03), "pulse_source": "beats", **params}
    )
