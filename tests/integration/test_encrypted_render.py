"""A render and an analysis of an encrypted project whose song is a sealed asset.

The song is opened with the project's key and decoded from memory: the video's sound
matches the clear song, and no clear copy of it (nor of its PCM) is left anywhere in
the project or the temporary folder.  A locked project fails with ProjectLockedError
and loses nothing; given the passphrase, the same render then runs to the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from engine.assets.asset_manager import AssetManager
from engine.audio.decode import decode_audio
from engine.cli import main
from engine.security.crypto import MAGIC
from engine.security.errors import DecryptionError, ProjectLockedError
from tests.keyrings import memory_keyring, using_keyring

if TYPE_CHECKING:
    from pytestqt.qtbot import QtBot

pytest.importorskip("cryptography")

PASSPHRASE = "correct horse battery staple"


def _files(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if p.is_file()]


def _clear_slices(song: Path) -> list[bytes]:
    """Four 4 KiB slices of the clear file's PCM, spread over the song."""
    data = song.read_bytes()
    slices = [data[at : at + 4096] for at in (1000, *(len(data) * k // 4 for k in (1, 2, 3)))]
    assert all(len(set(s)) > 64 for s in slices)  # music, not silence: distinctive
    return slices


def _holding(files: list[Path], slices: list[bytes]) -> list[str]:
    """The files that contain any of ``slices`` (a clear copy of the song)."""
    return [str(p) for p in files if any(s in p.read_bytes() for s in slices)]


def _snapshot(project: Path) -> dict[str, str]:
    """Hashes of the project's assets and encryption settings, and its asset rows."""
    state = {
        str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in [*(project / "assets").rglob("*"), project / "encryption.json"]
        if p.is_file()
    }
    with sqlite3.connect(f"file:{project / 'apex.db'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT content_hash, rel_path, description, metadata FROM asset ORDER BY id"
        ).fetchall()
    state["rows"] = json.dumps(rows)
    return state


def _envelope(samples: np.ndarray, rate: int, hop_s: float = 0.05) -> np.ndarray:
    mono = samples.mean(axis=0)
    hop = int(rate * hop_s)
    n = len(mono) // hop
    return np.sqrt((mono[: n * hop].reshape(n, hop) ** 2).mean(axis=1))


def _encrypted_project(folder: Path, song: Path, passphrase_file: Path) -> Path:
    """A project with ``song`` stored as an asset, then encrypted by the CLI."""
    assert main(["project", "new", str(folder), "--name", "secret video"]) == 0
    with AssetManager(folder) as assets:
        stored = assets.store_asset(
            {"source_path": song, "name": song.name, "category": "audio", "tags": ["song"]}
        )
        # what the GUI does with a dropped song (app/engine_bridge.py)
        assets.project().update(settings={"audio_path": str(stored), "song_name": song.name})
        assets.project().save()
    assert main(["project", "encrypt", str(folder), "--passphrase-file", str(passphrase_file)]) == 0
    assert stored.read_bytes().startswith(MAGIC)  # sealed in place
    return stored


@pytest.fixture(scope="module")
def rendered(tiny_song: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("encrypted")
    private_tmp = base / "tmp"
    private_tmp.mkdir()
    secret = base / "passphrase.txt"
    secret.write_text(PASSPHRASE + "\n")
    project = base / "project"
    song = _encrypted_project(project, tiny_song, secret)
    out = project / "renders" / "video.mp4"
    args = ["render", str(song), "-o", str(out), "--preset", "draft", "--project", str(project)]
    saved_tempdir = tempfile.tempdir
    tempfile.tempdir = str(private_tmp)  # anything written to "the temp dir" lands here
    try:
        before = _snapshot(project)
        # 1. locked: the analysis job fails with the typed error; nothing is lost
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            locked_code = main(args)
        after_locked = _snapshot(project)
        # 2. with the passphrase: the same render runs to the end
        code = main(
            [*args, "--passphrase-file", str(secret), "--json-report", str(base / "r.json")]
        )
    finally:
        tempfile.tempdir = saved_tempdir
    assert code == 0
    return {
        "project": project,
        "song": song,
        "clear": tiny_song,
        "video": out,
        "report": json.loads((base / "r.json").read_text()),
        "tmp": private_tmp,
        "locked_code": locked_code,
        "locked_stderr": stderr.getvalue(),
        "before": before,
        "after_locked": after_locked,
        "after": _snapshot(project),
    }


def test_sealed_song_renders_a_video_whose_sound_is_the_clear_song(rendered: dict) -> None:
    import av

    with av.open(str(rendered["video"])) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        assert container.streams.video[0].frames == rendered["report"]["output"]["frames"] > 0
    ours = decode_audio(rendered["video"])  # (channels, samples), planar
    clear = decode_audio(rendered["clear"])
    assert abs(ours.duration - clear.duration) < 0.05  # AAC priming/padding only
    a, b = _envelope(ours.samples, ours.sample_rate), _envelope(clear.samples, clear.sample_rate)
    n = min(len(a), len(b))
    correlation = np.corrcoef(a[:n], b[:n])[0, 1]
    assert correlation > 0.95, correlation
    # the analysis was of the song itself: its beats and length
    assert rendered["report"]["analysis"]["duration"] == pytest.approx(clear.duration, abs=0.05)
    assert rendered["report"]["analysis"]["tempo"] == pytest.approx(150.0, rel=0.02)


def test_no_clear_copy_of_the_song_is_left_in_the_project_or_temp_dir(rendered: dict) -> None:
    slices = _clear_slices(rendered["clear"])
    assert _holding([rendered["clear"]], slices)  # the scan finds a clear copy
    files = _files(rendered["project"], rendered["tmp"])
    assert len(files) > 10  # database, sealed song, cache, the render...
    assert _holding(files, slices) == []
    assert rendered["song"].read_bytes().startswith(MAGIC)  # still sealed
    # the render's work folder (segments, audio track) was removed, none was left
    assert not list((rendered["project"] / "cache").rglob("audio.m4a"))


def test_analysis_cache_holds_features_not_samples(rendered: dict) -> None:
    """The cached analysis is beats, sections and one curve value per frame: no PCM."""
    cached = list((rendered["project"] / "cache" / "analysis").glob("*.npz"))
    assert cached
    duration = rendered["report"]["analysis"]["duration"]
    for path in cached:
        with np.load(path) as npz:
            for name in npz.files:
                # a curve has one value per frame (24 a second for the draft preset, 30 for
                # the analyse job); the song has 44,100 samples a second
                assert npz[name].size <= 31 * duration + 10, (path.name, name, npz[name].size)


def test_locked_project_fails_with_the_typed_error_and_loses_nothing(rendered: dict) -> None:
    assert rendered["locked_code"] == 2  # a user input error
    # the CLI's own line (log lines go to stderr too)
    errors = [line for line in rendered["locked_stderr"].splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    message = errors[0]
    assert "encrypted and locked" in message and "--passphrase-file" in message
    assert rendered["after_locked"] == rendered["before"]  # assets, settings, rows as they were
    assert rendered["after"] == rendered["before"]  # the render read, never rewrote them


def test_wrong_passphrase_is_refused_before_any_job(tmp_path: Path, rendered: dict) -> None:
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not it\n")
    project = rendered["project"]
    with sqlite3.connect(f"file:{project / 'apex.db'}?mode=ro", uri=True) as db:
        jobs = db.execute("SELECT count(*) FROM job").fetchone()[0]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(
            [
                "render",
                str(rendered["song"]),
                "-o",
                str(tmp_path / "other.mp4"),
                "--preset",
                "draft",
                "--project",
                str(project),
                "--passphrase-file",
                str(wrong),
            ]
        )
    assert code == 2 and "wrong passphrase" in stderr.getvalue()
    with sqlite3.connect(f"file:{project / 'apex.db'}?mode=ro", uri=True) as db:
        assert db.execute("SELECT count(*) FROM job").fetchone()[0] == jobs
    assert not (tmp_path / "other.mp4").exists()


def test_analyse_job_through_the_facade_reads_the_sealed_song_in_memory(
    tiny_song: Path, tmp_path: Path
) -> None:
    """The GUI's path: APEXDirector's asset manager unlocks, its orchestrator's analyse
    job opens the song with that key; without the key the job fails, typed."""
    from engine.api import APEXDirector, AudioAnalyzer, EngineThread, project_audio_source
    from engine.audio.decode import AudioBytes

    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE)
    project_dir = tmp_path / "project"
    song = _encrypted_project(project_dir, tiny_song, secret)

    def analyse(unlock: bool) -> tuple[dict, BaseException | None, object]:
        with EngineThread() as engine, APEXDirector(project_dir) as director:
            if unlock:
                director.get_asset_manager().unlock_project(PASSPHRASE)
            orchestrator = director.get_orchestrator()
            engine.call(orchestrator.initialize())
            engine.call(orchestrator.start())
            try:
                job = engine.call(
                    orchestrator.submit_job(
                        {"kind": "analyse", "payload": {"audio_path": str(song)}}
                    )
                )
                status = engine.call(orchestrator.wait_for(job, timeout_s=120))
                source = None
                if unlock:  # what the GUI does once the job is done
                    source = project_audio_source(orchestrator.project, song)
                    analysis = AudioAnalyzer(
                        cache_dir=orchestrator.project.cache_dir / "analysis"
                    ).analyze(source)
                    status["tempo"] = analysis.tempo
                return status, orchestrator.exception_of(job), source
            finally:
                engine.call(orchestrator.stop())

    status, error, _ = analyse(unlock=False)
    assert status["state"] == "failed"
    assert isinstance(error, ProjectLockedError) and isinstance(error, DecryptionError)
    status, error, source = analyse(unlock=True)
    assert status["state"] == "succeeded", error
    assert isinstance(source, AudioBytes)
    assert source.digest == hashlib.sha256(tiny_song.read_bytes()).hexdigest()
    assert repr(source).startswith("AudioBytes(") and len(repr(source)) < 120  # no bytes
    assert status["tempo"] == pytest.approx(150.0, rel=0.02)
    artifact = json.loads(Path(status["result"]["artifact"]).read_text())
    assert "beats" in artifact and "samples" not in artifact
    assert _holding(_files(project_dir), _clear_slices(tiny_song)) == []


def test_the_gui_bridge_unlocks_then_analyses_and_renders(
    tiny_song: Path, tmp_path: Path, qtbot: QtBot
) -> None:
    """The window's path: an encrypted project opens, its analysis fails as locked (a
    job failure the window shows), the bridge unlocks it, analyses and renders it."""
    pytest.importorskip("PySide6")
    from app.engine_bridge import EngineBridge
    from engine.api import ConfigManager

    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE)
    project_dir = tmp_path / "projects" / "secret"
    _encrypted_project(project_dir, tiny_song, secret)
    bridge = EngineBridge(tmp_path / "projects", config=ConfigManager().config).start()
    failed: list = []
    finished: list = []
    bridge.job_failed.connect(failed.append)
    bridge.job_finished.connect(finished.append)
    try:
        with qtbot.waitSignal(bridge.project_opened, timeout=30000) as opened:
            bridge.open_project(project_dir)
        # opened locked and not analysed (the window asks for the passphrase first)
        assert opened.args[0].encrypted and opened.args[0].locked
        bridge.analyse()  # asked anyway, the analysis job fails typed
        qtbot.waitUntil(lambda: bool(failed), timeout=60000)
        assert failed[0].error_type == "ProjectLockedError" and "unlock" in failed[0].error
        with qtbot.waitSignal(bridge.analysis_ready, timeout=60000) as ready:
            bridge.unlock_project(PASSPHRASE)
        assert ready.args[0].tempo == pytest.approx(150.0, rel=0.02)
        with qtbot.waitSignal(bridge.render_queued, timeout=30000) as queued:
            bridge.render(preset="draft")
        job = queued.args[0]
        qtbot.waitUntil(lambda: any(e.job_id == job for e in finished), timeout=120000)
        video = project_dir / "renders" / "tiny_song-draft.mp4"
        assert decode_audio(video).duration == pytest.approx(
            decode_audio(tiny_song).duration, abs=0.05
        )
        assert _holding(_files(project_dir), _clear_slices(tiny_song)) == []
    finally:
        bridge.shutdown()


def test_a_sealed_file_outside_the_project_is_refused(tiny_song: Path, tmp_path: Path) -> None:
    from engine.api import project_audio_source
    from engine.assets.project import Project

    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE)
    song = _encrypted_project(tmp_path / "a", tiny_song, secret)
    with Project.create(tmp_path / "b") as other:
        with pytest.raises(DecryptionError, match="another project"):
            project_audio_source(other, song)
        assert project_audio_source(other, tiny_song) == tiny_song  # a clear song: its path


def test_passphrase_comes_from_file_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.cli_commands.project import PASSPHRASE_ENV, read_passphrase
    from engine.errors import ParameterError

    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    assert read_passphrase(None) is None
    monkeypatch.setenv(PASSPHRASE_ENV, "from the environment")
    assert read_passphrase(None) == "from the environment"
    secret = tmp_path / "p.txt"
    secret.write_text("first line \r\nsecond\n")
    assert read_passphrase(secret) == "first line "  # the file wins; only its newline goes
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ParameterError, match="first line"):
        read_passphrase(tmp_path / "empty.txt")


def test_killed_render_of_a_sealed_song_leaves_no_audio_track_on_disk(
    tiny_song: Path, tmp_path: Path
) -> None:
    """compose_video keeps a song held in memory in memory: a render stopped after its
    first segment leaves segments, never ``audio.m4a``."""
    from engine.assembly.compose import compose_video
    from engine.assembly.encoder import EncodeSettings
    from engine.audio.decode import AudioBytes
    from engine.planning.shots import Shot, ShotList

    shot = Shot(
        index=0,
        start=0.0,
        end=19.2,
        start_bar=1,
        start_beat=1,
        section="verse",
        section_index=0,
        energy=0.5,
        prompt="p",
        seed=0,
        transition_in="cut",
        motion="static",
    )
    shots = ShotList(shots=(shot,), duration=19.2, tempo=150.0)
    settings = EncodeSettings(width=160, height=90, fps=24, speed="ultrafast")
    work = tmp_path / "work"

    class StoppedError(Exception):
        pass

    def progress(done: int, total: int) -> None:
        if done > 24 * 5:  # past the first 4 s segment
            raise StoppedError

    with pytest.raises(StoppedError):
        compose_video(
            shots,
            lambda i: np.full((90, 160, 3), 128, np.uint8),
            output_path=tmp_path / "out.mp4",
            audio_path=AudioBytes(data=tiny_song.read_bytes(), name="song.wav"),
            work_dir=work,
            settings=settings,
            crossfade_seconds=0.0,
            motion_amount=0.0,
            progress=progress,
        )
    left = sorted(p.name for p in work.iterdir())
    assert any(name.startswith("segment_") for name in left)
    assert "audio.m4a" not in left and "audio.json" not in left
    assert _holding(_files(work), _clear_slices(tiny_song)) == []


def test_a_keyring_project_unlocks_by_itself_for_render(
    tiny_song: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``project encrypt`` with no passphrase keeps the key in the OS keyring (a real
    in-memory backend here); ``render --project`` then needs none and opens the song."""
    from engine.api import ConfigManager, project_audio_source
    from engine.audio.decode import AudioBytes
    from engine.cli_commands.project import PASSPHRASE_ENV
    from engine.orchestrator.render_jobs import _open_encrypted, needs_passphrase

    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    with using_keyring(memory_keyring()):
        project = tmp_path / "project"
        assert main(["project", "new", str(project)]) == 0
        with AssetManager(project) as assets:
            song = assets.store_asset({"source_path": tiny_song, "category": "audio"})
        assert main(["project", "encrypt", str(project)]) == 0
        assert song.read_bytes().startswith(MAGIC)
        assert not needs_passphrase(project)
        assets = _open_encrypted(project, ConfigManager().config, None)
        try:
            source = project_audio_source(assets.project(), song)
        finally:
            assets.close()
        assert isinstance(source, AudioBytes) and source.data == tiny_song.read_bytes()
