"""Encryption at rest: round trip, wrong key, tampering, AssetManager wiring."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from engine.assets.asset_manager import AssetManager
from engine.errors import ParameterError
from engine.security.crypto import (
    MAGIC,
    ProjectCipher,
    derive_key,
    enable_encryption,
    is_encrypted,
    open_cipher,
)
from engine.security.errors import DecryptionError

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)


def test_round_trip_and_fresh_nonce() -> None:
    cipher = ProjectCipher(os.urandom(32))
    digest = hashlib.sha256(PNG).hexdigest()
    a = cipher.encrypt_asset(PNG, "assets/ab/x.png", digest)
    b = cipher.encrypt_asset(PNG, "assets/ab/x.png", digest)
    assert a.startswith(MAGIC) and a != b  # a new nonce per file
    assert PNG not in a
    assert cipher.decrypt_asset(a, "assets/ab/x.png", digest) == PNG


def test_associated_data_binds_path_and_hash() -> None:
    cipher = ProjectCipher(os.urandom(32))
    digest = hashlib.sha256(PNG).hexdigest()
    blob = cipher.encrypt_asset(PNG, "assets/ab/x.png", digest)
    with pytest.raises(DecryptionError):
        cipher.decrypt_asset(blob, "assets/cd/other.png", digest)  # moved to another name
    with pytest.raises(DecryptionError):
        cipher.decrypt_asset(blob, "assets/ab/x.png", "0" * 64)


def test_every_flipped_byte_region_is_detected() -> None:
    cipher = ProjectCipher(os.urandom(32))
    digest = hashlib.sha256(PNG).hexdigest()
    blob = cipher.encrypt_asset(PNG, "assets/a.png", digest)
    for index in (len(MAGIC), len(MAGIC) + 12, len(blob) // 2, len(blob) - 1):  # nonce, body, tag
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptionError, match="altered"):
            cipher.decrypt_asset(bytes(tampered), "assets/a.png", digest)


def test_wrong_key_fails() -> None:
    digest = hashlib.sha256(PNG).hexdigest()
    blob = ProjectCipher(os.urandom(32)).encrypt_asset(PNG, "assets/a.png", digest)
    with pytest.raises(DecryptionError, match="wrong key"):
        ProjectCipher(os.urandom(32)).decrypt_asset(blob, "assets/a.png", digest)


def test_scrypt_key_is_deterministic_per_salt() -> None:
    salt = b"s" * 16
    assert derive_key("pass", salt, n=2**10) == derive_key("pass", salt, n=2**10)
    assert derive_key("pass", salt, n=2**10) != derive_key("pass", b"t" * 16, n=2**10)
    with pytest.raises(ParameterError):
        derive_key("", salt)


def test_passphrase_project_wrong_passphrase_is_refused(tmp_path: Path) -> None:
    enable_encryption(tmp_path, passphrase="correct horse")
    assert is_encrypted(tmp_path)
    settings = (tmp_path / "encryption.json").read_text()
    assert "correct horse" not in settings and '"scrypt"' in settings
    with pytest.raises(DecryptionError, match="wrong passphrase"):
        open_cipher(tmp_path, passphrase="wrong")
    assert isinstance(open_cipher(tmp_path, passphrase="correct horse"), ProjectCipher)
    with pytest.raises(ParameterError):
        enable_encryption(tmp_path, passphrase="again")  # already encrypted


def test_asset_manager_stores_sealed_and_reads_plain(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(PNG)
    with AssetManager(tmp_path / "ws") as manager:
        manager.create_project("enc")
        plain = manager.store_asset({"content": b"stored before encryption", "extension": "txt"})
        manager.encrypt_project("s3cret pass")
        sealed = manager.store_asset({"source_path": str(source), "tags": ["x"]})
        sealed2 = manager.store_asset({"content": PNG + b"2"})
        assert sealed.read_bytes().startswith(MAGIC)
        assert PNG[100:200] not in sealed.read_bytes()
        assert manager.read_asset_bytes(sealed) == PNG
        assert manager.read_asset_bytes(sealed2) == PNG + b"2"
        assert manager.read_asset_bytes(plain) == b"stored before encryption"
        assert manager.get_asset_metadata(sealed)["size"] == len(PNG)
        project_dir = manager.project().path
    with AssetManager(tmp_path / "ws") as manager:
        manager.open_project(project_dir)
        with pytest.raises(DecryptionError, match="locked"):
            manager.read_asset_bytes(sealed)
        with pytest.raises(DecryptionError, match="locked"):
            manager.store_asset({"content": b"new while locked"})
        before = sealed.read_bytes()
        with pytest.raises(DecryptionError, match="wrong passphrase"):
            manager.unlock_project("not it")
        assert sealed.read_bytes() == before  # nothing overwritten
        manager.unlock_project("s3cret pass")
        assert manager.read_asset_bytes(sealed) == PNG
        tampered = bytearray(before)
        tampered[len(before) // 2] ^= 0xFF
        sealed.write_bytes(bytes(tampered))
        with pytest.raises(DecryptionError, match="altered"):
            manager.read_asset_bytes(sealed)
