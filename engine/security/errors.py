"""Typed errors of project import/export and encryption.  Each says what to do next."""

from __future__ import annotations

from pathlib import Path

from engine.errors import APEXDirectorError, UserInputError

__all__ = [
    "ArchiveError",
    "ArchiveTooLargeError",
    "DecryptionError",
    "EncryptionUnavailableError",
    "ProjectLockedError",
    "UnsafeArchiveError",
]


class ArchiveError(UserInputError, ValueError):
    """A project archive cannot be imported (unreadable, not a project, destination taken).

    Attributes
    ----------
    path : Path
        The archive.
    """

    def __init__(self, message: str, *, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(message)


class UnsafeArchiveError(ArchiveError):
    """A member of the archive would write outside the project or is not a plain file.

    Attributes
    ----------
    member : str
        The member's name as stored in the archive.
    reason : str
        Why it was refused (path traversal, absolute path, link out, device file...).
    """

    def __init__(self, path: Path | str, *, member: str, reason: str) -> None:
        self.member = member
        self.reason = reason
        super().__init__(
            f"{path}: refused member {member!r}: {reason}; nothing was imported. Only import "
            "archives made by `apex-director project export` or from people you trust",
            path=path,
        )


class ArchiveTooLargeError(ArchiveError):
    """The archive unpacks to more bytes or members than allowed (a zip bomb, or too big).

    Attributes
    ----------
    limit : str
        Which limit (``"total_bytes"``, ``"members"``, ``"ratio"``).
    allowed : int or float
        The limit's value.
    """

    def __init__(self, path: Path | str, *, limit: str, allowed: float, found: float) -> None:
        self.limit = limit
        self.allowed = allowed
        self.found = found
        super().__init__(
            f"{path}: the archive exceeds the {limit} limit ({found:g} > {allowed:g}); nothing "
            "was imported. If you trust it, raise the limit (max_total_bytes/max_members)",
            path=path,
        )


class EncryptionUnavailableError(APEXDirectorError):
    """Encryption was asked for but the ``cryptography`` package is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "encrypting a project needs the 'cryptography' package: "
            "pip install 'apex-director[secure]'"
        )


class DecryptionError(UserInputError, ValueError):
    """Encrypted data could not be decrypted: wrong key/passphrase, or the data was altered.

    Attributes
    ----------
    target : str
        What was being decrypted (an asset path).
    """

    def __init__(self, target: str, *, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(
            f"{target}: cannot decrypt ({reason}); check the passphrase or key. If it is right, "
            "the file was changed or damaged since it was written: restore it from a backup"
        )


class ProjectLockedError(DecryptionError):
    """The project is encrypted and no key was given in this session: unlock it first.

    A :class:`DecryptionError`, so code that catches that still catches this; nothing was
    read or written.

    Attributes
    ----------
    project : str
        The project's name (or folder).
    """

    def __init__(self, project: str) -> None:
        self.project = project
        self.target = project
        self.reason = "the project is encrypted and locked"
        # not DecryptionError's message: nothing is wrong with the key or the files
        UserInputError.__init__(
            self,
            f"{project}: the project is encrypted and locked, so its assets cannot be read; "
            "unlock it first: `apex-director render --project DIR --passphrase-file FILE` "
            "(or APEX_PROJECT_PASSPHRASE; a project whose key is in the OS keyring unlocks "
            "itself), or AssetManager.unlock_project(passphrase) in Python",
        )
