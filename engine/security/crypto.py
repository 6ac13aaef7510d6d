"""Optional encryption at rest of a project's asset files (AES-256-GCM).

A project is encrypted when its folder holds ``encryption.json``: the KDF parameters, a
random salt and a key-check token (never the key).  The 256-bit key comes from

* a passphrase through scrypt (``hashlib.scrypt``, n=2**15, r=8, p=1, the salt above), or
* the operating system's keyring (the ``keyring`` package, when installed): a random key
  stored under the service ``apex-director`` and the project's id.

Each file is sealed on its own: ``MAGIC | 12-byte random nonce | ciphertext+tag``, with
associated data binding the file's project-relative path and the SHA-256 of its plaintext,
so a file copied over another asset's name, or altered by one byte, fails to open with
:class:`DecryptionError` instead of returning wrong bytes.

The sensitive metadata of an asset (``description``, ``prompt`` and the ``metadata`` JSON
object) is sealed the same way in the database: ``FIELD_PREFIX`` + base64 of the blob,
with associated data binding the asset's content hash and the field's name, so a blob
copied to another asset or field fails to open.  Name, category, MIME type, size, tags and
dates stay in the clear (listing and search use them).  A wrong passphrase is caught
by the key-check token before anything is read or written.

``cryptography`` is imported lazily; without it :class:`EncryptionUnavailableError`
says how to install it (``pip install 'apex-director[secure]'``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from engine.atomic_files import atomic_write_text
from engine.errors import ParameterError
from engine.security.errors import DecryptionError, EncryptionUnavailableError

__all__ = [
    "ENCRYPTION_FILE",
    "FIELD_PREFIX",
    "MAGIC",
    "SEALED_METADATA_KEY",
    "SENSITIVE_TEXT_FIELDS",
    "ProjectCipher",
    "derive_key",
    "enable_encryption",
    "is_encrypted",
    "is_sealed_metadata",
    "is_sealed_text",
    "open_cipher",
]

log = logging.getLogger(__name__)

ENCRYPTION_FILE = "encryption.json"
MAGIC = b"APXENC1\n"
NONCE_BYTES = 12
KEY_BYTES = 32
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
KEYRING_SERVICE = "apex-director"
# Sealed metadata fields in the database (description, prompt, metadata JSON).
FIELD_PREFIX = "apxenc1:"
SEALED_METADATA_KEY = "apxenc1"
SENSITIVE_TEXT_FIELDS = ("description", "prompt")
_CHECK_PLAINTEXT = b"apex-director key check"
_CHECK_AAD = b"key-check"


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as err:  # pragma: no cover - the secure extra is installed here
        raise EncryptionUnavailableError() from err
    return AESGCM(key)


def derive_key(
    passphrase: str, salt: bytes, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P
) -> bytes:
    """A 256-bit key from ``passphrase`` by scrypt (``salt`` at least 16 bytes)."""
    if not passphrase:
        raise ParameterError("passphrase", "", "a non-empty passphrase")
    if len(salt) < 16:
        raise ParameterError("salt", len(salt), "at least 16 bytes")
    return hashlib.scrypt(
        passphrase.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * n * r + (1 << 20),
        dklen=KEY_BYTES,
    )


class ProjectCipher:
    """Seals and opens one project's files with AES-256-GCM (see the module docstring)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ParameterError("key", f"{len(key)} bytes", f"{KEY_BYTES} bytes")
        self._aead = _aesgcm(key)

    @staticmethod
    def associated_data(rel_path: str, content_hash: str) -> bytes:
        """What each file is bound to: its project-relative path and plaintext SHA-256."""
        return f"apex-asset\x00{rel_path}\x00{content_hash}".encode()

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """``MAGIC | nonce | ciphertext+tag`` with a fresh random nonce."""
        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, blob: bytes, associated_data: bytes, *, target: str = "data") -> bytes:
        """The plaintext; :class:`DecryptionError` for a wrong key or altered bytes."""
        from cryptography.exceptions import InvalidTag

        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
            raise DecryptionError(target, reason="not an APEX Director encrypted file")
        nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES :], associated_data)
        except InvalidTag as err:
            raise DecryptionError(
                target, reason="authentication failed: wrong key, or the file was altered"
            ) from err

    def encrypt_asset(self, plaintext: bytes, rel_path: str, content_hash: str) -> bytes:
        """Seal an asset file's bytes, bound to its path and hash."""
        return self.encrypt(plaintext, self.associated_data(rel_path, content_hash))

    @staticmethod
    def field_associated_data(content_hash: str, field: str) -> bytes:
        """What a sealed metadata field is bound to: its asset's hash and the field's name."""
        return f"apex-field\x00{content_hash}\x00{field}".encode()

    def seal_text(self, value: str, content_hash: str, field: str) -> str:
        """A text field sealed for the database: ``FIELD_PREFIX`` + base64 of the blob."""
        blob = self.encrypt(value.encode("utf-8"), self.field_associated_data(content_hash, field))
        return FIELD_PREFIX + _b64(blob)

    def open_text(self, value: str, content_hash: str, field: str) -> str:
        """A field as stored (sealed or, from before encryption, clear) in the clear.

        Raises
        ------
        DecryptionError
            Wrong key, the blob was altered, or it was moved to another asset or field.
        """
        if not is_sealed_text(value):
            return value
        target = f"asset {content_hash[:12]} {field}"
        try:
            blob = base64.b64decode(value[len(FIELD_PREFIX) :], validate=True)
        except ValueError as err:
            raise DecryptionError(target, reason="the sealed field is not valid base64") from err
        aad = self.field_associated_data(content_hash, field)
        return self.decrypt(blob, aad, target=target).decode("utf-8")

    def seal_metadata(self, metadata: dict[str, Any], content_hash: str) -> dict[str, str]:
        """A metadata object sealed as ``{SEALED_METADATA_KEY: sealed JSON text}``."""
        text = json.dumps(metadata, sort_keys=True, separators=(",", ":"))
        return {SEALED_METADATA_KEY: self.seal_text(text, content_hash, "metadata")}

    def open_metadata(self, stored: dict[str, Any], content_hash: str) -> dict[str, Any]:
        """The metadata object from its stored form (sealed or clear)."""
        if not is_sealed_metadata(stored):
            return stored
        opened = json.loads(self.open_text(stored[SEALED_METADATA_KEY], content_hash, "metadata"))
        if not isinstance(opened, dict):  # pragma: no cover - authenticated by the AAD
            raise DecryptionError(content_hash[:12], reason="sealed metadata is not an object")
        return opened

    def decrypt_asset(self, blob: bytes, rel_path: str, content_hash: str) -> bytes:
        """Open an asset file's bytes and check them against ``content_hash``."""
        plaintext = self.decrypt(
            blob, self.associated_data(rel_path, content_hash), target=rel_path
        )
        if hashlib.sha256(plaintext).hexdigest() != content_hash:  # pragma: no cover - AAD
            raise DecryptionError(rel_path, reason="content hash mismatch")
        return plaintext


def is_sealed_text(value: Any) -> bool:
    """Whether a database text value is a sealed field (see :meth:`ProjectCipher.seal_text`)."""
    return isinstance(value, str) and value.startswith(FIELD_PREFIX)


def is_sealed_metadata(value: Any) -> bool:
    """Whether a stored metadata object is sealed (see :meth:`ProjectCipher.seal_metadata`)."""
    return isinstance(value, dict) and set(value) == {SEALED_METADATA_KEY}


def is_encrypted(project_dir: Path | str) -> bool:
    """Whether the project folder is set up for encryption at rest."""
    return (Path(project_dir) / ENCRYPTION_FILE).is_file()


def project_key_kind(project_dir: Path | str) -> str | None:
    """How the project in ``project_dir`` is keyed: ``"keyring"``, the KDF name of a
    passphrase (``"scrypt"``), ``"unknown"`` for an unreadable ``encryption.json``
    (unlocking says what is wrong with it), or None when it is not encrypted."""
    path = Path(project_dir) / ENCRYPTION_FILE
    if not path.is_file():
        return None
    try:
        kdf = json.loads(path.read_text(encoding="utf-8")).get("kdf", {})
    except (OSError, ValueError, AttributeError):
        return "unknown"
    return str(kdf.get("name", "unknown")) if isinstance(kdf, dict) else "unknown"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _keyring() -> Any:
    try:
        import keyring
    except ImportError as err:
        raise ParameterError(
            "passphrase", None, "a passphrase (the 'keyring' package is not installed)"
        ) from err
    return keyring


def enable_encryption(
    project_dir: Path | str,
    *,
    passphrase: str | None = None,
    project_id: str | None = None,
) -> ProjectCipher:
    """Set up encryption at rest for a project (new asset files are sealed from now on).

    Parameters
    ----------
    passphrase : str, optional
        The passphrase (scrypt); without it a random key is kept in the OS keyring under
        ``project_id`` (needs the ``keyring`` package).

    Raises
    ------
    ParameterError
        The project is already encrypted, or no passphrase and no keyring.
    """
    project_dir = Path(project_dir)
    if is_encrypted(project_dir):
        raise ParameterError("project", str(project_dir), "a project not yet encrypted")
    _aesgcm(os.urandom(KEY_BYTES))  # fail early without cryptography
    salt = os.urandom(16)
    settings: dict[str, Any] = {"version": 1, "cipher": "AES-256-GCM"}
    if passphrase is not None:
        key = derive_key(passphrase, salt)
        settings["kdf"] = {
            "name": "scrypt",
            "salt": _b64(salt),
            "n": SCRYPT_N,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
        }
    else:
        if not project_id:
            raise ParameterError("project_id", project_id, "the project's id (keyring entry)")
        key = os.urandom(KEY_BYTES)
        _keyring().set_password(KEYRING_SERVICE, project_id, _b64(key))
        settings["kdf"] = {"name": "keyring", "service": KEYRING_SERVICE, "user": project_id}
    cipher = ProjectCipher(key)
    settings["check"] = _b64(cipher.encrypt(_CHECK_PLAINTEXT, _CHECK_AAD))
    atomic_write_text(project_dir / ENCRYPTION_FILE, json.dumps(settings, indent=2) + "\n")
    log.info("encryption at rest enabled for %s (%s)", project_dir, settings["kdf"]["name"])
    return cipher


def open_cipher(project_dir: Path | str, *, passphrase: str | None = None) -> ProjectCipher:
    """The cipher of an encrypted project, after checking the key.

    Raises
    ------
    DecryptionError
        Wrong passphrase (or keyring key); nothing was read or written.
    ParameterError
        The project is not encrypted, or it needs a passphrase and none was given.
    """
    project_dir = Path(project_dir)
    path = project_dir / ENCRYPTION_FILE
    if not path.is_file():
        raise ParameterError("project", str(project_dir), "an encrypted project")
    settings = json.loads(path.read_text(encoding="utf-8"))
    kdf = settings["kdf"]
    if kdf["name"] == "scrypt":
        if passphrase is None:
            raise ParameterError("passphrase", None, f"the passphrase of {project_dir}")
        key = derive_key(
            passphrase, base64.b64decode(kdf["salt"]), n=kdf["n"], r=kdf["r"], p=kdf["p"]
        )
    else:
        stored = _keyring().get_password(kdf["service"], kdf["user"])
        if stored is None:
            raise DecryptionError(str(project_dir), reason="no key in the OS keyring")
        key = base64.b64decode(stored)
    cipher = ProjectCipher(key)
    try:
        cipher.decrypt(base64.b64decode(settings["check"]), _CHECK_AAD, target=str(path))
    except DecryptionError as err:
        raise DecryptionError(str(project_dir), reason="wrong passphrase or key") from err
    return cipher
