"""engine.deprecation: warns once per call site, names the replacement and versions."""

from __future__ import annotations

import warnings

import pytest

from engine.deprecation import deprecated, warn_deprecated


@deprecated(since="0.2.0", removed_in="1.0.0", replacement="new_add")
def old_add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def test_warning_names_replacement_versions_and_points_at_the_caller() -> None:
    with pytest.warns(DeprecationWarning) as record:
        assert old_add(1, 2) == 3
    assert len(record) == 1
    message = str(record[0].message)
    assert "old_add is deprecated since 0.2.0" in message
    assert "removed in 1.0.0" in message
    assert "use new_add instead" in message
    assert record[0].filename == __file__  # the caller's line, not the wrapper's


def test_warns_once_per_call_site() -> None:
    def call_twice_here() -> list[warnings.WarningMessage]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                old_add(0, 0)  # one call site, three calls
            old_add(0, 0)  # a second call site
        return caught

    caught = call_twice_here()
    assert [w.category for w in caught] == [DeprecationWarning, DeprecationWarning]
    assert caught[0].lineno != caught[1].lineno
    assert call_twice_here() == []  # both sites already warned


def test_docstring_and_marker() -> None:
    assert old_add.__doc__.startswith(".. deprecated:: 0.2.0")
    assert "Add two numbers." in old_add.__doc__
    assert "use new_add instead" in old_add.__deprecated__
    assert old_add.__name__ == "old_add"


def test_warn_deprecated_for_an_argument_without_replacement() -> None:
    with pytest.warns(DeprecationWarning, match=r"render\(quality=\.\.\.\) is deprecated"):
        warn_deprecated("render(quality=...)", since="0.1.0", removed_in="0.3.0")
