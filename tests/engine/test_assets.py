"""AssetManager: content-addressed store, search, metadata, duplicates, quotas, bad paths."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.assets.asset_manager import AssetManager
from engine.assets.errors import AssetPathError, QuotaExceededError, RateLimitError
from engine.assets.perceptual import hamming, image_phash
from engine.assets.rate_limit import TokenBucket
from engine.errors import AssetError, MediaInputError, ParameterError, UserInputError
from engine.storage import DiskFullError


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[AssetManager]:
    am = AssetManager(tmp_path / "workspace")
    am.create_project("Night drive", description="test project", tags=["synthwave"])
    yield am
    am.close()


def _scene(seed: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A picture with structure (gradient, shapes), different for each seed."""
    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, np.pi)
    base = (np.cos(angle) * x + np.sin(angle) * y) / (w + h) * 255
    image = np.stack([base, 255 - base, np.full_like(base, 80.0)], axis=-1).astype(np.uint8)
    for _ in range(6):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(15, 70)), colour, -1)
    return image


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def test_store_is_content_addressed_and_deduplicated(manager: AssetManager) -> None:
    project = manager.project()
    first = manager.store_asset(
        {"content": b"frame one", "name": "first", "tags": ["City"], "extension": "bin"}
    )
    digest = first.stem
    assert first == project.path / "assets" / digest[:2] / f"{digest}.bin"
    assert first.read_bytes() == b"frame one" and len(digest) == 64
    again = manager.store_asset({"content": b"frame one", "name": "copy", "tags": ["rain"]})
    assert again == first
    meta = manager.get_asset_metadata(first)
    assert meta["name"] == "first" and meta["tags"] == ["city", "rain"]
    assert project.models.Asset.select().count() == 1
    assert [p.name for p in (project.path / "assets").rglob("*")] == [first.parent.name, first.name]


def test_import_a_file_and_look_it_up_by_path_or_hash(
    manager: AssetManager, tmp_path: Path
) -> None:
    source = tmp_path / "still_01.png"
    source.write_bytes(_png(_scene(1)))
    stored = manager.store_asset({"source_path": source, "prompt": "a red sunset"})
    assert stored.suffix == ".png" and stored.read_bytes() == source.read_bytes()
    by_path = manager.get_asset_metadata(stored)
    by_rel = manager.get_asset_metadata(by_path["rel_path"])
    by_hash = manager.get_asset_metadata(by_path["content_hash"])
    assert by_path == by_rel == by_hash
    assert by_path["name"] == "still_01.png" and by_path["mime"] == "image/png"
    assert by_path["category"] == "image" and by_path["size"] == source.stat().st_size
    assert by_path["perceptual_hash"] is not None and by_path["exists"]
    # The same bytes given as content are the same asset.
    assert manager.store_asset({"content": source.read_bytes()}) == stored


def test_search_by_words_category_tags_and_filters(manager: AssetManager) -> None:
    def store(content: bytes, **fields: object) -> Path:
        return manager.store_asset({"content": content, "extension": "bin", **fields})

    sunset = store(
        b"a" * 10,
        name="Sunset over the sea",
        category="image",
        tags=["warm", "sea"],
        metadata={"seed": 7, "model": "sd15"},
    )
    city = store(
        b"b" * 200,
        name="Neon city",
        prompt="rain, neon signs, night",
        category="image",
        tags=["night"],
        metadata={"seed": 8},
    )
    song = store(
        b"c" * 3000,
        name="Night song",
        description="the sea at night",
        category="audio",
        tags=["night", "sea"],
        mime="audio/wav",
    )
    assert manager.search_assets("sunset") == [sunset]
    assert manager.search_assets("SUN") == [sunset]  # prefix, any case
    assert set(manager.search_assets("night")) == {city, song}
    assert manager.search_assets("night sea") == [song]  # every word must match
    assert manager.search_assets("neon signs") == [city]  # the prompt is indexed
    assert manager.search_assets("night", category="audio") == [song]
    assert manager.search_assets(tags=["night", "sea"]) == [song]
    assert set(manager.search_assets(tags=["sea"])) == {sunset, song}
    assert manager.search_assets("", mime="audio/") == [song]
    assert manager.search_assets(min_size=100, max_size=1000) == [city]
    assert manager.search_assets(metadata={"seed": 7}) == [sunset]
    assert manager.search_assets(metadata={"model": "sd15", "seed": 8}) == []
    assert manager.search_assets() == [song, city, sunset]  # newest first
    assert len(manager.search_assets(limit=2)) == 2
    assert manager.search_assets(created_after=time.time() + 60) == []
    assert manager.search_assets('"unbalanced (quote* AND OR') == []  # never an FTS error
    with pytest.raises(ParameterError, match="colour"):
        manager.search_assets("x", colour="red")


def test_update_metadata_and_tags_reach_the_search_index(manager: AssetManager) -> None:
    path = manager.store_asset(
        {"content": b"x", "name": "draft", "tags": ["old", "keep"], "metadata": {"a": 1, "b": 2}}
    )
    assert manager.update_asset_metadata(
        path,
        {
            "name": "final hero shot",
            "add_tags": ["hero"],
            "remove_tags": ["old"],
            "metadata": {"a": None, "c": 3},
        },
    )
    meta = manager.get_asset_metadata(path)
    assert meta["name"] == "final hero shot" and meta["tags"] == ["hero", "keep"]
    assert meta["metadata"] == {"b": 2, "c": 3}
    assert manager.search_assets("hero shot") == [path]
    assert manager.search_assets("draft") == [] and manager.search_assets(tags=["old"]) == []
    manager.update_asset_metadata(path, {"tags": ["only"]})
    assert manager.get_asset_metadata(path)["tags"] == ["only"]
    with pytest.raises(ParameterError, match="cannot change"):
        manager.update_asset_metadata(path, {"rel_path": "../elsewhere.png"})
    assert manager.get_asset_metadata(path)["rel_path"].startswith("assets/")


def test_bad_store_requests_are_typed(manager: AssetManager, tmp_path: Path) -> None:
    with pytest.raises(MediaInputError, match="no such file"):
        manager.store_asset({"source_path": tmp_path / "missing.png"})
    with pytest.raises(MediaInputError, match="not a regular file"):
        manager.store_asset({"source_path": tmp_path})
    with pytest.raises(ParameterError, match="exactly one"):
        manager.store_asset({"name": "nothing"})
    with pytest.raises(ParameterError, match="keys among"):
        manager.store_asset({"content": b"x", "rel_path": "/etc/passwd"})
    with pytest.raises(ParameterError, match="extension"):
        manager.store_asset({"content": b"x", "extension": "../../x"})
    assert manager.project().models.Asset.select().count() == 0


def test_symlink_to_a_file_outside_the_project_is_refused(
    manager: AssetManager, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    link = tmp_path / "innocent.png"
    link.symlink_to(secret)
    project = manager.project()
    with pytest.raises(AssetPathError, match=r"symbolic link.*outside the project") as info:
        manager.store_asset({"source_path": link})
    assert isinstance(info.value, UserInputError) and isinstance(info.value, AssetError)
    assert info.value.operation == "import"
    assert list((project.path / "assets").iterdir()) == []
    assert project.models.Asset.select().count() == 0
    # A link that stays inside the project is fine.
    inside = project.path / "cache" / "real.bin"
    inside.write_bytes(b"inside")
    (project.path / "cache" / "link.bin").symlink_to(inside)
    stored = manager.store_asset({"source_path": project.path / "cache" / "link.bin"})
    assert stored.read_bytes() == b"inside"


def test_asset_record_pointing_outside_the_project_is_refused(
    manager: AssetManager, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    good = manager.store_asset({"content": b"good", "name": "good one"})
    bad = manager.store_asset({"content": b"bad", "name": "bad one"})
    project = manager.project()
    digest = bad.stem
    project.database.execute_sql(
        "UPDATE asset SET rel_path = ? WHERE content_hash = ?", ("../outside.txt", digest)
    )
    with pytest.raises(AssetPathError, match="points outside"):
        manager.get_asset_metadata(digest)
    with pytest.raises(AssetPathError, match="points outside"):
        manager.update_asset_metadata(digest, {"name": "renamed"})
    with caplog.at_level(logging.WARNING):
        assert manager.search_assets("one") == [good]
    assert "bad asset record" in caplog.text
    project.database.execute_sql(
        "UPDATE asset SET rel_path = ? WHERE content_hash = ?", (str(outside), digest)
    )
    with pytest.raises(AssetPathError):
        manager.get_asset_metadata(digest)
    assert outside.read_text() == "not yours"
    with pytest.raises(AssetPathError, match="not inside the assets folder"):
        manager.get_asset_metadata(outside)
    with pytest.raises(AssetPathError):
        manager.get_asset_metadata(project.path / "project.apex.json")


def test_find_duplicates_exact_and_near_identical_images(tmp_path: Path) -> None:
    manager = AssetManager(tmp_path / "ws")
    first = manager.create_project("one")
    original = _scene(3)
    png = manager.store_asset({"content": _png(original), "name": "original"})
    small = cv2.resize(original, (224, 168), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    near = manager.store_asset({"content": jpeg.tobytes(), "name": "resized re-encoded"})
    other = manager.store_asset({"content": _png(_scene(4)), "name": "different"})
    text = manager.store_asset({"content": b"not an image"})
    assert near != png
    manager.create_project("two")
    copy_elsewhere = manager.store_asset({"content": b"not an image"})
    assert copy_elsewhere != text
    groups = manager.find_duplicates()
    assert sorted(groups) == sorted([sorted([png, near]), sorted([text, copy_elsewhere])])
    assert all(other not in group for group in groups)
    # Identical bytes are duplicates whatever the distance allowed.
    assert sorted([text, copy_elsewhere]) in manager.find_duplicates(max_distance=0)
    assert first.models.Asset.select().count() == 4
    manager.close()


def test_perceptual_hash_separates_pictures_and_survives_reencoding() -> None:
    hashes = [image_phash(_png(_scene(seed))) for seed in range(6)]
    assert all(h is not None for h in hashes)
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]  # type: ignore[arg-type]
    assert min(distances) > 12
    original = _scene(0)
    ok, jpeg = cv2.imencode(
        ".jpg", cv2.resize(original, (160, 120)), [cv2.IMWRITE_JPEG_QUALITY, 50]
    )
    assert ok and hamming(hashes[0], image_phash(jpeg.tobytes())) <= 6  # type: ignore[arg-type]
    assert image_phash(b"garbage") is None and image_phash(b"") is None


def test_statistics_and_quota(tmp_path: Path) -> None:
    # 6 a minute refills one token in 10 s: the count below cannot move while the test runs.
    manager = AssetManager(tmp_path, {"asset_operations_per_minute": 6})
    manager.create_project("stats")
    manager.store_asset({"content": b"a" * 100, "category": "image", "extension": "png"})
    manager.store_asset({"content": b"b" * 50, "category": "audio", "extension": "wav"})
    stats = manager.get_storage_statistics()
    assert stats["total_assets"] == 2 and stats["total_bytes"] == 150
    assert stats["by_category"] == {
        "audio": {"count": 1, "bytes": 50},
        "image": {"count": 1, "bytes": 100},
    }
    assert stats["projects"][0]["database_bytes"] > 0 and stats["disk"]["free_bytes"] > 0
    quota = manager.get_quota_status()
    assert quota["storage_used_gb"] == pytest.approx(150 / 1024**3)
    assert quota["storage_limit_gb"] == 100.0
    assert quota["requests_remaining"] == 6 - 3  # three asset operations so far
    assert quota["requests_per_minute"] == 6
    manager.close()


def test_storage_limit_refuses_an_asset_that_does_not_fit(tmp_path: Path) -> None:
    manager = AssetManager(tmp_path, {"assets": {"storage_limit_gb": 1000 / 1024**3}})
    project = manager.create_project("tiny")
    manager.store_asset({"content": b"x" * 600})
    with pytest.raises(QuotaExceededError, match="storage limit") as info:
        manager.store_asset({"content": b"y" * 600})
    assert info.value.used_bytes == 600 and info.value.needed_bytes == 600
    assert project.models.Asset.select().count() == 1
    assert len([p for p in (project.path / "assets").rglob("*") if p.is_file()]) == 1
    with pytest.raises(ParameterError, match=r"assets\.colour"):
        AssetManager(tmp_path, {"assets": {"colour": 1}})
    manager.close()


def test_rate_limit_says_when_to_retry(tmp_path: Path) -> None:
    manager = AssetManager(tmp_path, {"asset_operations_per_minute": 2, "render": {}})
    manager.create_project("p")
    manager.store_asset({"content": b"1"})
    manager.search_assets("x")
    with pytest.raises(RateLimitError, match=r"retry in \d") as info:
        manager.search_assets("x")
    assert 0 < info.value.retry_after_s <= 30.0
    manager.close()

    now = [0.0]
    bucket = TokenBucket("generation:diffusers", 60, clock=lambda: now[0])
    for _ in range(60):
        bucket.acquire()
    with pytest.raises(RateLimitError) as info:
        bucket.acquire()
    assert info.value.retry_after_s == pytest.approx(1.0)
    now[0] += 1.0
    bucket.acquire()
    assert bucket.remaining == 0
    assert TokenBucket("unlimited", None).remaining is None


def test_cleanup_removes_old_temp_files_only(manager: AssetManager, tmp_path: Path) -> None:
    project = manager.project()
    kept_asset = manager.store_asset({"content": b"keep me", "extension": "bin"})
    old = time.time() - 48 * 3600
    shard = kept_asset.parent
    stale = shard / f".{kept_asset.name}.tmp-abc123"
    stale.write_bytes(b"half")
    fresh = shard / ".other.png.tmp-def456"
    fresh.write_bytes(b"in progress")
    stale_project = project.path / ".project.apex.json.tmp-zzz"
    stale_project.write_text("{")
    half_backup = project.path / "backups" / ".tmp-20260101T000000000000Z-r1"
    half_backup.mkdir()
    (half_backup / "project.apex.json").write_text("{")
    (project.path / "cache" / "tmp").mkdir()
    scratch = project.path / "cache" / "tmp" / "frame.raw"
    scratch.write_bytes(b"x")
    victim = tmp_path / "outside.txt"
    victim.write_text("must survive")
    link = shard / ".evil.tmp-1"
    link.symlink_to(victim)
    for path in (stale, stale_project, half_backup, scratch, link):
        os.utime(path, (old, old), follow_symlinks=False)
    assert manager.cleanup_temp_files(max_age_hours=24) == 5
    assert not stale.exists() and not stale_project.exists() and not half_backup.exists()
    assert not scratch.exists() and not link.is_symlink()
    assert fresh.exists() and kept_asset.read_bytes() == b"keep me"
    assert victim.read_text() == "must survive"
    assert manager.cleanup_temp_files(max_age_hours=0) == 1  # now the fresh one too
    with pytest.raises(ParameterError, match="max_age_hours"):
        manager.cleanup_temp_files(-1)


def test_opening_a_project_folder_and_choosing_projects(tmp_path: Path) -> None:
    with AssetManager(tmp_path) as first:
        project = first.create_project("My Video!")
        assert project.path.name == "My-Video"
        assert first.create_project("My Video!").path.name == "My-Video-2"
        stored = first.store_asset({"content": b"x"}, project_id="My-Video")
    with AssetManager(project.path) as reopened:
        assert reopened.project().id == project.id
        assert reopened.search_assets() == [stored]
        with pytest.raises(ParameterError, match="project_id"):
            reopened.search_assets(project_id="nope")
    with pytest.raises(AssetError, match="no project is open"):
        AssetManager(tmp_path / "empty").store_asset({"content": b"x"})


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs, so a write fails with ENOSPC (needs root; skipped otherwise)."""
    mount_point = tmp_path / "small_fs"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_on_store_is_typed_and_leaves_nothing_behind(
    small_fs: Path, tmp_path: Path
) -> None:
    manager = AssetManager(small_fs)
    project = manager.create_project("full")
    kept = manager.store_asset({"content": b"precious" * 100, "extension": "bin"})
    before = kept.read_bytes()
    with pytest.raises(DiskFullError, match="disk is full"):
        manager.store_asset({"content": os.urandom(2_000_000), "extension": "bin"})
    big_source = tmp_path / "big.bin"  # on the normal disk
    big_source.write_bytes(os.urandom(2_000_000))
    with pytest.raises(DiskFullError):
        manager.store_asset({"source_path": big_source})
    files = [p for p in (project.path / "assets").rglob("*") if p.is_file()]
    assert files == [kept] and kept.read_bytes() == before
    assert project.models.Asset.select().count() == 1
    assert manager.store_asset({"content": b"small again"}).exists()
    manager.close()


def test_ranking_window_keeps_filters_and_relevance(
    manager: AssetManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.assets import search as module  # search_assets reads it there

    monkeypatch.setattr(module, "RANK_WINDOW", 3)
    paths = []
    for number in range(8):
        words = "sky " * (3 if number == 6 else 1)
        paths.append(
            manager.store_asset(
                {
                    "content": f"asset {number}".encode(),
                    "name": f"{words}shot {number}",
                    "category": "even" if number % 2 == 0 else "odd",
                }
            )
        )
    # Ranked among the newest three matches (5, 6, 7): 6 says "sky" three times.
    assert manager.search_assets("sky", limit=2)[0] == paths[6]
    assert set(manager.search_assets("sky", limit=3)) == set(paths[5:])
    # The window is taken after the filters: the newest three *even* ones.
    assert set(manager.search_assets("sky", category="even", limit=5)) == {
        paths[2],
        paths[4],
        paths[6],
    }
    # Without a limit every match is ranked and returned.
    everything = manager.search_assets("sky")
    assert len(everything) == 8 and everything[0] == paths[6]


def test_a_link_planted_in_assets_cannot_lead_outside(
    manager: AssetManager, tmp_path: Path
) -> None:
    stored = manager.store_asset({"content": b"real", "extension": "bin"})
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"someone else's")
    stored.unlink()
    stored.symlink_to(outside)
    with pytest.raises(AssetPathError, match="points outside"):
        manager.get_asset_metadata(stored)
    with pytest.raises(AssetPathError):
        manager.store_asset({"content": b"real", "extension": "bin"})  # the dedup path
    assert outside.read_bytes() == b"someone else's"


def test_a_file_left_by_a_killed_store_is_adopted(manager: AssetManager) -> None:
    import hashlib

    content = b"written, then the process was killed before the database commit"
    digest = hashlib.sha256(content).hexdigest()
    project = manager.project()
    orphan = project.path / "assets" / digest[:2] / f"{digest}.bin"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(content)
    assert manager.search_assets() == []
    stored = manager.store_asset({"content": content, "extension": "bin", "name": "adopted"})
    assert stored == orphan and manager.search_assets("adopted") == [orphan]
    assert [p for p in (project.path / "assets").rglob("*") if p.is_file()] == [orphan]
