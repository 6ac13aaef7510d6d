"""Migration 1: assets, tags, full-text index, jobs, checkpoints, audit log, project state."""

from __future__ import annotations

import sqlite3

VERSION = 1
NAME = "initial"

_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        applied_at REAL NOT NULL
    )""",
    """CREATE TABLE asset (
        id INTEGER PRIMARY KEY,
        content_hash TEXT NOT NULL UNIQUE,
        rel_path TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        prompt TEXT NOT NULL DEFAULT '',
        category TEXT NOT NULL DEFAULT 'other',
        mime TEXT NOT NULL DEFAULT 'application/octet-stream',
        size INTEGER NOT NULL,
        perceptual_hash INTEGER,
        created_at REAL NOT NULL,
        modified_at REAL NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX asset_category ON asset (category)",
    "CREATE INDEX asset_created_at ON asset (created_at)",
    "CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    """CREATE TABLE asset_tag (
        asset_id INTEGER NOT NULL REFERENCES asset (id) ON DELETE CASCADE,
        tag_id INTEGER NOT NULL REFERENCES tag (id) ON DELETE CASCADE,
        PRIMARY KEY (asset_id, tag_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX asset_tag_tag_id ON asset_tag (tag_id)",
    # rowid = asset.id; kept in step with asset/asset_tag by the code that writes them,
    # in the same transaction (tags live in another table, which triggers handle badly).
    """CREATE VIRTUAL TABLE asset_fts USING fts5 (
        name, description, tags, prompt, tokenize = 'unicode61 remove_diacritics 2'
    )""",
    """CREATE TABLE job (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        payload TEXT NOT NULL DEFAULT '{}',
        depends_on TEXT NOT NULL DEFAULT '[]',
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 3,
        crash_count INTEGER NOT NULL DEFAULT 0,
        quarantined INTEGER NOT NULL DEFAULT 0,
        worker TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        result TEXT,
        error TEXT
    )""",
    "CREATE INDEX job_ready ON job (state, priority DESC, created_at)",
    """CREATE TABLE checkpoint (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        timestamp REAL NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX audit_log_timestamp ON audit_log (timestamp)",
    "CREATE TABLE project_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def apply(conn: sqlite3.Connection) -> None:
    """Create the first schema (inside the caller's transaction)."""
    for statement in _STATEMENTS:
        conn.execute(statement)
