"""Deprecating public API: a warning that names the replacement and the removal version.

The policy (API reference, "Deprecation Policy"): a feature is deprecated at least six
months (one minor release) before it is removed, and using it shows a warning.  Here the
warning is a :class:`DeprecationWarning` raised once per call site (Python's default
``"default"`` action), whose message says since when, when it goes and what to use
instead.  ``CHANGELOG.md`` lists each deprecation under "Deprecated".

Examples
--------
>>> @deprecated(since="0.2.0", removed_in="1.0.0", replacement="engine.api.render")
... def old_render(path):
...     return render(path)
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["deprecated", "warn_deprecated"]

F = TypeVar("F", bound=Callable[..., Any])

# (name, filename, lineno) already warned about: "once per call site/name".
_warned: set[tuple[str, str, int]] = set()


def _message(name: str, since: str, removed_in: str, replacement: str | None) -> str:
    text = f"{name} is deprecated since {since} and will be removed in {removed_in}"
    return f"{text}; use {replacement} instead" if replacement else f"{text}; see CHANGELOG.md"


def warn_deprecated(
    name: str,
    *,
    since: str,
    removed_in: str,
    replacement: str | None = None,
    stacklevel: int = 2,
) -> None:
    """Warn (once per call site) that ``name`` is deprecated.

    Use it for things a decorator cannot wrap: a keyword argument, a config key.

    Parameters
    ----------
    name : str
        What is deprecated, as the user wrote it (``"render(quality=...)"``).
    since, removed_in : str
        The version that deprecated it and the one that removes it.
    replacement : str, optional
        What to use instead.
    stacklevel : int
        As for :func:`warnings.warn`: 2 means the caller of the function that calls this.
    """
    import sys

    frame = sys._getframe(stacklevel)
    site = (name, frame.f_code.co_filename, frame.f_lineno)
    if site in _warned:
        return
    _warned.add(site)
    warnings.warn(
        _message(name, since, removed_in, replacement),
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def deprecated(since: str, removed_in: str, replacement: str | None = None) -> Callable[[F], F]:
    """Decorator: calling the function (or class) warns once per call site.

    Parameters
    ----------
    since, removed_in : str
        Versions (semantic: ``"0.2.0"``).
    replacement : str, optional
        What to use instead; named in the warning.
    """

    def decorate(func: F) -> F:
        name = getattr(func, "__qualname__", repr(func))

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            warn_deprecated(
                name, since=since, removed_in=removed_in, replacement=replacement, stacklevel=2
            )
            return func(*args, **kwargs)

        wrapper.__deprecated__ = _message(name, since, removed_in, replacement)  # type: ignore[attr-defined]
        doc = func.__doc__ or ""
        wrapper.__doc__ = (
            f".. deprecated:: {since}\n   Removed in {removed_in}."
            + (f" Use {replacement}." if replacement else "")
            + "\n\n"
            + doc
        )
        return wrapper  # type: ignore[return-value]

    return decorate
