"""A real ``keyring`` backend that keeps its passwords in a dict, for the keyring tests.

It plugs in through the package's own extension point (``keyring.set_keyring``); the
tests that use it skip when ``keyring`` is not installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest


def keyring_module() -> ModuleType:
    """``keyring``, or skip the test that needs it."""
    return pytest.importorskip(
        "keyring", reason="the keyring package is not installed (pip install keyring)"
    )


def memory_keyring() -> Any:
    """A new, empty in-memory keyring backend (``.store`` holds its passwords)."""
    keyring_module()
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        """A real keyring backend that keeps its passwords in a dict."""

        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.store: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.store.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.store[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            del self.store[(service, username)]

    return MemoryKeyring()


@contextlib.contextmanager
def using_keyring(backend: Any) -> Iterator[Any]:
    """Make ``backend`` the OS keyring for the block, then put the previous one back."""
    keyring = keyring_module()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)
