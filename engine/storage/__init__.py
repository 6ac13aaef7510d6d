"""Storage layer: the project database (SQLite in WAL mode via peewee) and its migrations.

Imports only peewee, the standard library and :mod:`engine.errors` (an import-linter
contract in ``pyproject.toml`` keeps domain and service modules out).
"""

from engine.storage.database import (
    DEFAULT_BUSY_TIMEOUT_S,
    ProjectDatabase,
    open_database,
    read_schema_version,
)
from engine.storage.errors import (
    DatabaseCorruptError,
    DatabaseLockedError,
    DiskFullError,
    SchemaTooNewError,
    StorageError,
)
from engine.storage.migrations import LATEST_VERSION
from engine.storage.models import JSONField, Models, bind_models

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "LATEST_VERSION",
    "DatabaseCorruptError",
    "DatabaseLockedError",
    "DiskFullError",
    "JSONField",
    "Models",
    "ProjectDatabase",
    "SchemaTooNewError",
    "StorageError",
    "bind_models",
    "open_database",
    "read_schema_version",
]
