"""Encryption at rest for :class:`~engine.assets.asset_manager.AssetManager`.

:class:`EncryptionMixin` holds the asset manager's encryption methods: turning it on for
a project (:meth:`~EncryptionMixin.encrypt_project`, which seals the assets already
stored), giving the key of an encrypted project (:meth:`~EncryptionMixin.unlock_project`),
and reading sealed assets back (:meth:`~EncryptionMixin.read_asset_bytes`,
:meth:`~EncryptionMixin.audio_source`).  :func:`project_audio_source` finds, for a job
that has only a ``Project``, the asset manager holding that project's key.  The cipher
itself is :mod:`engine.security.crypto`, imported when it is needed; docs/security.md
says what is sealed.

``AssetManager`` inherits the mixin; everything here is also importable from
:mod:`engine.assets.asset_manager`, as before the module was split.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from engine.assets.project import Project
from engine.atomic_files import atomic_path
from engine.errors import AssetError
from engine.security.api_keys import Permission, requires

if TYPE_CHECKING:
    from engine.assets.rate_limit import TokenBucket
    from engine.audio.decode import AudioBytes

__all__ = ["EncryptionMixin", "project_audio_source"]

# The asset manager's logger, as before the split, so logging set up for it still applies.
log = logging.getLogger("engine.assets.asset_manager")

_SEALED_STATE = "encryption.sealed"  # project_state key: every asset sealed
# The asset manager that opened each Project object.  Job handlers get only the project
# (APEXDirector hands the manager's Project object to the orchestrator), and this is how
# they find the key of an unlocked project (project_audio_source).  Weak both ways, and
# keyed by the object, not the folder: another manager's key for the same folder is not
# found, and nothing is kept alive.
_MANAGER_OF: weakref.WeakKeyDictionary[Project, weakref.ref[EncryptionMixin]] = (
    weakref.WeakKeyDictionary()
)


class EncryptionMixin:
    """The encryption-at-rest methods of :class:`~engine.assets.asset_manager.AssetManager`.

    Not used on its own: the methods rely on the asset manager's projects, rate limit and
    path checks (``project()``, ``_locate()``, ``_record_path()``) and on the search
    mixin's ``_reindex()`` (:mod:`engine.assets.search`).
    """

    if TYPE_CHECKING:  # set by AssetManager.__init__
        _projects: dict[str, Project]
        _ciphers: dict[str, Any]  # project id -> ProjectCipher
        _bucket: TokenBucket

    @requires(Permission.ADMIN, "encrypt_project")
    def encrypt_project(self, passphrase: str | None = None, project_id: str | None = None) -> None:
        """Encrypt the project's asset files and sensitive metadata (AES-256-GCM).

        New assets are sealed, and the assets already stored are sealed too (files,
        description, prompt and metadata; see :meth:`_seal_existing` and docs/security.md).
        Without a passphrase the key is kept in the OS keyring (the ``keyring`` package).
        """
        from engine.security.crypto import enable_encryption

        project = self.project(project_id)
        cipher = enable_encryption(project.path, passphrase=passphrase, project_id=project.id)
        self._ciphers[project.id] = cipher
        self._seal_existing(project, cipher)

    def unlock_project(self, passphrase: str | None = None, project_id: str | None = None) -> None:
        """Give the key of an encrypted project; a wrong one raises ``DecryptionError``."""
        from engine.security.crypto import open_cipher

        project = self.project(project_id)
        cipher = open_cipher(project.path, passphrase=passphrase)
        self._ciphers[project.id] = cipher
        state = project.models.ProjectState.get_or_none(
            project.models.ProjectState.key == _SEALED_STATE
        )
        if state is None or state.value is not True:  # an interrupted encrypt_project
            log.warning(
                "%s: finishing the sealing of assets stored before encryption", project.name
            )
            self._seal_existing(project, cipher)

    def _seal_existing(self, project: Project, cipher: Any) -> None:
        """Seal the assets stored before encryption was enabled; safe to interrupt.

        Each clear file is replaced by its sealed version atomically (a file is either
        clear or sealed, and reads tell them apart by ``MAGIC``); then one database
        transaction seals every clear description, prompt and metadata object, drops
        their text from the full-text index and records ``encryption.sealed``.  A crash
        or error at any point leaves everything readable with the key, and
        :meth:`unlock_project` resumes the work while ``encryption.sealed`` is missing.
        """
        from engine.security.crypto import MAGIC, is_sealed_metadata, is_sealed_text

        m = project.models
        records = list(m.Asset.select())
        for record in records:
            path = self._record_path(project, record.rel_path, follow_links=True)
            if not path.is_file():
                log.warning("%s: missing asset file %s, not sealed", project.name, path)
                continue
            data = path.read_bytes()
            if data.startswith(MAGIC):
                continue
            if hashlib.sha256(data).hexdigest() != record.content_hash:
                raise AssetError(
                    f"{path} does not match its recorded hash, so it was not encrypted; "
                    "restore it from a backup, then unlock the project again",
                    asset_path=path,
                    operation="encrypt",
                )
            sealed = cipher.encrypt_asset(data, record.rel_path, record.content_hash)
            with atomic_path(path) as tmp:
                tmp.write_bytes(sealed)
        now = time.time()
        with project.database.write():
            count = 0
            for record in m.Asset.select():
                fields: dict[str, Any] = {}
                for name in ("description", "prompt"):
                    value = getattr(record, name)
                    if not is_sealed_text(value):
                        fields[name] = cipher.seal_text(value, record.content_hash, name)
                if not is_sealed_metadata(record.metadata):
                    fields["metadata"] = cipher.seal_metadata(record.metadata, record.content_hash)
                if fields:
                    m.Asset.update(**fields).where(m.Asset.id == record.id).execute()
                    self._reindex(project, record.id)
                    count += 1
            m.ProjectState.replace(key=_SEALED_STATE, value=True).execute()
            m.AuditLog.create(
                timestamp=now,
                action="project.encrypt",
                target=project.id,
                details={"files": len(records), "records_sealed": count},
            )
        log.info("%s: %d asset record(s) sealed", project.name, count)

    def _open_fields(self, project: Project, record: Any) -> dict[str, Any]:
        """``description``, ``prompt`` and ``metadata`` of a record in the clear."""
        from engine.security.crypto import is_sealed_metadata, is_sealed_text

        values = {
            "description": record.description,
            "prompt": record.prompt,
            "metadata": record.metadata,
        }
        sealed = (
            is_sealed_text(values["description"])
            or is_sealed_text(values["prompt"])
            or is_sealed_metadata(values["metadata"])
        )
        if not sealed:
            return values
        cipher = self._cipher_for(project)
        if cipher is None:
            from engine.security.errors import DecryptionError

            raise DecryptionError(
                record.rel_path, reason="its metadata is encrypted, and no key was given"
            )
        for name in ("description", "prompt"):
            values[name] = cipher.open_text(values[name], record.content_hash, name)
        values["metadata"] = cipher.open_metadata(values["metadata"], record.content_hash)
        return values

    def _cipher_for(self, project: Project) -> Any:
        """The project's cipher, None when it is not encrypted; refuses a locked one
        (:class:`~engine.security.errors.ProjectLockedError`)."""
        cipher = self._ciphers.get(project.id)
        if cipher is None and (project.path / "encryption.json").is_file():
            from engine.security.errors import ProjectLockedError

            raise ProjectLockedError(project.name)
        return cipher

    @classmethod
    def for_project(cls, project: Project) -> Self | None:
        """The open asset manager that holds this ``Project`` object (``None``: none)."""
        ref = _MANAGER_OF.get(project)
        manager = None if ref is None else ref()
        if manager is None or all(p is not project for p in manager._projects.values()):
            return None
        return manager

    @requires(Permission.READ, "audio_source")
    def audio_source(self, asset_path: Path | str) -> Path | AudioBytes:
        """A stored song, ready to decode: its path, or its bytes when it is sealed.

        A sealed asset (encrypted project) is opened with the project's key into an
        :class:`~engine.audio.decode.AudioBytes` (keyed by the asset's content hash), so
        the decoders read it from memory and its clear bytes never reach the disk.

        Raises
        ------
        ProjectLockedError
            The asset is sealed and the project is locked (:meth:`unlock_project`).
        DecryptionError
            Wrong key, or the file was altered.
        """
        from engine.audio.decode import AudioBytes

        project, record = self._locate(asset_path)
        path = self._record_path(project, record.rel_path, follow_links=True)
        if not _starts_sealed(path):
            return path
        data = self.read_asset_bytes(path)
        return AudioBytes(data=data, name=Path(record.rel_path).name, digest=record.content_hash)

    @requires(Permission.READ, "read_asset_bytes")
    def read_asset_bytes(self, asset_path: Path | str) -> bytes:
        """An asset's bytes (decrypted when the project is encrypted).

        Raises
        ------
        DecryptionError
            Wrong key, or the file was altered (one flipped byte is enough).
        """
        self._bucket.acquire()
        project, record = self._locate(asset_path)
        path = self._record_path(project, record.rel_path, follow_links=True)
        blob = path.read_bytes()
        from engine.security.crypto import MAGIC

        if not blob.startswith(MAGIC):
            return blob
        cipher = self._cipher_for(project)
        if cipher is None:  # an encrypted file in a project that is not (any longer)
            from engine.security.errors import DecryptionError

            raise DecryptionError(record.rel_path, reason="encrypted, and no key was given")
        return cipher.decrypt_asset(blob, record.rel_path, record.content_hash)


def project_audio_source(project: Project, path: Path | str) -> Path | AudioBytes:
    """The song at ``path`` for a job of ``project`` (the render's and analysis' source).

    A clear file is returned as its path.  A sealed asset of ``project`` comes back as
    its clear bytes in memory (:meth:`AssetManager.audio_source`), through the asset
    manager that opened this ``Project`` object and its key.

    Raises
    ------
    ProjectLockedError
        The song is sealed and the project was not unlocked in this session.
    DecryptionError
        The song is sealed but not an asset of ``project``; or a wrong key, or altered.
    """
    from engine.security.errors import DecryptionError, ProjectLockedError

    path = Path(path)
    if not path.is_file() or not _starts_sealed(path):
        return path  # a clear song, or a missing one (the decoder says so)
    normal = Path(os.path.normpath(path.expanduser().absolute()))
    if not normal.is_relative_to(project.assets_dir):
        raise DecryptionError(
            str(path),
            reason="it is an encrypted asset of another project; render it in its own "
            "project (apex-director render --project THAT_PROJECT)",
        )
    manager = EncryptionMixin.for_project(project)
    if manager is None:  # an orchestrator on its own: nobody gave this session the key
        raise ProjectLockedError(project.name)
    return manager.audio_source(normal)


def _starts_sealed(path: Path) -> bool:
    """Whether a file begins with the sealed-file header (engine/security/crypto.py)."""
    from engine.security.crypto import MAGIC

    with path.open("rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC
