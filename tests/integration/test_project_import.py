"""Project export/import: round trip, and real malicious archives are refused.

Each malicious archive is built here with zipfile/tarfile; the tests check the typed
error and that nothing was written outside (or at) the destination.
"""

from __future__ import annotations

import io
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from engine.assets.project import Project
from engine.security.archive import import_archive
from engine.security.errors import ArchiveError, ArchiveTooLargeError, UnsafeArchiveError

PROJECT_JSON = b'{"schema_version": 1}'


def _listing(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


def _zip(path: Path, members: list[tuple[str, bytes]], *, symlinks: dict[str, str] | None = None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes = b"", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data) if data else None)


def _assert_nothing_written(workspace: Path, before: set[str], dest: Path) -> None:
    assert _listing(workspace) == before, "files were left behind in the workspace"
    assert not dest.exists()


def test_export_then_import_round_trip(tmp_path: Path) -> None:
    with Project.create(tmp_path / "src", name="Night drive") as project:
        (project.assets_dir / "ab").mkdir()
        (project.assets_dir / "ab" / "abcdef.png").write_bytes(b"\x89PNG fake pixels")
        (project.cache_dir / "junk.bin").write_bytes(b"x" * 100)
        project.update(settings={"preset": "web"})
        archive = project.export_archive(tmp_path / "out" / "night.zip")
    assert archive.is_file()
    with Project.import_archive(archive, tmp_path / "copy") as copy:
        assert copy.name == "Night drive"
        assert copy.settings["preset"] == "web"
        assert (copy.assets_dir / "ab" / "abcdef.png").read_bytes() == b"\x89PNG fake pixels"
        assert not (copy.cache_dir / "junk.bin").exists()  # cache is not exported


def test_tar_gz_export_round_trip(tmp_path: Path) -> None:
    with Project.create(tmp_path / "src", name="Tar") as project:
        archive = project.export_archive(tmp_path / "p.tar.gz")
    assert tarfile.is_tarfile(archive)
    with Project.import_archive(archive, tmp_path / "copy") as copy:
        assert copy.name == "Tar"


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil.txt", "traversal"),
        ("assets/../../evil.txt", "traversal"),
        ("/tmp/evil-absolute.txt", "absolute"),
        ("C:/evil.txt", "absolute"),
        ("..\\evil.txt", "traversal"),
    ],
)
def test_zip_path_traversal_is_refused(workspace: Path, member: str, reason: str) -> None:
    archive = _zip(workspace / "bad.zip", [("project.apex.json", PROJECT_JSON), (member, b"pwn")])
    before = _listing(workspace)
    dest = workspace / "dest"
    with pytest.raises(UnsafeArchiveError) as info:
        import_archive(archive, dest)
    assert reason in info.value.reason
    _assert_nothing_written(workspace, before, dest)
    assert not (workspace.parent / "evil.txt").exists()


def test_zip_symlink_out_of_project_is_refused(workspace: Path) -> None:
    archive = _zip(
        workspace / "link.zip",
        [("project.apex.json", PROJECT_JSON)],
        symlinks={"assets/passwd": "../../../../etc/passwd"},
    )
    before = _listing(workspace)
    with pytest.raises(UnsafeArchiveError, match="outside the project"):
        import_archive(archive, workspace / "dest")
    _assert_nothing_written(workspace, before, workspace / "dest")


def test_tar_symlink_then_write_through_it_is_refused(workspace: Path) -> None:
    """The classic: a symlink to outside, then a file written 'into' it."""
    archive = workspace / "link.tar"
    outside = workspace.parent / "outside"
    outside.mkdir()
    with tarfile.open(archive, "w") as tf:
        _tar_add(tf, "project.apex.json", PROJECT_JSON)
        _tar_add(tf, "assets", type=tarfile.SYMTYPE, linkname=str(outside))
        _tar_add(tf, "assets/owned.txt", b"pwn")
    before = _listing(workspace)
    with pytest.raises(UnsafeArchiveError, match="absolute path"):
        import_archive(archive, workspace / "dest")
    _assert_nothing_written(workspace, before, workspace / "dest")
    assert list(outside.iterdir()) == []


def test_tar_hard_link_out_of_project_is_refused(workspace: Path) -> None:
    archive = workspace / "hard.tar"
    with tarfile.open(archive, "w") as tf:
        _tar_add(tf, "project.apex.json", PROJECT_JSON)
        _tar_add(tf, "assets/shadow", type=tarfile.LNKTYPE, linkname="../../etc/shadow")
    before = _listing(workspace)
    with pytest.raises(UnsafeArchiveError, match="outside the project"):
        import_archive(archive, workspace / "dest")
    _assert_nothing_written(workspace, before, workspace / "dest")


def test_tar_link_inside_the_project_becomes_a_copy(workspace: Path) -> None:
    archive = workspace / "inside.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        _tar_add(tf, "project.apex.json", PROJECT_JSON)
        _tar_add(tf, "assets/a.bin", b"payload")
        _tar_add(tf, "assets/b.bin", type=tarfile.SYMTYPE, linkname="a.bin")
        _tar_add(tf, "assets/c.bin", type=tarfile.LNKTYPE, linkname="assets/a.bin")
    dest = import_archive(archive, workspace / "dest")
    for name in ("b.bin", "c.bin"):
        path = dest / "assets" / name
        assert not path.is_symlink()
        assert path.read_bytes() == b"payload"
        assert path.stat().st_nlink == 1


@pytest.mark.parametrize(
    ("tar_type", "label"),
    [(tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "FIFO")],
)
def test_tar_device_files_are_refused(workspace: Path, tar_type: bytes, label: str) -> None:
    archive = workspace / "dev.tar"
    with tarfile.open(archive, "w") as tf:
        _tar_add(tf, "project.apex.json", PROJECT_JSON)
        _tar_add(tf, "assets/null", type=tar_type, devmajor=1, devminor=3)
    before = _listing(workspace)
    with pytest.raises(UnsafeArchiveError, match=label):
        import_archive(archive, workspace / "dest")
    _assert_nothing_written(workspace, before, workspace / "dest")


def test_zip_bomb_total_size_is_refused(workspace: Path) -> None:
    """64 MiB of zeros compresses to ~64 KiB; the 8 MiB limit stops it while writing."""
    archive = workspace / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.apex.json", PROJECT_JSON)
        with zf.open("assets/zeros.bin", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(64):
                member.write(chunk)
    assert archive.stat().st_size < 1 << 20
    before = _listing(workspace)
    with pytest.raises(ArchiveTooLargeError) as info:
        import_archive(archive, workspace / "dest", max_total_bytes=8 << 20)
    assert info.value.limit == "total_bytes"
    _assert_nothing_written(workspace, before, workspace / "dest")


def test_zip_bomb_with_lying_header_is_still_stopped(workspace: Path) -> None:
    """The size counted is what is written, not the header's file_size."""
    archive = workspace / "liar.zip"
    data = bytes(4 << 20)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.apex.json", PROJECT_JSON)
        zf.writestr("assets/zeros.bin", data)
    with pytest.raises(ArchiveTooLargeError):
        import_archive(archive, workspace / "dest", max_total_bytes=1 << 20)


def test_too_many_members_is_refused(workspace: Path) -> None:
    archive = _zip(
        workspace / "many.zip",
        [("project.apex.json", PROJECT_JSON)] + [(f"assets/{i}", b"") for i in range(50)],
    )
    before = _listing(workspace)
    with pytest.raises(ArchiveTooLargeError) as info:
        import_archive(archive, workspace / "dest", max_members=20)
    assert info.value.limit == "members"
    _assert_nothing_written(workspace, before, workspace / "dest")


def test_not_a_project_and_taken_destination(workspace: Path) -> None:
    archive = _zip(workspace / "plain.zip", [("readme.txt", b"hi")])
    before = _listing(workspace)
    with pytest.raises(ArchiveError, match=r"no project\.apex\.json"):
        import_archive(archive, workspace / "dest")
    _assert_nothing_written(workspace, before, workspace / "dest")
    (workspace / "taken").mkdir()
    (workspace / "taken" / "keep.txt").write_text("mine")
    good = _zip(workspace / "good.zip", [("project.apex.json", PROJECT_JSON)])
    with pytest.raises(ArchiveError, match="not an empty folder"):
        import_archive(good, workspace / "taken")
    assert (workspace / "taken" / "keep.txt").read_text() == "mine"
    (workspace / "garbage.zip").write_bytes(b"not an archive at all")
    with pytest.raises(ArchiveError, match="not a zip or tar"):
        import_archive(workspace / "garbage.zip", workspace / "dest2")


def test_cli_export_and_import(tmp_path: Path) -> None:
    Project.create(tmp_path / "src", name="CLI").close()
    env_python = [sys.executable, "-m", "engine.cli"]
    archive = tmp_path / "cli.zip"
    done = subprocess.run(
        [*env_python, "project", "export", str(tmp_path / "src"), str(archive)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*env_python, "project", "import", str(archive), str(tmp_path / "dest")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "imported project 'CLI'" in done.stdout
    bad = _zip(tmp_path / "bad.zip", [("project.apex.json", PROJECT_JSON), ("../x", b"")])
    done = subprocess.run(
        [*env_python, "project", "import", str(bad), str(tmp_path / "dest3")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "traversal" in done.stderr
