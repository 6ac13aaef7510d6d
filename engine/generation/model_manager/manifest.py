"""``manifest.toml``: the model files we know, with their SHA-256 and licence.

The manifest lives in the models folder (``<models_dir>/manifest.toml``; the repository's
``models/manifest.toml`` is also the catalogue of models ``models pull NAME`` knows).  Each
entry is a table under ``[models]``::

    [models.sd15]
    kind = "checkpoint"
    family = "sd15"
    file = "checkpoints/v1-5-pruned-emaonly.safetensors"   # relative to the models folder
    sha256 = "6ce0161689b3..."                             # "" until first verified
    licence = "CreativeML OpenRAIL-M"
    min_vram_gb = 4.0
    repo_id = "stable-diffusion-v1-5/stable-diffusion-v1-5" # optional: where `pull` gets it
    repo_file = "v1-5-pruned-emaonly.safetensors"
    revision = "main"

Writes are atomic (a reader sees the old file or the new one, never half of it).
"""

from __future__ import annotations

import hashlib
import logging
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from engine.atomic_files import atomic_write_text
from engine.errors import ModelError, ParameterError
from engine.generation.model_manager.identify import FAMILIES, KINDS
from engine.resources import models_catalogue_dir

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "Manifest",
    "ManifestEntry",
    "VerifyResult",
    "catalogue_path",
    "sha256_file",
    "verify_entries",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.toml"
SCHEMA_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024
_HEADER = (
    "# Known model files: what they are, where they go (relative to the models folder), their\n"
    "# SHA-256 and licence.  `apex-director models verify` checks the files against it;\n"
    "# `models import` and `models pull` add to it.  See docs/models.md.\n"
)


def catalogue_path() -> Path:
    """The manifest shipped in the repository (``models/manifest.toml``): the pull catalogue."""
    return models_catalogue_dir() / MANIFEST_NAME


def sha256_file(path: Path | str, *, progress: Callable[[int, int], None] | None = None) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (a 7 GB checkpoint never sits in memory).

    Parameters
    ----------
    path : Path or str
        The file.
    progress : callable, optional
        Called as ``progress(bytes_done, bytes_total)`` after each chunk.

    Returns
    -------
    str
        Lower-case hex digest.
    """
    path = Path(path)
    total = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class ManifestEntry:
    """One model in the manifest.  Validated on construction.

    Attributes
    ----------
    name : str
        Unique name (letters, digits, ``._+-``).
    kind : str
        ``checkpoint``, ``lora``, ``upscaler``, ``ip_adapter`` or ``clip``.
    file : str
        Path relative to the models folder (``/`` separators).
    sha256 : str
        Lower-case hex SHA-256, or ``""`` when not yet known (filled in on pull/import).
    licence : str
        The weights' licence (SPDX id or name).
    min_vram_gb : float
        Smallest GPU memory it runs in with our memory strategy.
    family : str
        ``sd15``, ``sd2``, ``sdxl``, or ``""`` where it does not apply.
    repo_id, repo_file, revision : str
        Where ``models pull NAME`` downloads it from (empty if nowhere).
    """

    name: str
    kind: str
    file: str
    sha256: str = ""
    licence: str = ""
    min_vram_gb: float = 0.0
    family: str = ""
    repo_id: str = ""
    repo_file: str = ""
    revision: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ParameterError("name", self.name, "letters, digits and ._+- (max 100)")
        if self.kind not in KINDS:
            raise ParameterError("kind", self.kind, f"one of {', '.join(KINDS)}")
        if self.family and self.family not in FAMILIES:
            raise ParameterError("family", self.family, f"'' or one of {', '.join(FAMILIES)}")
        rel = Path(self.file)
        if not self.file or rel.is_absolute() or ".." in rel.parts:
            raise ParameterError("file", self.file, "a path inside the models folder")
        if self.sha256 and not _SHA_RE.match(self.sha256):
            raise ParameterError("sha256", self.sha256, "64 lower-case hex digits or ''")
        if not 0.0 <= float(self.min_vram_gb) <= 1024.0:
            raise ParameterError("min_vram_gb", self.min_vram_gb, "0 to 1024")

    def to_toml(self) -> dict[str, Any]:
        data = asdict(self)
        del data["name"]
        data["min_vram_gb"] = float(data["min_vram_gb"])
        # keep the file short: optional source fields only when set
        return {k: v for k, v in data.items() if v != "" or k in ("sha256", "family", "licence")}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of checking one entry: ``status`` is ``OK``, ``MISMATCH``, ``MISSING`` or
    ``UNCHECKED`` (no hash recorded yet; ``actual`` then holds the file's hash)."""

    entry: ManifestEntry
    path: Path
    status: str
    actual: str = ""


class Manifest:
    """A ``manifest.toml`` file: read, edited and written back atomically.

    Parameters
    ----------
    path : Path
        The file; it need not exist yet (an empty manifest).

    Raises
    ------
    ModelError
        The file exists but is not a valid manifest (the message says which entry and why).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._entries: dict[str, ManifestEntry] = {}
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ModelError(
                f"{self.path}: not valid TOML ({err}); fix or delete the file",
                path=self.path,
                error_code="manifest",
            ) from err
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ModelError(
                f"{self.path}: schema_version {version!r}, this version reads {SCHEMA_VERSION}",
                path=self.path,
                error_code="manifest",
            )
        models = data.get("models", {})
        if not isinstance(models, dict):
            raise ModelError(f"{self.path}: [models] must be a table", path=self.path)
        known = set(ManifestEntry.__dataclass_fields__)
        for name, fields in models.items():
            if not isinstance(fields, dict):
                raise ModelError(f"{self.path}: models.{name} must be a table", path=self.path)
            unknown = set(fields) - known
            if unknown:
                raise ModelError(
                    f"{self.path}: models.{name} has unknown keys {sorted(unknown)}; "
                    f"allowed: {sorted(known - {'name'})}",
                    path=self.path,
                    error_code="manifest",
                )
            try:
                self._entries[name] = ManifestEntry(name=name, **fields)
            except (ParameterError, TypeError) as err:
                raise ModelError(
                    f"{self.path}: models.{name}: {err}", path=self.path, error_code="manifest"
                ) from err

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> ManifestEntry | None:
        """The entry called ``name``, or ``None``."""
        return self._entries.get(name)

    def find_file(self, rel_file: str) -> ManifestEntry | None:
        """The entry whose ``file`` is ``rel_file``, or ``None``."""
        return next((e for e in self._entries.values() if e.file == rel_file), None)

    def put(self, entry: ManifestEntry) -> None:
        """Add or replace ``entry`` (in memory; call :meth:`save`)."""
        self._entries[entry.name] = entry

    def update(self, name: str, **changes: Any) -> ManifestEntry:
        """Replace fields of an existing entry; returns the new entry."""
        entry = replace(self._entries[name], **changes)
        self._entries[name] = entry
        return entry

    def unique_name(self, stem: str) -> str:
        """A name derived from ``stem`` that no entry uses yet."""
        base = re.sub(r"[^A-Za-z0-9._+-]+", "-", stem).strip("-._+")[:90] or "model"
        name, n = base, 2
        while name in self._entries:
            name, n = f"{base}-{n}", n + 1
        return name

    def save(self) -> None:
        """Write the manifest atomically (creating its folder if needed)."""
        import tomli_w

        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "schema_version": SCHEMA_VERSION,
            "models": {e.name: e.to_toml() for e in sorted(self, key=lambda e: e.name)},
        }
        atomic_write_text(self.path, _HEADER + tomli_w.dumps(body))


def verify_entries(
    manifest: Manifest,
    models_dir: Path | str,
    *,
    names: list[str] | None = None,
    progress: Callable[[ManifestEntry, int, int], None] | None = None,
) -> list[VerifyResult]:
    """Hash each entry's file and compare with the recorded SHA-256.

    Parameters
    ----------
    manifest : Manifest
        The manifest.
    models_dir : Path or str
        The folder the entries' ``file`` paths are relative to.
    names : list of str, optional
        Only these entries (all by default).
    progress : callable, optional
        ``progress(entry, bytes_done, bytes_total)`` while hashing.

    Returns
    -------
    list of VerifyResult

    Raises
    ------
    ModelError
        A name in ``names`` is not in the manifest.
    """
    models_dir = Path(models_dir)
    selected = list(manifest)
    if names:
        missing = [n for n in names if n not in manifest]
        if missing:
            raise ModelError(
                f"not in {manifest.path}: {', '.join(missing)}; known: "
                + (", ".join(e.name for e in manifest) or "none"),
                path=manifest.path,
                error_code="missing",
            )
        selected = [e for e in selected if e.name in names]
    results = []
    for entry in selected:
        path = models_dir / entry.file
        if path.is_dir():  # a diffusers folder: no single hash to compare
            results.append(VerifyResult(entry, path, "UNCHECKED"))
            continue
        if not path.is_file():
            results.append(VerifyResult(entry, path, "MISSING"))
            continue
        callback = None if progress is None else (lambda d, t, e=entry: progress(e, d, t))
        actual = sha256_file(path, progress=callback)
        status = "OK" if actual == entry.sha256 else "MISMATCH" if entry.sha256 else "UNCHECKED"
        if status == "MISMATCH":
            log.warning("%s: SHA-256 %s, manifest says %s", path, actual, entry.sha256)
        results.append(VerifyResult(entry, path, status, actual))
    return results
