"""API keys: hashed storage, levels read < write < execute < admin, enforcement, audit actor."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.assets.project import Project
from engine.orchestrator.facade import APEXDirector
from engine.security.api_keys import (
    ApiKeyStore,
    InvalidApiKeyError,
    Permission,
    PermissionDeniedError,
)


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A workspace whose default project has one key of each level."""
    tokens: dict[str, str] = {}
    with Project.create(tmp_path / "default") as project:
        store = ApiKeyStore(project)
        for level in ("read", "write", "execute", "admin"):
            tokens[level] = store.create(f"{level} key", level)[1]
    return tmp_path, tokens


def test_secret_is_stored_hashed_only(workspace: tuple[Path, dict[str, str]]) -> None:
    root, tokens = workspace
    with sqlite3.connect(root / "default" / "apex.db") as db:
        rows = db.execute("SELECT id, salt, hash FROM api_key").fetchall()
    assert len(rows) == 4
    raw = (root / "default" / "apex.db").read_bytes()
    for token in tokens.values():
        secret = token.split("_", 2)[2]
        assert secret.encode() not in raw
    assert all(len(salt) == 16 and len(digest) == 32 for _, salt, digest in rows)


def test_validate_credentials_levels_and_bad_keys(
    workspace: tuple[Path, dict[str, str]],
) -> None:
    root, tokens = workspace
    for level, token in tokens.items():
        with APEXDirector(root, api_key=token) as director:
            assert director.validate_credentials()["level"] == level
    assert Permission.READ < Permission.WRITE < Permission.EXECUTE < Permission.ADMIN
    with APEXDirector(root) as director:
        assert director.validate_credentials() == {"key_id": "local", "level": "admin"}
    wrong = tokens["admin"][:-4] + ("AAAA" if not tokens["admin"].endswith("AAAA") else "BBBB")
    for bad in ("nonsense", wrong, "apx_0123456789abcdef_" + "A" * 43):
        with pytest.raises(InvalidApiKeyError), APEXDirector(root, api_key=bad) as director:
            director.validate_credentials()


def test_orchestrator_and_assets_enforce_levels(workspace: tuple[Path, dict[str, str]]) -> None:
    root, tokens = workspace
    with APEXDirector(root, api_key=tokens["read"]) as director:
        assets = director.get_asset_manager()
        with pytest.raises(PermissionDeniedError) as info:
            assets.store_asset({"content": b"x"})
        assert info.value.needed is Permission.WRITE and "store_asset" in str(info.value)
        orchestrator = director.get_orchestrator()
        orchestrator.register_handler("tick", lambda context: {})
        with pytest.raises(PermissionDeniedError, match="submit_job needs the execute"):
            asyncio.run(orchestrator.submit_job({"kind": "tick"}))
    with APEXDirector(root, api_key=tokens["write"]) as director:
        path = director.get_asset_manager().store_asset({"content": b"written"})
        assert director.get_asset_manager().read_asset_bytes(path) == b"written"
        orchestrator = director.get_orchestrator()
        orchestrator.register_handler("tick", lambda context: {})
        with pytest.raises(PermissionDeniedError):
            asyncio.run(orchestrator.submit_job({"kind": "tick"}))
    with APEXDirector(root, api_key=tokens["execute"]) as director:
        orchestrator = director.get_orchestrator()
        orchestrator.register_handler("tick", lambda context: {})
        job_id = asyncio.run(orchestrator.submit_job({"kind": "tick"}))
        with pytest.raises(PermissionDeniedError, match="admin"):
            director.get_asset_manager().encrypt_project("pass phrase")
    with sqlite3.connect(root / "default" / "apex.db") as db:
        actor = db.execute(
            "SELECT actor FROM audit_log WHERE action = 'job.submit' AND target = ?", (job_id,)
        ).fetchone()[0]
        execute_id = tokens["execute"].split("_")[1]
        assert actor == execute_id


def test_revoked_key_is_refused(workspace: tuple[Path, dict[str, str]]) -> None:
    root, tokens = workspace
    key_id = tokens["write"].split("_")[1]
    with Project.open(root / "default") as project:
        store = ApiKeyStore(project)
        assert store.revoke(key_id) is True
        assert store.revoke(key_id) is False
        listed = {row["id"]: row for row in store.list()}
        assert listed[key_id]["revoked_at"] is not None
    with pytest.raises(InvalidApiKeyError, match="revoked"):
        APEXDirector(root, api_key=tokens["write"]).validate_credentials()


def test_cli_keys_create_list_revoke(tmp_path: Path) -> None:
    Project.create(tmp_path / "p").close()
    cli = [sys.executable, "-m", "engine.cli", "keys"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args], check=False, capture_output=True, text=True, timeout=60
        )

    made = run("create", str(tmp_path / "p"), "--name", "ci", "--level", "execute")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("apx_")
    key_id = token.split("_")[1]
    listed = run("list", str(tmp_path / "p"))
    assert key_id in listed.stdout and "execute" in listed.stdout and token not in listed.stdout
    assert run("revoke", str(tmp_path / "p"), key_id).returncode == 0
    assert "revoked" in run("list", str(tmp_path / "p")).stdout
    assert run("create", str(tmp_path / "p"), "--level", "root").returncode == 2
