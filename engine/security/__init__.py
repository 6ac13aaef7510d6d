"""Security helpers: safe project import/export, encryption at rest (docs/security.md).

Nothing heavy is imported here; ``cryptography`` is imported lazily by
:mod:`engine.security.crypto` when a project is encrypted.
"""

from engine.security.errors import (
    ArchiveError,
    ArchiveTooLargeError,
    DecryptionError,
    EncryptionUnavailableError,
    ProjectLockedError,
    UnsafeArchiveError,
)

__all__ = [
    "ArchiveError",
    "ArchiveTooLargeError",
    "DecryptionError",
    "EncryptionUnavailableError",
    "ProjectLockedError",
    "UnsafeArchiveError",
]
