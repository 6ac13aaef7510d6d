"""Typed errors of projects and assets.  Each message says what to do next."""

from __future__ import annotations

from pathlib import Path

from engine.errors import APEXDirectorError, AssetError, UserInputError

__all__ = [
    "AssetPathError",
    "ProjectError",
    "ProjectExistsError",
    "ProjectFileError",
    "ProjectNotFoundError",
    "QuotaExceededError",
    "RateLimitError",
]


class ProjectError(APEXDirectorError):
    """A project folder cannot be created, opened or saved.

    Attributes
    ----------
    path : Path
        The project folder or file concerned.
    """

    def __init__(self, message: str, *, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(message)


class ProjectNotFoundError(ProjectError, UserInputError, ValueError):
    """There is no project at the given place."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            f"{path}: no APEX Director project here (no project.apex.json); check the path, "
            "or create one with `apex-director project new`",
            path=path,
        )


class ProjectExistsError(ProjectError, UserInputError, ValueError):
    """``Project.create`` was pointed at a folder that already holds a project."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            f"{path}: a project already exists here; open it instead, or choose another folder",
            path=path,
        )


class ProjectFileError(ProjectError, UserInputError, ValueError):
    """``project.apex.json`` is not valid (broken JSON, wrong types, missing keys).

    Attributes
    ----------
    problem : str
        What is wrong, without the advice.
    line, column : int | None
        Where the JSON parser stopped (1-based), when the JSON itself is broken.
    backup : Path | None
        The newest valid backup, which ``Project.open(..., recover=True)`` restores.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        problem: str,
        line: int | None = None,
        column: int | None = None,
        backup: Path | None = None,
    ) -> None:
        self.problem = problem
        self.line = line
        self.column = column
        self.backup = backup
        where = f" at line {line}, column {column}" if line is not None else ""
        if backup is not None:
            advice = (
                f"fix it by hand, or restore the latest backup ({backup.parent.name}) with "
                "`apex-director project open --recover` / Project.open(path, recover=True) "
                "(the broken file is kept beside it)"
            )
        else:
            advice = "fix it by hand; there is no valid backup to restore"
        super().__init__(f"{path}: {problem}{where}; {advice}", path=path)


class AssetPathError(AssetError, UserInputError, ValueError):
    """A path given for an asset, or stored in an asset record, leads outside the project."""

    def __init__(self, message: str, *, asset_path: Path | str, operation: str) -> None:
        super().__init__(message, asset_path=Path(asset_path), operation=operation)


class QuotaExceededError(AssetError, UserInputError):
    """Storing the asset would take the project past its storage limit.

    Attributes
    ----------
    used_bytes, limit_bytes, needed_bytes : int
        Storage used now, the configured limit, and the size of the refused asset.
    """

    def __init__(self, *, used_bytes: int, limit_bytes: int, needed_bytes: int) -> None:
        self.used_bytes = used_bytes
        self.limit_bytes = limit_bytes
        self.needed_bytes = needed_bytes
        gib = 1024**3
        super().__init__(
            f"storing {needed_bytes} bytes would exceed the storage limit "
            f"({used_bytes / gib:.2f} of {limit_bytes / gib:.2f} GB used); delete unused "
            "assets (`apex-director assets dupes`, `assets clean`) or raise "
            "assets.storage_limit_gb",
            operation="store",
            details={"used": used_bytes, "limit": limit_bytes, "needed": needed_bytes},
        )


class RateLimitError(APEXDirectorError):
    """Too many requests of one kind in the current minute.

    Attributes
    ----------
    kind : str
        What was limited (``"asset_operations"``, ``"generation:diffusers"``...).
    retry_after_s : float
        Seconds until a request of this kind will be accepted again.
    """

    def __init__(self, kind: str, *, retry_after_s: float, limit_per_minute: float) -> None:
        self.kind = kind
        self.retry_after_s = retry_after_s
        self.limit_per_minute = limit_per_minute
        super().__init__(
            f"rate limit for {kind} reached ({limit_per_minute:g} per minute); retry in "
            f"{retry_after_s:.2f} s"
        )
