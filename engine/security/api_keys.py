"""API keys with permission levels, stored hashed in the project database.

Levels are ordered: ``read < write < execute < admin`` (API reference, "Permission
Levels"): *read* queries, *write* stores and changes assets, *execute* submits and
manages jobs, *admin* manages keys.  Without a key the caller is the local user
(:data:`LOCAL`, admin): the desktop app and the CLI on one's own machine.

A key is shown once, when made: ``apx_<id>_<secret>``.  The database keeps only the id,
a random salt and ``scrypt(secret, salt)``; checking compares in constant time
(:func:`hmac.compare_digest`).  Every key made or revoked is written to the audit log,
and :func:`acting_as` makes the audit rows of an operation name the key that did it.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import hmac
import inspect
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.errors import ParameterError, UserInputError
from engine.storage.models import AUDIT_ACTOR

__all__ = [
    "LOCAL",
    "ApiKeyStore",
    "InvalidApiKeyError",
    "Permission",
    "PermissionDeniedError",
    "Principal",
    "acting_as",
    "requires",
]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_TOKEN = re.compile(r"^apx_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024**2, "dklen": 32}


class Permission(enum.IntEnum):
    """Permission levels, ordered: a higher level may do everything a lower one may."""

    READ = 1
    WRITE = 2
    EXECUTE = 3
    ADMIN = 4

    @classmethod
    def parse(cls, value: str | Permission) -> Permission:
        """``"read"``/``"write"``/``"execute"``/``"admin"`` (or a Permission)."""
        if isinstance(value, Permission):
            return value
        try:
            return cls[str(value).upper()]
        except KeyError:
            raise ParameterError("level", value, "read, write, execute or admin") from None


class PermissionDeniedError(UserInputError, PermissionError):
    """The API key's level is too low for the operation.

    Attributes
    ----------
    operation : str
        What was attempted.
    needed, level : Permission
        The level the operation needs and the key's level.
    key_id : str
        The key.
    """

    def __init__(self, operation: str, *, needed: Permission, level: Permission, key_id: str):
        self.operation = operation
        self.needed = needed
        self.level = level
        self.key_id = key_id
        super().__init__(
            f"{operation} needs the {needed.name.lower()} permission; API key {key_id} has "
            f"{level.name.lower()}. Ask an admin for a key with that level "
            "(apex-director keys create --level ...)"
        )


class InvalidApiKeyError(UserInputError, PermissionError):
    """The API key is malformed, unknown or revoked."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"API key refused: {reason}. Check the key, or ask an admin for a new one "
            "(apex-director keys create)"
        )


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key's id and level, or the local user."""

    key_id: str
    level: Permission

    def require(self, needed: Permission, operation: str) -> None:
        """Raise :class:`PermissionDeniedError` unless this level reaches ``needed``."""
        if self.level < needed:
            raise PermissionDeniedError(
                operation, needed=needed, level=self.level, key_id=self.key_id
            )


LOCAL = Principal("local", Permission.ADMIN)


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Audit rows written inside the block (and threads started from it) name ``principal``."""
    token = AUDIT_ACTOR.set(principal.key_id)
    try:
        yield
    finally:
        AUDIT_ACTOR.reset(token)


def requires(level: Permission, operation: str | None = None) -> Callable[[F], F]:
    """Method decorator: check ``self.principal`` (default :data:`LOCAL`) reaches ``level``
    and write the call's audit rows as that principal.  Works on coroutine methods too."""

    def decorate(func: F) -> F:
        name = operation or func.__name__

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                principal = getattr(self, "principal", LOCAL)
                principal.require(level, name)
                with acting_as(principal):
                    return await func(self, *args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            principal = getattr(self, "principal", LOCAL)
            principal.require(level, name)
            with acting_as(principal):
                return func(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode("ascii"), salt=salt, **_SCRYPT)


class ApiKeyStore:
    """The API keys of one project (its ``api_key`` table, migration 2).

    Parameters
    ----------
    project : Project
        An open project (``engine.assets.project.Project``).
    """

    def __init__(self, project: Any) -> None:
        self.project = project
        self.database = project.database

    def create(self, name: str = "", level: str | Permission = Permission.READ) -> tuple[str, str]:
        """Make a key; returns ``(key_id, token)``.  The token is shown only now."""
        permission = Permission.parse(level)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = os.urandom(16)
        now = time.time()
        m = self.project.models
        with self.database.write():
            self.database.execute_sql(
                "INSERT INTO api_key (id, name, level, salt, hash, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, permission.name.lower(), salt, _hash(secret, salt), now),
            )
            m.AuditLog.create(
                timestamp=now,
                action="key.create",
                target=key_id,
                details={"name": name, "level": permission.name.lower()},
            )
        log.info("API key %s (%s) created", key_id, permission.name.lower())
        return key_id, f"apx_{key_id}_{secret}"

    def list(self) -> list[dict[str, Any]]:
        """Every key (never the secret): id, name, level, created_at, revoked_at, last_used_at."""
        cursor = self.database.execute_sql(
            "SELECT id, name, level, created_at, revoked_at, last_used_at FROM api_key "
            "ORDER BY created_at"
        )
        columns = ("id", "name", "level", "created_at", "revoked_at", "last_used_at")
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key (kept for the audit trail); ``False`` if it was already revoked.

        Raises
        ------
        ParameterError
            No such key.
        """
        now = time.time()
        with self.database.write():
            row = self.database.execute_sql(
                "SELECT revoked_at FROM api_key WHERE id = ?", (key_id,)
            ).fetchone()
            if row is None:
                raise ParameterError("key_id", key_id, "the id of a key (apex-director keys list)")
            if row[0] is not None:
                return False
            self.database.execute_sql(
                "UPDATE api_key SET revoked_at = ? WHERE id = ?", (now, key_id)
            )
            self.project.models.AuditLog.create(
                timestamp=now, action="key.revoke", target=key_id, details={}
            )
        return True

    def validate(self, token: str) -> Principal:
        """The principal of a valid, unrevoked key.

        Raises
        ------
        InvalidApiKeyError
            Malformed, unknown, wrong secret or revoked.
        """
        match = _TOKEN.match(token or "")
        if match is None:
            raise InvalidApiKeyError("not an APEX Director key (apx_<id>_<secret>)")
        key_id, secret = match.groups()
        row = self.database.execute_sql(
            "SELECT level, salt, hash, revoked_at FROM api_key WHERE id = ?", (key_id,)
        ).fetchone()
        # Hash even for an unknown id, so timing does not tell which ids exist.
        salt = bytes(row[1]) if row else b"\0" * 16
        digest = _hash(secret, salt)
        if row is None or not hmac.compare_digest(digest, bytes(row[2])):
            raise InvalidApiKeyError("unknown key or wrong secret")
        if row[3] is not None:
            raise InvalidApiKeyError(f"key {key_id} was revoked")
        with contextlib.suppress(Exception), self.database.write():  # best effort
            self.database.execute_sql(
                "UPDATE api_key SET last_used_at = ? WHERE id = ?", (time.time(), key_id)
            )
        return Principal(key_id, Permission.parse(row[0]))
