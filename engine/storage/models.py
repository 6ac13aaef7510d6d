"""Peewee models of the project database, bound to one database each.

:func:`bind_models` builds a fresh set of model classes for one
:class:`~engine.storage.database.ProjectDatabase`.  Binding per database (rather than
peewee's global ``Model.bind``) lets two projects be open at once, in any threads,
without one's queries landing in the other's file.  The tables themselves are created
by the numbered migrations, never by ``create_tables``: the models describe the
schema of :data:`engine.storage.migrations.LATEST_VERSION`.
"""

from __future__ import annotations

import contextvars
import json
from dataclasses import dataclass
from typing import Any

import peewee

__all__ = ["AUDIT_ACTOR", "JSONField", "Models", "bind_models"]

# Who the audit_log rows written in this context are by: "local" (the desktop user, the CLI
# without a key) or an API key's id (engine/security/api_keys.py sets it per call).
AUDIT_ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar(
    "apex_audit_actor", default="local"
)


class JSONField(peewee.TextField):
    """A JSON document stored as text (dicts and lists, sorted keys)."""

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def python_value(self, value: Any) -> Any:
        if value is None:
            return None
        return json.loads(value)


@dataclass(frozen=True)
class Models:
    """The model classes bound to one database (attributes are peewee model classes)."""

    Asset: Any
    Tag: Any
    AssetTag: Any
    Job: Any
    Checkpoint: Any
    AuditLog: Any
    ProjectState: Any

    def all(self) -> tuple[Any, ...]:
        return (
            self.Asset,
            self.Tag,
            self.AssetTag,
            self.Job,
            self.Checkpoint,
            self.AuditLog,
            self.ProjectState,
        )


def bind_models(db: peewee.Database) -> Models:
    """Model classes for ``db`` (see the module docstring for why per database)."""

    class Base(peewee.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Asset(Base):
        content_hash = peewee.CharField(unique=True)
        rel_path = peewee.CharField(unique=True)
        name = peewee.CharField(default="")
        description = peewee.TextField(default="")
        prompt = peewee.TextField(default="")
        category = peewee.CharField(default="other", index=True)
        mime = peewee.CharField(default="application/octet-stream")
        size = peewee.BigIntegerField()
        perceptual_hash = peewee.BigIntegerField(null=True)
        created_at = peewee.FloatField()
        modified_at = peewee.FloatField()
        metadata = JSONField(default=dict)

    class Tag(Base):
        name = peewee.CharField(unique=True)

    class AssetTag(Base):
        asset = peewee.ForeignKeyField(Asset, backref="tag_links", on_delete="CASCADE")
        tag = peewee.ForeignKeyField(Tag, backref="asset_links", on_delete="CASCADE")

        class Meta:
            primary_key = peewee.CompositeKey("asset", "tag")
            without_rowid = True

    class Job(Base):
        id = peewee.CharField(primary_key=True)
        kind = peewee.CharField()
        state = peewee.CharField()
        priority = peewee.IntegerField(default=0)
        payload = JSONField(default=dict)
        depends_on = JSONField(default=list)
        attempts = peewee.IntegerField(default=0)
        max_attempts = peewee.IntegerField(default=3)
        crash_count = peewee.IntegerField(default=0)
        quarantined = peewee.BooleanField(default=False)
        worker = peewee.CharField(null=True)
        created_at = peewee.FloatField()
        updated_at = peewee.FloatField()
        started_at = peewee.FloatField(null=True)
        finished_at = peewee.FloatField(null=True)
        next_attempt_at = peewee.FloatField(default=0.0)
        result = JSONField(null=True)
        error = peewee.TextField(null=True)

    class Checkpoint(Base):
        id = peewee.CharField(primary_key=True)
        name = peewee.CharField()
        description = peewee.TextField(default="")
        created_at = peewee.FloatField()
        data = JSONField(default=dict)

    class AuditLog(Base):
        timestamp = peewee.FloatField()
        action = peewee.CharField()
        target = peewee.CharField(default="")
        details = JSONField(default=dict)
        actor = peewee.CharField(default=AUDIT_ACTOR.get)  # migration 2

    class ProjectState(Base):
        key = peewee.CharField(primary_key=True)
        value = JSONField()

    return Models(
        Asset=Asset,
        Tag=Tag,
        AssetTag=AssetTag,
        Job=Job,
        Checkpoint=Checkpoint,
        AuditLog=AuditLog,
        ProjectState=ProjectState,
    )
