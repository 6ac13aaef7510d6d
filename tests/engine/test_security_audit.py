"""Every operation that writes in a project leaves an audit_log row (who, what, target, when)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from engine.orchestrator.facade import APEXDirector
from engine.security.api_keys import ApiKeyStore


def _log(project_dir: Path) -> list[tuple[str, str, str, float]]:
    with sqlite3.connect(project_dir / "apex.db") as db:
        return db.execute(
            "SELECT actor, action, target, timestamp FROM audit_log ORDER BY id"
        ).fetchall()


def test_each_write_operation_is_audited(tmp_path: Path) -> None:
    started = time.time()
    with APEXDirector(tmp_path) as director:
        assets = director.get_asset_manager()
        orchestrator = director.get_orchestrator()  # creates the default project
        project = assets.project()
        stored = assets.store_asset({"content": b"hello", "extension": "txt"})
        assets.update_asset_metadata(stored, {"description": "greeting"})
        assets.cleanup_temp_files()
        project.update(settings={"preset": "web"})
        project.save()
        project.backup()
        orchestrator.register_handler("tick", lambda context: {})
        job = asyncio.run(orchestrator.submit_job({"kind": "tick"}))
        assert asyncio.run(orchestrator.cancel_job(job))
        asyncio.run(orchestrator.retry_job(job))
        checkpoint = asyncio.run(orchestrator.create_checkpoint("before"))
        assert asyncio.run(orchestrator.restore_from_checkpoint(checkpoint))
        keys = ApiKeyStore(project)
        key_id, _ = keys.create("ci", "read")
        keys.revoke(key_id)
        project_dir = project.path
    rows = _log(project_dir)
    actions = [action for _, action, _, _ in rows]
    expected = [
        "project.created",
        "asset.store",
        "asset.update",
        "asset.cleanup",
        "project.save",
        "project.backup",
        "job.submit",
        "job.cancel",
        "job.retry",
        "checkpoint.create",
        "checkpoint.restore",
        "key.create",
        "key.revoke",
    ]
    positions = [actions.index(action) for action in expected]
    assert positions == sorted(positions), actions  # each present, in the order done
    targets = {action: target for _, action, target, _ in rows}
    assert targets["job.cancel"] == job and targets["job.retry"] == job
    assert targets["checkpoint.restore"] == checkpoint and targets["key.revoke"] == key_id
    assert all(actor == "local" for actor, _, _, _ in rows)
    assert all(started - 1 <= when <= time.time() + 1 for _, _, _, when in rows)
