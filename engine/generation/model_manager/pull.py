"""``models pull``: download a model from the Hugging Face Hub, resumably and verified.

``NAME`` is looked up in the models folder's manifest, then in the shipped catalogue
(``models/manifest.toml``); ``REPO_ID:FILE`` names any file on the Hub.  The download goes
through ``huggingface_hub`` (its ``get_hf_file_metadata`` and ``http_get``) into
``<models_dir>/.downloads/NAME.ETAG.part``: a dropped connection is retried from where it
stopped within the run, and a run that fails keeps the part file so the next one asks only
for the missing bytes.  The SHA-256 is then checked against the manifest or, failing that,
the Hub's own LFS SHA-256 (the ``X-Linked-Etag`` of the file), and only then is the file
identified, moved into the folder of its kind and recorded in the manifest.

``HF_ENDPOINT`` (or ``endpoint=``) points at a mirror; ``HF_TOKEN`` or ``hf auth login``
gives access to gated repositories.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.errors import BackendError, ModelError
from engine.generation.model_manager.identify import ModelInfo, identify_model
from engine.generation.model_manager.install import record_model
from engine.generation.model_manager.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestEntry,
    catalogue_path,
    sha256_file,
)
from engine.generation.model_manager.registry import folder_for_kind

__all__ = ["PullResult", "parse_spec", "pull_model"]

log = logging.getLogger(__name__)

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DOWNLOADS = ".downloads"


@dataclass(frozen=True, slots=True)
class PullResult:
    """A finished pull: where the file is, its manifest entry and what it is."""

    path: Path
    entry: ManifestEntry
    info: ModelInfo
    sha256_source: str  # "manifest" or "hub"


def parse_spec(
    spec: str, manifest: Manifest, catalogue: Manifest
) -> tuple[str, str, str, ManifestEntry | None]:
    """Resolve ``NAME`` or ``REPO_ID[:FILE]`` to ``(repo_id, file, revision, entry)``.

    Raises
    ------
    ModelError
        An unknown name, a catalogue entry without a source, or a repository without a file.
    """
    entry = manifest.get(spec) or catalogue.get(spec)
    if entry is not None:
        if not (entry.repo_id and entry.repo_file):
            raise ModelError(
                f"{spec!r} has no download source in the manifest (repo_id/repo_file); "
                "download it yourself and run `apex-director models import FILE`",
                error_code="missing",
            )
        return entry.repo_id, entry.repo_file, entry.revision or "main", entry
    repo_id, _, filename = spec.partition(":")
    if not _REPO_RE.match(repo_id):
        known = sorted({e.name for e in manifest} | {e.name for e in catalogue})
        raise ModelError(
            f"{spec!r} is neither a known model name ({', '.join(known) or 'none'}) nor a "
            "Hugging Face repository (OWNER/REPO:FILE)",
            error_code="missing",
        )
    if not filename:
        raise ModelError(
            f"name the file to fetch from {repo_id}: `apex-director models pull "
            f"{repo_id}:FILE.safetensors` (a single-file checkpoint, LoRA or upscaler)",
            error_code="missing",
        )
    return repo_id, filename, "main", None


def _download_resumable(
    metadata: Any, hub_url: str, staging: Path, filename: str, *, token: str | None
) -> Path:
    """Download to ``staging/NAME.ETAG.part``, appending to what an earlier run left there.

    ``hf_hub_download`` retries a dropped connection within one call but deletes its partial
    file when the call fails, so a 7 GB download cut off for longer starts over.  Here the
    partial file is kept and the next run asks only for the missing bytes (an HTTP ``Range``
    request through huggingface_hub's own ``http_get``, which also retries within the run).
    """
    from urllib.parse import urlparse

    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    etag = re.sub(r"[^0-9A-Za-z]", "", metadata.etag or "")[:16] or "noetag"
    name = Path(filename).name
    part = staging / f"{name}.{etag}.part"
    headers = build_hf_headers(token=token)
    url = str(metadata.location or hub_url)
    if urlparse(url).netloc != urlparse(hub_url).netloc:
        headers.pop("authorization", None)  # a signed CDN address: never send the token there
    size = metadata.size
    with part.open("ab") as handle:
        resume = handle.tell()
        if size is not None and resume > size:  # a stale partial file: start over
            handle.truncate(0)
            handle.seek(0)
            resume = 0
        if resume:
            log.info("resuming %s at byte %d of %s", name, resume, size)
        http_get(
            url,
            handle,
            resume_size=resume,
            headers=headers,
            expected_size=size,
            displayed_filename=name,
        )
    final = staging / name
    os.replace(part, final)
    return final


def pull_model(
    spec: str,
    models_dir: Path | str,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    revision: str | None = None,
    licence: str = "",
    catalogue: Path | str | None = None,
    progress: Callable[[str], None] | None = None,
) -> PullResult:
    """Download ``spec`` into ``models_dir``, verify it and record it.

    Parameters
    ----------
    spec : str
        A manifest/catalogue name, or ``REPO_ID:FILE``.
    models_dir : Path or str
        The models folder.
    endpoint : str, optional
        Hub endpoint (default ``HF_ENDPOINT`` or https://huggingface.co).
    token : str, optional
        Access token (default ``HF_TOKEN`` or the saved login).
    revision : str, optional
        Branch, tag or commit (default the manifest's, or ``main``).
    licence : str
        Recorded in the manifest for a ``REPO_ID:FILE`` pull.
    catalogue : Path or str, optional
        The catalogue manifest (default the shipped ``models/manifest.toml``).
    progress : callable, optional
        Receives one-line status messages.

    Returns
    -------
    PullResult

    Raises
    ------
    ModelError
        Unknown name; gated or private repository (``error_code="gated"``); file or repository
        not found; offline (``"offline"``); checksum mismatch (``"checksum"``, the file is
        deleted); the downloaded file cannot be identified.
    BackendError
        ``huggingface_hub`` is not installed.
    """
    say = progress or (lambda message: log.info("%s", message))
    models_dir = Path(models_dir).expanduser()
    manifest = Manifest(models_dir / MANIFEST_NAME)
    cat = Manifest(catalogue if catalogue is not None else catalogue_path())
    repo_id, filename, default_rev, entry = parse_spec(spec, manifest, cat)
    revision = revision or default_rev
    try:
        import huggingface_hub
        from huggingface_hub import errors as hf_errors
    except ImportError as err:
        raise BackendError(
            "downloading models needs huggingface_hub; install the `sd` extra: "
            "pip install 'apex-director[sd]'",
            backend_name="huggingface_hub",
        ) from err
    staging = models_dir / DOWNLOADS
    staging.mkdir(parents=True, exist_ok=True)
    where = f"{repo_id}/{filename}@{revision}"
    say(f"fetching {where}")
    try:
        hub_url = huggingface_hub.hf_hub_url(
            repo_id, filename, revision=revision, endpoint=endpoint
        )
        metadata = huggingface_hub.get_hf_file_metadata(hub_url, token=token, endpoint=endpoint)
        downloaded = _download_resumable(metadata, hub_url, staging, filename, token=token)
    except hf_errors.GatedRepoError as err:
        raise ModelError(
            f"{repo_id} is gated: accept its licence at https://huggingface.co/{repo_id} "
            "while logged in, then log in here (`hf auth login`, or set HF_TOKEN) and pull again",
            error_code="gated",
        ) from err
    except hf_errors.RepositoryNotFoundError as err:
        raise ModelError(
            f"repository {repo_id} not found (or private: log in with `hf auth login` or set "
            "HF_TOKEN); check the name",
            error_code="missing",
        ) from err
    except (hf_errors.EntryNotFoundError, hf_errors.RevisionNotFoundError) as err:
        raise ModelError(
            f"{filename} (revision {revision}) is not in {repo_id}; check the file name",
            error_code="missing",
        ) from err
    except hf_errors.HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            raise ModelError(
                f"{repo_id}: access denied ({status}); the repository is gated or private: "
                "log in (`hf auth login` or HF_TOKEN) with an account that has accepted "
                "its licence",
                error_code="gated",
            ) from err
        raise ModelError(
            f"download of {where} failed ({err}); try again later", error_code="offline"
        ) from err
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled, OSError) as err:
        raise ModelError(
            f"cannot reach the Hugging Face Hub to fetch {where} (offline? HF_HUB_OFFLINE is "
            f"{os.environ.get('HF_HUB_OFFLINE', 'unset')}): download the file on a connected "
            "machine and run `apex-director models import FILE`",
            error_code="offline",
        ) from err
    except Exception as err:  # httpx connection errors are not OSError subclasses
        if type(err).__module__.startswith(("httpx", "httpcore")):
            raise ModelError(
                f"cannot reach the Hugging Face Hub to fetch {where} ({err}); check the "
                "connection, or download elsewhere and `apex-director models import FILE`",
                error_code="offline",
            ) from err
        raise
    expected = entry.sha256 if entry is not None and entry.sha256 else ""
    hub_sha = (metadata.etag or "").strip('"').lower()
    source = "manifest" if expected else "hub"
    if not expected:
        if not _SHA_RE.match(hub_sha):
            # Small non-LFS files carry a git blob id instead; there is nothing to compare.
            log.warning("%s: the Hub gives no SHA-256 for this file; recording its own", where)
        expected = hub_sha if _SHA_RE.match(hub_sha) else ""
    say(f"verifying {downloaded.name}")
    actual = sha256_file(downloaded)
    if expected and actual != expected:
        downloaded.unlink()
        raise ModelError(
            f"{where}: SHA-256 {actual} does not match the {source}'s {expected}; the "
            "damaged download was deleted, pull again",
            path=downloaded,
            error_code="checksum",
        )
    info = identify_model(downloaded)
    folder = folder_for_kind(models_dir, info.kind)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(entry.file).name if entry is not None else folder / downloaded.name
    os.replace(downloaded, target)
    rel = target.relative_to(models_dir).as_posix()
    if entry is not None:  # start from the catalogue's entry (licence, min VRAM, name)
        manifest.put(replace(manifest.get(entry.name) or entry, file=rel))
    recorded = record_model(
        manifest,
        info,
        rel,
        actual,
        name=entry.name if entry is not None else None,
        licence=licence or (entry.licence if entry is not None else ""),
        min_vram_gb=entry.min_vram_gb if entry is not None and entry.min_vram_gb else None,
        repo_id=repo_id,
        repo_file=filename,
        revision=revision,
    )
    manifest.save()
    say(f"saved {rel} ({info.kind}, {info.family_name}), SHA-256 checked against the {source}")
    return PullResult(path=target, entry=recorded, info=info, sha256_source=source)
