"""The built-in job handlers of :class:`~engine.orchestrator.orchestrator.APEXOrchestrator`.

One handler per job kind.  Each writes its output as a content-addressed artifact (the
hash of its inputs, :meth:`JobContext.artifact_path`), so a job that runs again finds
its output and does not redo it.  A job that belongs to a render (its payload has a
``render`` key, see :mod:`engine.orchestrator.render_jobs`) runs its stage of
:func:`~engine.orchestrator.render_pipeline.render_video`, whose caches make the stages
resumable.

``generate`` fails over between image backends: the payload's ``backend_order`` is
tried in order within one attempt (a backend that cannot be built or whose
``generate`` raises :class:`~engine.errors.BackendError` or
:class:`~engine.errors.GenerationError` is skipped, with a warning in the result); when
all fail, the attempt fails with a :class:`~engine.errors.BackendError` naming each,
and the queue retries it with backoff.  Each backend call takes a token of that
backend's generation rate limit.  Backends beyond the built-in ones are added with
:func:`register_backend` (the extension point tests use for failing backends).

The song of an ``analyse`` job or a render is read through
:func:`~engine.assets.asset_manager.project_audio_source`: when it is a sealed asset of
an encrypted project, its clear bytes come from the asset manager that unlocked the
project and are decoded from memory (never written to disk); a locked project fails the
job with :class:`~engine.security.errors.ProjectLockedError` (docs/security.md).

With the orchestrator's ``stage_isolation = "process"`` (the desktop app's setting) the
render stages and the analysis run in a child process of the worker
(:mod:`engine.orchestrator.stage_process`); the song's clear bytes go to it over a pipe,
in memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.assets.errors import RateLimitError
from engine.errors import (
    BackendError,
    GenerationError,
    MediaInputError,
    ParameterError,
)

if TYPE_CHECKING:
    from engine.generation.types import ImageBackend
    from engine.orchestrator.orchestrator import Handler, JobContext

__all__ = [
    "builtin_handlers",
    "register_backend",
    "registered_backends",
    "unregister_backend",
]

log = logging.getLogger(__name__)

BackendFactory = Callable[..., "ImageBackend"]
_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``name`` usable in a generate job's ``backend_order``.

    ``factory(**options)`` returns an image backend (``name``, ``is_draft``,
    ``generate(StillRequest) -> RGB uint8 array``); ``options`` are the payload's
    ``backend_options``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ParameterError("name", name, "a non-empty backend name")
    _BACKENDS[name] = factory


def unregister_backend(name: str) -> None:
    """Forget a backend added with :func:`register_backend`."""
    _BACKENDS.pop(name, None)


def registered_backends() -> list[str]:
    """The built-in backend names and those registered."""
    from engine.generation.backends import BACKEND_NAMES

    return [*BACKEND_NAMES, *sorted(set(_BACKENDS) - set(BACKEND_NAMES))]


def _create(name: str, options: dict[str, Any]) -> ImageBackend:
    factory = _BACKENDS.get(name)
    if factory is not None:
        return factory(**options)
    from engine.generation.backends import BACKEND_NAMES, create_first_available

    if name not in BACKEND_NAMES:
        raise ParameterError("backend_order", name, f"one of {registered_backends()}")
    if "images_dir" in options and options["images_dir"] is not None:
        options = {**options, "images_dir": Path(options["images_dir"])}
    # the failover helper builds (and loads) the backend, turning a failure into BackendError
    return create_first_available([name], **options)


def _json_ready(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


# -- render stages --------------------------------------------------------------------


def _render_stage(context: JobContext, stage: str | None) -> dict[str, Any]:
    from engine.assets.asset_manager import project_audio_source
    from engine.context import StageContext
    from engine.events import JobEvent, JobProgress
    from engine.orchestrator.render_jobs import request_from_payload

    request = request_from_payload(context.payload["render"])
    source = project_audio_source(context.project, request.audio_path)
    order = ("analyse", "plan", "generate", "assemble")
    mine = order.index(stage or "assemble")

    def sink(event: JobEvent) -> None:
        # each stage job passes through the stages before it (from their caches): only
        # its own stage's progress is news
        if isinstance(event, JobProgress) and event.stage in order[:mine]:
            return
        context.stage.sink(event)

    stage_context = StageContext(
        job_id=context.job.id,
        sink=sink,
        cancel_event=context.stage.cancel_event,
        logger=context.stage.logger,
        stage=order[mine],
    )
    kwargs = {
        "request": request,
        "config": context.payload["config"],
        "until": stage,
        "audio_source": None if isinstance(source, Path) else source,
    }
    return _run_stage_function(context, "render_stage", kwargs, stage_context)


def _run_stage_function(
    context: JobContext, name: str, kwargs: dict[str, Any], stage_context: Any
) -> Any:
    """Call the function ``name`` of :mod:`engine.orchestrator.stage_process` here, or in
    this worker's child process when ``stage_isolation`` is ``"process"``: the same code
    either way."""
    processes = context.orchestrator.stage_processes
    if processes is not None:
        return processes.run(f"engine.orchestrator.stage_process:{name}", kwargs, stage_context)
    from engine.orchestrator import stage_process

    return getattr(stage_process, name)(stage_context=stage_context, **kwargs)


# -- the handlers ---------------------------------------------------------------------


def _analyse(context: JobContext) -> dict[str, Any]:
    """``{"audio_path", "sensitivity"?}`` → the analysis as a JSON artifact."""
    if "render" in context.payload:
        return _render_stage(context, "analyse")
    from engine.assets.asset_manager import project_audio_source
    from engine.audio.decode import check_audio_path, check_audio_source, source_digest

    path = check_audio_path(Path(str(context.payload.get("audio_path", ""))))
    # a sealed song (encrypted project) is opened in memory with the project's key
    audio = check_audio_source(project_audio_source(context.project, path))
    sensitivity = float(context.payload.get("sensitivity", 0.5))
    inputs = {"audio": source_digest(audio), "sensitivity": sensitivity}
    target = context.artifact_path("json", inputs)
    with context.making(target):
        if target.exists():
            return {"artifact": str(target), "reused": True}
        kwargs = {
            "audio": audio,
            "sensitivity": sensitivity,
            "cache_dir": context.project.cache_dir / "analysis",
            "target": target,
        }
        done = _run_stage_function(context, "analyse_audio", kwargs, context.stage)
    return {"artifact": str(target), "reused": False, "tempo": done["tempo"]}


def _plan(context: JobContext) -> dict[str, Any]:
    if "render" in context.payload:
        return _render_stage(context, "plan")
    raise ParameterError(
        "plan job payload", sorted(context.payload), "a render's payload (submit a render)"
    )


def _generate(context: JobContext) -> dict[str, Any]:
    """``{"prompt", "seed", "width", "height", "backend_order", ...}`` → a PNG artifact."""
    if "render" in context.payload:
        return _render_stage(context, "generate")
    from engine.generation.palette import palette_from_prompt
    from engine.generation.types import StillRequest
    from engine.orchestrator.render_pipeline import _read_png, _write_png

    payload = context.payload
    order = list(payload.get("backend_order") or ["procedural"])
    prompt = str(payload.get("prompt", ""))
    request = StillRequest(
        prompt=prompt,
        seed=int(payload.get("seed", 0)),
        width=int(payload.get("width", 512)),
        height=int(payload.get("height", 512)),
        palette=palette_from_prompt(prompt),
        energy=float(payload.get("energy", 0.5)),
        section=str(payload.get("section", "")),
        shot_index=int(payload.get("shot_index", 0)),
    )
    options = dict(payload.get("backend_options") or {})
    failures: list[str] = []
    limited: RateLimitError | None = None
    for name in order:
        inputs = {k: v for k, v in payload.items() if k != "backend_order"} | {"backend": name}
        target = context.artifact_path("png", inputs)
        if target.exists() and _read_png(target) is not None:
            return {"artifact": str(target), "backend": name, "reused": True, "skipped": failures}
        context.stage.check_cancelled()
        try:
            context.acquire_generation(name)
        except RateLimitError as err:
            limited = limited or err
            continue
        try:
            backend = _create(name, options)
            image = backend.generate(request)
        except (BackendError, GenerationError) as err:
            failures.append(f"{name}: {err}")
            log.warning(
                "backend %s failed (%s)%s",
                name,
                err,
                "; trying the next" if name != order[-1] else "",
            )
            continue
        _write_png(target, image)
        context.stage.progress(1, 1, f"still by {name}", preview_path=target)
        return {
            "artifact": str(target),
            "backend": name,
            "draft": bool(getattr(backend, "is_draft", False)),
            "reused": False,
            "skipped": failures,
        }
    if limited is not None:  # a backend that may work once its limit allows: wait for it
        raise limited
    raise BackendError(
        "every image backend failed: " + "; ".join(failures),
        backend_name=",".join(order),
    )


def _upscale(context: JobContext) -> dict[str, Any]:
    """``{"source", "preset"?, "scale"?}`` → the upscaled PNG as an artifact."""
    from engine.audio.cache import file_digest
    from engine.generation.upscale.upscaler import upscale_file

    source = Path(str(context.payload.get("source", "")))
    if not source.is_file():
        raise MediaInputError(source, "the image to upscale is not there")
    preset = str(context.payload.get("preset", "web"))
    options = dict(context.payload.get("options") or {})
    inputs = {"source": file_digest(source), "preset": preset, "options": options}
    target = context.artifact_path("png", inputs)
    with context.making(target):
        if target.exists():
            return {"artifact": str(target), "reused": True}
        info = upscale_file(source, target, preset, **options)
    return {"artifact": str(target), "reused": False, "info": _json_ready(info)}


def _assemble(context: JobContext) -> dict[str, Any]:
    if "render" in context.payload:
        return _render_stage(context, None)
    raise ParameterError(
        "assemble job payload", sorted(context.payload), "a render's payload (submit a render)"
    )


def _qa(context: JobContext) -> dict[str, Any]:
    """``{"video_path", "full_decode"?}``: the video opens, has frames (and audio); else a
    failure.

    ``full_decode`` (the default for a job of its own) decodes every frame.  A render's
    QA job instead compares the file with the assemble job's report: frame count in the
    container, an audio stream, the first frame decodes (the render's own QC already
    looked at its pictures).
    """
    from engine.errors import AssemblyError

    path = Path(str(context.payload.get("video_path", "")))
    expected_frames: int | None = None
    full = bool(context.payload.get("full_decode", True))
    if "render" in context.payload:
        path = Path(context.payload["render"]["output_path"])
        full = False
        for dependency in context.job.depends_on:
            report = context.orchestrator.queue.get(dependency).result or {}
            expected_frames = (report.get("output") or {}).get("frames", expected_frames)
    if not path.is_file():
        raise MediaInputError(path, "the video to check is not there")
    import av

    def failed(message: str) -> AssemblyError:
        return AssemblyError(f"{path} {message}", component="qa", stage="qa")

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise failed("has no video stream")
            video = container.streams.video[0]
            has_audio = bool(container.streams.audio)
            size = (video.codec_context.width, video.codec_context.height)
            frames = 0
            for _ in container.decode(video=0):
                frames += 1
                if not full:
                    break
                if frames % 50 == 0:
                    context.stage.check_cancelled()
            if not full:
                frames = int(video.frames) if frames else 0
    except av.FFmpegError as err:
        raise failed(f"does not decode: {err}") from err
    if frames == 0:
        raise failed("has no frames")
    if expected_frames is not None:
        if frames != expected_frames:
            raise failed(f"has {frames} frames; the render wrote {expected_frames}")
        if not has_audio:
            raise failed("has no audio stream")
    return {"video": str(path), "frames": frames, "audio": has_audio, "size": list(size)}


def _render(context: JobContext) -> dict[str, Any]:
    """The last job of a render chain: the assemble job's report and the QA result."""
    queue = context.orchestrator.queue
    results = {}
    for dependency in context.job.depends_on:
        job = queue.get(dependency)
        results[job.kind] = job.result
    report = results.get("assemble") or {}
    return {"report": report, "qa": results.get("qa")}


def builtin_handlers() -> dict[str, Handler]:
    """The handler of every built-in job kind."""
    return {
        "analyse": _analyse,
        "plan": _plan,
        "generate": _generate,
        "upscale": _upscale,
        "assemble": _assemble,
        "qa": _qa,
        "render": _render,
    }
