"""``apex-director keys create|list|revoke``: a project's API keys (docs/security.md).

Managing keys needs admin: the local user has it; with ``APEX_API_KEY`` set, that key
must be an admin key of the project.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``keys`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "keys",
        help="create, list or revoke a project's API keys (admin)",
        description="API keys with levels read < write < execute < admin, stored hashed in "
        "the project database: see docs/security.md.",
    )
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="make a key; its secret is printed once")
    create.add_argument("path", type=Path, help="the project folder")
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument(
        "--level", default="read", help="read, write, execute or admin (default: read)"
    )
    listed = sub.add_parser("list", help="list the keys (never their secrets)")
    listed.add_argument("path", type=Path, help="the project folder")
    revoke = sub.add_parser("revoke", help="revoke a key (kept for the audit trail)")
    revoke.add_argument("path", type=Path, help="the project folder")
    revoke.add_argument("key_id", help="the key's id (keys list)")
    parser.set_defaults(handler=run)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def run(args: argparse.Namespace) -> int:
    """Run ``keys ACTION``; returns the exit code."""
    from engine.assets.project import Project
    from engine.security.api_keys import LOCAL, ApiKeyStore, Permission, acting_as

    with Project.open(args.path) as project:
        store = ApiKeyStore(project)
        token = os.environ.get("APEX_API_KEY")
        principal = store.validate(token) if token else LOCAL
        principal.require(Permission.ADMIN, f"keys {args.keys_command}")
        with acting_as(principal):
            if args.keys_command == "create":
                key_id, secret = store.create(args.name, Permission.parse(args.level))
                print(f"created key {key_id} ({args.level}); its secret is shown only now:")
                print(secret)
                return 0
            if args.keys_command == "list":
                for row in store.list():
                    state = f"revoked {_when(row['revoked_at'])}" if row["revoked_at"] else "active"
                    print(
                        f"{row['id']}  {row['level']:<8} {state:<30} created "
                        f"{_when(row['created_at'])}  last used {_when(row['last_used_at'])}  "
                        f"{row['name']}"
                    )
                return 0
            if args.keys_command == "revoke":
                done = store.revoke(args.key_id)
                print(f"revoked {args.key_id}" if done else f"{args.key_id} was already revoked")
                return 0
    raise AssertionError(f"unhandled keys action {args.keys_command}")  # argparse prevents this
