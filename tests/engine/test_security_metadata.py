"""Encryption at rest of sensitive metadata, sealing existing assets, and the keyring path.

The keyring tests register a real in-memory ``keyring`` backend (the package's own
extension point, ``keyring.set_keyring``); they skip when ``keyring`` is not installed.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.assets.asset_manager import AssetManager
from engine.security.crypto import FIELD_PREFIX, MAGIC, SEALED_METADATA_KEY, ProjectCipher
from engine.security.errors import DecryptionError
from tests.keyrings import memory_keyring as new_memory_keyring
from tests.keyrings import using_keyring

SECRET_PROMPT = "a lighthouse keeper named Oskarsson at dawn"
SECRET_DESCRIPTION = "storyboard frame for the unreleased single"
SECRET_META = {"client": "Nordlys Records", "shot": 7}


def _rows(project_dir: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(project_dir / "apex.db") as conn:
        return conn.execute(
            "SELECT id, content_hash, description, prompt, metadata FROM asset ORDER BY id"
        ).fetchall()


def _fts_text(project_dir: Path) -> str:
    with sqlite3.connect(project_dir / "apex.db") as conn:
        rows = conn.execute("SELECT name, description, tags, prompt FROM asset_fts").fetchall()
    return " ".join(" ".join(str(v) for v in row) for row in rows)


def _store_three(manager: AssetManager) -> list[Path]:
    return [
        manager.store_asset(
            {
                "content": f"frame {i}".encode() * 50,
                "extension": "bin",
                "name": f"frame{i}",
                "description": f"{SECRET_DESCRIPTION} {i}",
                "prompt": f"{SECRET_PROMPT} {i}",
                "tags": ["storyboard"],
                "metadata": {**SECRET_META, "index": i},
            }
        )
        for i in range(3)
    ]


def test_new_metadata_is_sealed_in_the_database_and_round_trips(tmp_path: Path) -> None:
    with AssetManager(tmp_path / "ws") as manager:
        manager.create_project("enc")
        manager.encrypt_project("a long passphrase")
        path = manager.store_asset(
            {
                "content": b"x" * 100,
                "extension": "bin",
                "name": "keyframe",
                "description": SECRET_DESCRIPTION,
                "prompt": SECRET_PROMPT,
                "tags": ["night"],
                "metadata": SECRET_META,
            }
        )
        project_dir = manager.project().path
        info = manager.get_asset_metadata(path)
        assert info["description"] == SECRET_DESCRIPTION
        assert info["prompt"] == SECRET_PROMPT
        assert info["metadata"] == SECRET_META
        manager.update_asset_metadata(path, {"prompt": "new prompt", "metadata": {"shot": 8}})
        info = manager.get_asset_metadata(path)
        assert info["prompt"] == "new prompt"
        assert info["metadata"] == {**SECRET_META, "shot": 8}
        # name and tags stay searchable; the sealed fields are not in the index
        assert [p.name for p in manager.search_assets("keyframe")] == [path.name]
        assert manager.search_assets("night")
        assert manager.search_assets("lighthouse") == []
        assert manager.search_assets("unreleased") == []
    raw = (project_dir / "apex.db").read_bytes()
    for secret in (b"Oskarsson", b"new prompt", b"unreleased", b"Nordlys"):
        assert secret not in raw
    ((_, _, description, prompt, metadata),) = _rows(project_dir)
    assert description.startswith(FIELD_PREFIX) and prompt.startswith(FIELD_PREFIX)
    assert SEALED_METADATA_KEY in metadata
    assert "Oskarsson" not in _fts_text(project_dir)
    with AssetManager(tmp_path / "ws") as manager:
        manager.open_project(project_dir)
        with pytest.raises(DecryptionError, match="locked"):
            manager.get_asset_metadata(path)
        with pytest.raises(DecryptionError, match="locked"):
            manager.search_assets(metadata={"shot": 8})
        manager.unlock_project("a long passphrase")
        assert manager.search_assets(metadata={"shot": 8}) == [path]
        assert manager.get_asset_metadata(path)["metadata"] == {**SECRET_META, "shot": 8}


def test_enabling_encryption_seals_existing_assets_and_metadata(tmp_path: Path) -> None:
    with AssetManager(tmp_path / "ws") as manager:
        manager.create_project("later")
        paths = _store_three(manager)
        assert manager.search_assets("lighthouse")  # clear text is indexed before
        manager.encrypt_project("pass phrase one")
        project_dir = manager.project().path
        for i, path in enumerate(paths):
            assert path.read_bytes().startswith(MAGIC)
            assert manager.read_asset_bytes(path) == f"frame {i}".encode() * 50
            assert manager.get_asset_metadata(path)["prompt"] == f"{SECRET_PROMPT} {i}"
        assert manager.search_assets("lighthouse") == []  # prompt word
        assert manager.search_assets("unreleased") == []  # description word
        assert len(manager.search_assets("storyboard")) == 3
        # the metadata filter still works: it runs on the opened metadata
        found = manager.search_assets(metadata={"client": "Nordlys Records", "index": 1})
        assert found == [paths[1]]
        assert len(manager.search_assets("storyboard", metadata={"shot": 7}, limit=2)) == 2
        assert manager.search_assets(metadata={"client": "someone else"}) == []
    for _, _, description, prompt, metadata in _rows(project_dir):
        assert description.startswith(FIELD_PREFIX) and prompt.startswith(FIELD_PREFIX)
        assert "Nordlys" not in metadata
    assert "Oskarsson" not in _fts_text(project_dir)


def test_wrong_key_is_refused_and_nothing_is_overwritten(tmp_path: Path) -> None:
    with AssetManager(tmp_path / "ws") as manager:
        manager.create_project("enc")
        manager.encrypt_project("the right one")
        paths = _store_three(manager)
        project_dir = manager.project().path
    files_before = [p.read_bytes() for p in paths]
    rows_before = _rows(project_dir)
    with AssetManager(tmp_path / "ws") as manager:
        manager.open_project(project_dir)
        with pytest.raises(DecryptionError, match="wrong passphrase"):
            manager.unlock_project("the wrong one")
        with pytest.raises(DecryptionError, match="locked"):
            manager.update_asset_metadata(paths[0], {"prompt": "overwrite attempt"})
    assert [p.read_bytes() for p in paths] == files_before
    assert _rows(project_dir) == rows_before
    # A different key for the same blobs (the cipher level) fails the same way.
    _, digest, _, prompt, _ = rows_before[0]
    with pytest.raises(DecryptionError, match="wrong key"):
        ProjectCipher(b"k" * 32).open_text(prompt, digest, "prompt")


@pytest.mark.parametrize("column", ["prompt", "metadata"])
def test_tampered_metadata_blob_is_detected(tmp_path: Path, column: str) -> None:
    with AssetManager(tmp_path / "ws") as manager:
        manager.create_project("enc")
        manager.encrypt_project("tamper test")
        paths = _store_three(manager)
        project_dir = manager.project().path
    rows = _rows(project_dir)
    with sqlite3.connect(project_dir / "apex.db") as conn:
        if column == "prompt":
            blob = bytearray(base64.b64decode(rows[0][3][len(FIELD_PREFIX) :]))
            blob[len(blob) // 2] ^= 0x01
            value: str = FIELD_PREFIX + base64.b64encode(bytes(blob)).decode()
            conn.execute("UPDATE asset SET prompt = ? WHERE id = ?", (value, rows[0][0]))
        else:  # a sealed blob moved from another asset: authentic, but bound elsewhere
            conn.execute("UPDATE asset SET metadata = ? WHERE id = ?", (rows[1][4], rows[0][0]))
    with AssetManager(tmp_path / "ws") as manager:
        manager.open_project(project_dir)
        manager.unlock_project("tamper test")
        with pytest.raises(DecryptionError, match="altered"):
            manager.get_asset_metadata(paths[0])
        assert manager.get_asset_metadata(paths[1])["prompt"] == f"{SECRET_PROMPT} 1"


class _SimulatedCrashError(RuntimeError):
    pass


@pytest.mark.parametrize("phase", ["files", "database"])
def test_interrupted_sealing_loses_nothing_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    """An error mid-way (after one file, or inside the database transaction) loses nothing."""
    with AssetManager(tmp_path / "ws") as manager:
        manager.create_project("crash")
        paths = _store_three(manager)
        project_dir = manager.project().path
        calls = {"n": 0}
        if phase == "files":
            original = ProjectCipher.encrypt_asset

            def failing(self: ProjectCipher, *args: Any) -> bytes:
                calls["n"] += 1
                if calls["n"] == 2:
                    raise _SimulatedCrashError("simulated crash while sealing files")
                return original(self, *args)

            monkeypatch.setattr(ProjectCipher, "encrypt_asset", failing)
        else:
            original_seal = ProjectCipher.seal_metadata

            def failing_seal(self: ProjectCipher, *args: Any) -> dict[str, str]:
                calls["n"] += 1
                if calls["n"] == 2:
                    raise _SimulatedCrashError("simulated crash inside the database transaction")
                return original_seal(self, *args)

            monkeypatch.setattr(ProjectCipher, "seal_metadata", failing_seal)
        with pytest.raises(_SimulatedCrashError):
            manager.encrypt_project("resume me")
        monkeypatch.undo()
    sealed_files = sum(p.read_bytes().startswith(MAGIC) for p in paths)
    assert sealed_files == (1 if phase == "files" else 3)
    if phase == "database":  # the transaction rolled back: every row still clear
        assert all(not row[3].startswith(FIELD_PREFIX) for row in _rows(project_dir))
    with AssetManager(tmp_path / "ws") as manager:
        manager.open_project(project_dir)
        manager.unlock_project("resume me")  # finishes the sealing
        for i, path in enumerate(paths):
            assert path.read_bytes().startswith(MAGIC)
            assert manager.read_asset_bytes(path) == f"frame {i}".encode() * 50
            info = manager.get_asset_metadata(path)
            assert info["prompt"] == f"{SECRET_PROMPT} {i}"
            assert info["metadata"] == {**SECRET_META, "index": i}
    assert all(row[3].startswith(FIELD_PREFIX) for row in _rows(project_dir))


# -- the keyring path -----------------------------------------------------------------


@pytest.fixture
def memory_keyring() -> Iterator[Any]:
    with using_keyring(new_memory_keyring()) as backend:
        yield backend


def test_keyring_key_round_trip_and_missing_or_wrong_key(
    tmp_path: Path, memory_keyring: Any
) -> None:
    with AssetManager(tmp_path / "ws") as manager:
        project = manager.create_project("keyring project")
        manager.encrypt_project()  # no passphrase: a random key in the keyring
        path = _store_three(manager)[0]
        project_dir = project.path
    (((service, user), stored),) = memory_keyring.store.items()
    assert service == "apex-director" and user == project.id
    assert len(base64.b64decode(stored)) == 32
    assert stored not in (project_dir / "encryption.json").read_text()
    with AssetManager(tmp_path / "ws") as manager:
        manager.open_project(project_dir)
        manager.unlock_project()
        assert manager.get_asset_metadata(path)["prompt"] == f"{SECRET_PROMPT} 0"
        assert manager.read_asset_bytes(path) == b"frame 0" * 50
    memory_keyring.store[(service, user)] = base64.b64encode(b"w" * 32).decode()
    with AssetManager(tmp_path / "ws") as manager:
        manager.open_project(project_dir)
        with pytest.raises(DecryptionError, match="wrong passphrase or key"):
            manager.unlock_project()
    memory_keyring.store.clear()
    with AssetManager(tmp_path / "ws") as manager:
        manager.open_project(project_dir)
        with pytest.raises(DecryptionError, match="no key in the OS keyring"):
            manager.unlock_project()


_KILLED_CHILD = """
import os, sys
from engine.assets.asset_manager import AssetManager
from engine.security.crypto import ProjectCipher

calls = {"n": 0}
original = ProjectCipher.seal_metadata

def dying(self, *args):
    calls["n"] += 1
    if calls["n"] == 2:  # inside the database transaction: the process dies on the spot
        os._exit(9)
    return original(self, *args)

ProjectCipher.seal_metadata = dying
with AssetManager(sys.argv[1]) as manager:
    manager.open_project(sys.argv[2])
    manager.encrypt_project("killed midway")
"""


def test_process_killed_mid_sealing_loses_nothing(tmp_path: Path) -> None:
    """A process that dies (``os._exit``) inside the sealing transaction loses nothing."""
    import subprocess
    import sys

    with AssetManager(tmp_path / "ws") as manager:
        manager.create_project("killed")
        paths = _store_three(manager)
        project_dir = manager.project().path
    result = subprocess.run(
        [sys.executable, "-c", _KILLED_CHILD, str(tmp_path / "ws"), str(project_dir)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 9, result.stderr
    assert all(p.read_bytes().startswith(MAGIC) for p in paths)  # the file phase was done
    assert all(not row[3].startswith(FIELD_PREFIX) for row in _rows(project_dir))  # rolled back
    with AssetManager(tmp_path / "ws") as manager:
        manager.open_project(project_dir)
        with pytest.raises(DecryptionError, match="wrong passphrase"):
            manager.unlock_project("not the one")
        manager.unlock_project("killed midway")
        for i, path in enumerate(paths):
            assert manager.read_asset_bytes(path) == f"frame {i}".encode() * 50
            assert manager.get_asset_metadata(path)["metadata"] == {**SECRET_META, "index": i}
    assert all(row[3].startswith(FIELD_PREFIX) for row in _rows(project_dir))


def test_clear_leftover_of_a_killed_store_is_sealed_when_stored_again(tmp_path: Path) -> None:
    """A clear file left by a killed store (no database row) is sealed by the next store."""
    import hashlib

    content = b"leftover bytes" * 20
    digest = hashlib.sha256(content).hexdigest()
    with AssetManager(tmp_path / "ws") as manager:
        manager.create_project("leftover")
        manager.encrypt_project("seal the leftover")
        project_dir = manager.project().path
        leftover = project_dir / "assets" / digest[:2] / f"{digest}.bin"
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(content)  # what a store killed before its database row leaves
        path = manager.store_asset({"content": content, "extension": "bin"})
        assert path == leftover
        assert path.read_bytes().startswith(MAGIC)
        assert manager.read_asset_bytes(path) == content
