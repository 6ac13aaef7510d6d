"""Migration 2: API keys (hashed, with levels) and who did each audited operation."""

from __future__ import annotations

import sqlite3

VERSION = 2
NAME = "api_keys_audit_actor"

_STATEMENTS = (
    # The secret is never stored: only its scrypt hash and salt (engine/security/api_keys.py).
    """CREATE TABLE api_key (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        level TEXT NOT NULL CHECK (level IN ('read', 'write', 'execute', 'admin')),
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL,
        last_used_at REAL
    )""",
    # "local" for the desktop user and the CLI without a key; else the API key's id.
    "ALTER TABLE audit_log ADD COLUMN actor TEXT NOT NULL DEFAULT 'local'",
    "CREATE INDEX audit_log_action ON audit_log (action)",
)


def apply(conn: sqlite3.Connection) -> None:
    """Add the api_key table and audit_log.actor (inside the caller's transaction)."""
    for statement in _STATEMENTS:
        conn.execute(statement)
