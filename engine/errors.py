"""The exception hierarchy of the engine.

Every error the engine raises on purpose derives from :class:`APEXDirectorError`.
Third-party errors are wrapped at the boundary (``raise ... from err``) and every
message says what the user can do next.  Errors that are about the user's input
(a missing file, an unreadable song, a bad value) also derive from ``ValueError``
or the matching builtin, following PyAV's habit, so generic callers can catch them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "APEXDirectorError",
    "AssemblyError",
    "AssetError",
    "AudioInputError",
    "BackendError",
    "CancelledError",
    "ConfigurationError",
    "CorruptModelError",
    "GenerationError",
    "MediaInputError",
    "ModelError",
    "ParameterError",
    "UserInputError",
]


class APEXDirectorError(Exception):
    """Root of every error the engine raises on purpose."""


class UserInputError(APEXDirectorError):
    """Marker base: the run cannot go on because of the user's input.

    The CLI maps these to exit code 2.
    """


class ParameterError(UserInputError, ValueError):
    """A request or call got a value outside its allowed range.

    Attributes
    ----------
    name : str
        The parameter's name.
    value : Any
        The offending value.
    allowed : str
        A human description of what is allowed.
    """

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        self.name = name
        self.value = value
        self.allowed = allowed
        super().__init__(f"{name}={value!r} is not allowed: expected {allowed}")


class ConfigurationError(UserInputError, ValueError):
    """The configuration is invalid.

    Attributes
    ----------
    config_path : Path | None
        The file the configuration came from, if any.
    validation_errors : list[str]
        Every problem found, each prefixed with the dotted key it concerns.
    """

    def __init__(
        self,
        message: str,
        *,
        config_path: Path | None = None,
        validation_errors: list[str] | None = None,
    ) -> None:
        self.config_path = config_path
        self.validation_errors = list(validation_errors or [])
        detail = "; ".join(self.validation_errors)
        where = f" in {config_path}" if config_path else ""
        full = f"{message}{where}" + (f": {detail}" if detail else "")
        super().__init__(full)


class MediaInputError(UserInputError, ValueError):
    """A media file given by the user cannot be used.

    Attributes
    ----------
    path : Path
        The file concerned.
    reason : str
        What is wrong with it, and what to do.
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class AudioInputError(MediaInputError):
    """An audio file cannot be decoded or analysed (missing, empty, corrupt, too long)."""


class ModelError(UserInputError, ValueError):
    """A model file (checkpoint, LoRA, upscaler...) cannot be identified, trusted or fetched.

    A bad or missing model is the user's input, so this is a :class:`UserInputError` (the
    CLI exits with code 2) rather than a :class:`BackendError`: trying another backend does
    not repair a truncated download.  A backend that wants failover wraps it in a
    ``BackendError`` (``raise BackendError(...) from err``).

    Attributes
    ----------
    path : Path | None
        The file or folder concerned (``None`` for a hub download that never started).
    error_code : str
        A short machine-readable code: ``"unknown_family"``, ``"corrupt"``, ``"unsafe"``,
        ``"missing"``, ``"checksum"``, ``"gated"``, ``"offline"``, ``"wrong_base"``...
    """

    def __init__(
        self, message: str, *, path: Path | str | None = None, error_code: str = ""
    ) -> None:
        self.path = None if path is None else Path(path)
        self.error_code = error_code
        super().__init__(message)


class CorruptModelError(ModelError):
    """A model file is truncated or damaged; the message says to re-download or verify it."""


class GenerationError(APEXDirectorError):
    """Image generation failed.

    Attributes
    ----------
    backend : str
        Backend that failed.
    prompt : str
        The generation prompt.
    error_code : str
        A short machine-readable code (``"no_images"``, ``"oom"``, ...).
    """

    def __init__(
        self, message: str, *, backend: str = "", prompt: str = "", error_code: str = ""
    ) -> None:
        self.backend = backend
        self.prompt = prompt
        self.error_code = error_code
        super().__init__(message)


class AssemblyError(APEXDirectorError):
    """Video assembly or encoding failed.

    Attributes
    ----------
    job_id : str
        Assembly job ID.
    component : str
        Component that failed (``"encoder"``, ``"timeline"``, ...).
    stage : str
        Assembly stage where the error occurred.
    """

    def __init__(
        self, message: str, *, job_id: str = "", component: str = "", stage: str = ""
    ) -> None:
        self.job_id = job_id
        self.component = component
        self.stage = stage
        super().__init__(message)


class AssetError(APEXDirectorError):
    """An asset could not be stored, read or updated.

    Attributes
    ----------
    asset_path : Path | None
        Path to the problematic asset.
    operation : str
        Operation that failed.
    details : dict[str, Any]
        Additional error details.
    """

    def __init__(
        self,
        message: str,
        *,
        asset_path: Path | None = None,
        operation: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        self.asset_path = asset_path
        self.operation = operation
        self.details = dict(details or {})
        super().__init__(message)


class BackendError(APEXDirectorError):
    """A backend (image model, upscaler, encoder service) failed or is unavailable.

    Attributes
    ----------
    backend_name : str
        Name of the failed backend.
    status_code : int | None
        HTTP-like status code where one applies (local backends leave it ``None``).
    response : Any
        The backend's response data, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        backend_name: str = "",
        status_code: int | None = None,
        response: Any = None,
    ) -> None:
        self.backend_name = backend_name
        self.status_code = status_code
        self.response = response
        super().__init__(message)


class CancelledError(APEXDirectorError):
    """A job was cancelled by the user.  This is not a failure and is never logged as one."""
