"""A render as a chain of jobs in a project, resumable after a crash or SIGKILL.

A render is six jobs, each depending on the one before::

    analyse → plan → generate (GPU worker) → assemble → qa → render

Their ids derive from the render's inputs (``render-<hash>-<stage>``), so running the
same render again finds its jobs: the finished ones are not run again, the one a killed
process was running is queued again (:meth:`JobQueue.recover_interrupted`), and each
stage resumes from its content-addressed caches (the analysis, the stills, the encoded
segments: :func:`~engine.orchestrator.render_pipeline.render_video`).  A stage job
quarantined after two crashes is queued again when the user runs the render again:
that is an explicit request to try once more.

:func:`run_render` is what ``apex-director render`` calls.  Without a project it uses
one in the cache folder, named after the render, and deletes it when the render
succeeded.  An encrypted project is opened through an
:class:`~engine.assets.asset_manager.AssetManager` and unlocked with the passphrase
given (or its OS keyring key), so the jobs read its sealed song in memory
(docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import APEXDirectorError, UserInputError
from engine.events import EventSink
from engine.orchestrator.job_queue import CANCELLED, FAILED, QUARANTINED, SUCCEEDED

if TYPE_CHECKING:
    from engine.orchestrator.orchestrator import APEXOrchestrator
    from engine.orchestrator.render_pipeline import RenderRequest

__all__ = [
    "RENDER_STAGES",
    "needs_passphrase",
    "render_id",
    "render_job_ids",
    "render_job_requests",
    "request_from_payload",
    "request_to_payload",
    "run_render",
]

log = logging.getLogger(__name__)

RENDER_STAGES = ("analyse", "plan", "generate", "assemble", "qa", "render")
_PATH_FIELDS = (
    "audio_path",
    "output_path",
    "images_dir",
    "json_report",
    "otio_path",
    "timeline_json",
    "cache_dir",
    "timeline_path",
)


def request_to_payload(request: RenderRequest) -> dict[str, Any]:
    """The request as JSON-ready data (paths absolute, as text)."""
    data = dataclasses.asdict(request)
    for name in _PATH_FIELDS:
        if data.get(name) is not None:
            data[name] = str(Path(data[name]).expanduser().absolute())
    data["backend_order"] = list(request.backend_order)
    return data


def request_from_payload(data: dict[str, Any]) -> RenderRequest:
    """The inverse of :func:`request_to_payload`."""
    from engine.orchestrator.render_pipeline import RenderRequest

    values = dict(data)
    for name in _PATH_FIELDS:
        if values.get(name) is not None:
            values[name] = Path(values[name])
    values["backend_order"] = tuple(values.get("backend_order") or ())
    return RenderRequest(**values)


def _config_payload(config: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(config, default=str))


def render_id(request: RenderRequest, config: dict[str, Any]) -> str:
    """A short hash of everything the render depends on (its jobs' ids start with it).

    A rendered edit (``request.timeline_path``) counts by its content: the same file
    edited again is a new render.
    """
    edit = ""
    if request.timeline_path is not None:
        with contextlib.suppress(OSError):  # a missing file fails in the render's checks
            edit = hashlib.sha256(Path(request.timeline_path).read_bytes()).hexdigest()
    text = json.dumps(
        {"request": request_to_payload(request), "config": _config_payload(config), "edit": edit},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_job_ids(rid: str) -> dict[str, str]:
    """The job id of each stage of render ``rid``."""
    return {stage: f"render-{rid}-{stage}" for stage in RENDER_STAGES}


def render_job_requests(
    request: RenderRequest, config: dict[str, Any], rid: str, *, priority: int = 0
) -> list[dict[str, Any]]:
    """The job requests of one render (for :meth:`APEXOrchestrator.submit_batch`)."""
    ids = render_job_ids(rid)
    payload = {"render": request_to_payload(request), "config": _config_payload(config)}
    requests = []
    previous: list[str] = []
    for stage in RENDER_STAGES:
        requests.append(
            {
                "id": ids[stage],
                "kind": stage,
                "payload": {} if stage == "render" else payload,
                "priority": priority,
                "depends_on": [ids["assemble"], ids["qa"]] if stage == "render" else previous,
            }
        )
        previous = [ids[stage]]
    return requests


async def prepare_render(
    orchestrator: APEXOrchestrator, request: RenderRequest, config: dict[str, Any]
) -> str:
    """Submit the render's jobs, or pick up those of an earlier run; returns the id of
    its last (``render``) job."""
    base = render_id(request, config)
    for generation in range(1, 1000):
        rid = base if generation == 1 else f"{base}-{generation}"
        ids = render_job_ids(rid)
        states = await asyncio.to_thread(orchestrator.queue.states, list(ids.values()))
        if not states:
            await orchestrator.submit_batch(render_job_requests(request, config, rid))
            return ids["render"]
        if states.get(ids["render"]) == SUCCEEDED:
            if Path(request.output_path).exists():
                return ids["render"]
            continue  # the video was deleted since: render it again, as new jobs
        done = sum(state == SUCCEEDED for state in states.values())
        log.info("resuming the render in this project: %d of %d jobs done", done, len(ids))
        for stage in RENDER_STAGES:
            state = states.get(ids[stage])
            if state in (FAILED, CANCELLED, QUARANTINED):
                log.warning(
                    "render job %s was %s; running it again as you asked", ids[stage], state
                )
                await orchestrator.retry_job(ids[stage])
                break
        return ids["render"]
    raise APEXDirectorError("too many earlier runs of this render in the project")


def _root_failure(orchestrator: APEXOrchestrator, rid_job: str) -> BaseException:
    prefix = rid_job.rsplit("-", 1)[0]
    for stage in RENDER_STAGES:
        job_id = f"{prefix}-{stage}"
        job = orchestrator.queue.get(job_id)
        if job.state in (FAILED, QUARANTINED, CANCELLED):
            err = orchestrator.exception_of(job_id)
            if err is not None:
                return err
            if job.state == CANCELLED:
                from engine.errors import CancelledError

                return CancelledError(f"the render's {stage} job was cancelled")
            return APEXDirectorError(f"the render's {stage} job {job.state}: {job.error}")
    return APEXDirectorError(f"the render job {rid_job} did not succeed")


def _remove_stale_temp_files(request: RenderRequest, *, older_than: float) -> int:
    """Delete the temporary files a killed run left (atomic writes never renamed).

    Only files made before this run started, in the render's cache folders and beside
    its outputs, and named as :func:`engine.atomic_files.atomic_path` names them.  A
    concurrent render's file deleted by mistake makes its write fail with an OSError,
    which its job retries.
    """
    from engine.orchestrator.render_pipeline import default_cache_dir

    cache = Path(request.cache_dir) if request.cache_dir else default_cache_dir()
    candidates: list[Path] = []
    for folder in ("stills", "analysis", "segments"):
        if (cache / folder).is_dir():
            candidates.extend(p for p in (cache / folder).rglob(".*.tmp-*") if p.is_file())
    for output in (
        request.output_path,
        request.json_report,
        request.otio_path,
        request.timeline_json,
    ):
        if output is not None and Path(output).parent.is_dir():
            candidates.extend(Path(output).parent.glob(f".{Path(output).name}.tmp-*"))
    removed = 0
    for path in candidates:
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < older_than:
                path.unlink()
                removed += 1
    if removed:
        log.info("removed %d temporary files left by an interrupted run", removed)
    return removed


def needs_passphrase(project_dir: Path | str) -> bool:
    """Whether the project is encrypted with a passphrase (not an OS keyring key)."""
    from engine.security.crypto import project_key_kind

    return project_key_kind(project_dir) not in (None, "keyring")


def _open_encrypted(project_dir: Path, config: dict[str, Any], passphrase: str | None) -> Any:
    """An asset manager on the encrypted project, unlocked when a key is at hand.

    With no passphrase, a project whose key is in the OS keyring is unlocked from it; a
    passphrase project stays locked, and a job that must read its sealed song fails
    with :class:`~engine.security.errors.ProjectLockedError`.  A wrong passphrase fails
    here (:class:`~engine.security.errors.DecryptionError`), before any job runs.
    """
    from engine.assets.asset_manager import AssetManager

    assets = AssetManager(project_dir, config)
    try:
        if passphrase is not None or not needs_passphrase(project_dir):
            assets.unlock_project(passphrase)
        else:
            log.info("%s is encrypted and no passphrase was given: it stays locked", project_dir)
    except BaseException:
        assets.close()
        raise
    return assets


def run_render(
    request: RenderRequest,
    *,
    config: dict[str, Any],
    project_dir: Path | None = None,
    sink: EventSink | None = None,
    passphrase: str | None = None,
) -> dict[str, Any]:
    """Render ``request`` as jobs in a project; resumes an earlier, interrupted run.

    Parameters
    ----------
    project_dir : Path, optional
        The project to run in (created when the folder holds none).  Without one, a
        project under the cache folder named after the render is used and deleted
        after success.
    sink : EventSink, optional
        Receives every job event (progress bars).
    passphrase : str, optional
        The passphrase of an encrypted ``project_dir`` (a keyring project needs none).

    Returns
    -------
    dict
        The render report (as :func:`render_video` returns it).

    Raises
    ------
    UserInputError
        Bad input (the first stage's error, as the render raised it);
        :class:`~engine.security.errors.ProjectLockedError` for a locked encrypted
        project whose song is sealed; ``DecryptionError`` for a wrong passphrase.
    APEXDirectorError
        The render failed; the message names the stage.
    """
    from engine.orchestrator.engine_thread import EngineThread
    from engine.orchestrator.orchestrator import APEXOrchestrator
    from engine.orchestrator.render_pipeline import default_cache_dir
    from engine.security.crypto import is_encrypted

    run_started = time.time()
    temporary = project_dir is None
    if project_dir is None:
        cache = Path(request.cache_dir) if request.cache_dir else default_cache_dir()
        project_dir = cache / "render-projects" / render_id(request, config)
        if (project_dir / "apex.db").exists() and not (project_dir / "project.apex.json").exists():
            # killed while the project was being created: nothing in it yet, start afresh
            shutil.rmtree(project_dir, ignore_errors=True)
    elif request.cache_dir is None:
        request = dataclasses.replace(request, cache_dir=Path(project_dir) / "cache")
    failed: BaseException | None = None
    assets = None
    if not temporary and is_encrypted(project_dir):
        # the orchestrator shares the asset manager's project: its jobs find the key there
        assets = _open_encrypted(Path(project_dir), config, passphrase)
    with EngineThread() as engine:
        orchestrator = APEXOrchestrator(
            project_dir if assets is None else assets.project(), config=config
        )
        if sink is not None:
            orchestrator.subscribe(sink)
        try:
            engine.call(orchestrator.initialize())
            final = engine.call(prepare_render(orchestrator, request, config))
            engine.call(orchestrator.start())
            status = engine.call(orchestrator.wait_for(final))
        except BaseException:
            with contextlib.suppress(Exception):
                engine.call(orchestrator.stop(timeout_s=30), timeout_s=60)
            with contextlib.suppress(Exception):
                orchestrator.project.close()
            if assets is not None:
                assets.close()
            raise
        engine.call(orchestrator.stop())
        if status["state"] != SUCCEEDED:
            failed = _root_failure(orchestrator, final)
        orchestrator.project.close()
        if assets is not None:
            assets.close()
    if failed is not None:
        if temporary and isinstance(failed, UserInputError):
            shutil.rmtree(project_dir, ignore_errors=True)
        raise failed
    _remove_stale_temp_files(request, older_than=run_started)
    if temporary:
        shutil.rmtree(project_dir, ignore_errors=True)
    return dict(status["result"]["report"])
