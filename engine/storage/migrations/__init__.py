"""Numbered schema migrations of the project database.

Each module ``mNNNN_name.py`` has ``VERSION`` (its number), ``NAME`` and
``apply(conn)``, which runs inside the migration's transaction.  Migrations are frozen
once released: a change of schema is a new module, never an edit of an old one, so
every database, whatever its age, reaches the same schema by the same steps.  The
``schema_version`` table records each step applied.
"""

from __future__ import annotations

from types import ModuleType

from engine.storage.migrations import m0001_initial, m0002_api_keys_audit_actor

__all__ = ["LATEST_VERSION", "MIGRATIONS"]

MIGRATIONS: tuple[ModuleType, ...] = (m0001_initial, m0002_api_keys_audit_actor)
LATEST_VERSION: int = MIGRATIONS[-1].VERSION

# Numbers must run 1, 2, 3... without gaps; a mistake here is caught on import.
assert [m.VERSION for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
