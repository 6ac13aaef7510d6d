"""The render-cache trim (``paths.cache_max_gb``): least recently used files go first, until
the cache fits; a file the current render uses never goes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.config.schema import SCHEMA
from engine.errors import ParameterError
from engine.orchestrator.cache_trim import GB, cache_size, trim_cache

KB = 1024


def _file(path: Path, size: int, stamp: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def cache(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "cache"
    base = time.time() - 10_000
    files = [
        _file(root / "stills" / "a.png", 10 * KB, base + 1),  # oldest
        _file(root / "segments" / "k1" / "s0.mp4", 10 * KB, base + 2),
        _file(root / "analysis" / "x.json", 10 * KB, base + 3),
        _file(root / "stills" / "b.png", 10 * KB, base + 4),
        _file(root / "segments" / "k2" / "s0.mp4", 10 * KB, base + 5),  # newest
    ]
    return root, files


def test_oldest_files_go_first_until_under_the_limit(cache: tuple[Path, list[Path]]) -> None:
    root, files = cache
    assert cache_size(root) == 50 * KB
    result = trim_cache(root, 25 * KB / GB)
    assert result.removed == files[:3]
    assert [p.exists() for p in files] == [False, False, False, True, True]
    assert result.size_after == cache_size(root) == 20 * KB <= result.limit
    assert not (root / "segments" / "k1").exists()  # emptied folders go too
    assert root.is_dir() and (root / "stills").is_dir()


def test_files_in_use_are_never_removed(cache: tuple[Path, list[Path]]) -> None:
    root, files = cache
    since = time.time()
    os.utime(files[2], (since + 1, since + 1))  # the analysis this render read
    result = trim_cache(root, 15 * KB / GB, keep=[files[0], root / "segments" / "k1"], since=since)
    # a.png, the k1 segments and the fresh analysis stay; the rest goes, oldest first
    assert result.removed == [files[3], files[4]]
    assert all(p.exists() for p in files[:3])
    # over the limit with what the render uses: kept, and said
    assert result.size_after == 30 * KB > result.limit
    assert result.kept_in_use == 30 * KB


def test_zero_means_no_limit_and_negative_is_refused(cache: tuple[Path, list[Path]]) -> None:
    root, files = cache
    assert trim_cache(root, 0).removed == []
    assert all(p.exists() for p in files)
    with pytest.raises(ParameterError, match="cache_max_gb"):
        trim_cache(root, -1)
    assert SCHEMA["paths.cache_max_gb"].validate("paths.cache_max_gb", -1.0) is not None
    assert SCHEMA["paths.cache_max_gb"].default == 0.0


def test_missing_cache_is_nothing_to_do(tmp_path: Path) -> None:
    result = trim_cache(tmp_path / "none", 1.0)
    assert result.size_before == 0 and result.removed == []


def test_a_render_trims_the_cache_and_keeps_what_it_used(tmp_path: Path) -> None:
    from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
    from engine.config.schema import default_config
    from engine.orchestrator.render_pipeline import RenderRequest, render_video
    from tests.media import write_wav

    spec = SongSpec(tempo=150.0, sections=(SectionSpec(label="verse", bars=2, energy=0.6),), seed=3)
    song = synthesize_song(spec)
    audio = write_wav(tmp_path / "song.wav", song.audio, song.sample_rate)
    root = tmp_path / "cache"
    old = time.time() - 100_000
    junk = [_file(root / "stills" / f"old{i}.png", 200 * KB, old + i) for i in range(5)]
    cfg = default_config()
    cfg["qa"]["enabled"] = False
    cfg["paths"]["cache_max_gb"] = 700 * KB / GB
    request = RenderRequest(
        audio_path=audio,
        output_path=tmp_path / "out.mp4",
        preset="draft",
        cache_dir=root,
        json_report=tmp_path / "out.json",
    )
    report = render_video(request, config=cfg)
    assert report["cache"]["bytes"] == cache_size(root) <= report["cache"]["limit_bytes"]
    gone = [not p.exists() for p in junk]
    assert gone[0] and sum(gone) == report["cache"]["removed_files"] >= 1
    assert gone == sorted(gone, reverse=True)  # the oldest first
    # this render's stills and analysis stay
    assert list((root / "analysis").iterdir())
    assert len([p for p in (root / "stills").glob("*.png") if p not in junk]) >= 1
