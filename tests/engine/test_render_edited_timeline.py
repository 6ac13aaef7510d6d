"""Render an edited timeline document: the video shows the edit, not a new plan.

A short synthesized song is rendered once (draft), its saved edit is changed the way
the timeline does it (a clip split on a beat, a transition changed, one clip graded)
and rendered again from the document; the cuts found in the frames must be the
document's, within a frame, and the graded clip's frames must differ from the first
render's.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.api import (
    MissingStillsError,
    ParameterError,
    RenderRequest,
    TimelineDocument,
    TimelineMismatchError,
    TimePoint,
    TransitionSpec,
    apply_grades,
    load_timeline,
    render_video,
    save_timeline,
)
from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
from engine.config.schema import default_config
from tests.media import write_wav

# a strong, unmistakable grade for the one graded clip
RED_GRADE: dict[str, Any] = {"schema": 1, "primary": {"exposure": 1.2, "saturation": 0.1}}


def small_frames(path: Path) -> np.ndarray:
    """Every frame at 160x90 grey (float32): enough to see cuts, small in memory."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [
            f.reformat(width=160, height=90, format="gray").to_ndarray().astype(np.float32)
            for f in container.decode(stream)
        ]
    return np.stack(frames)


def detect_cuts(frames: np.ndarray, factor: float = 6.0, floor: float = 12.0) -> list[int]:
    """Frames whose difference to the one before stands out (a hard cut starts there).

    The draft's beat pulse changes a frame by about 5 grey levels on average; a cut
    between stills by about 40, a cut inside one still (a split: the camera move starts
    again) by about 20.  ``floor`` (12) lies between.
    """
    diffs = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2))
    threshold = max(factor * float(np.median(diffs)), floor)
    return [i + 1 for i, d in enumerate(diffs) if d > threshold]


def with_clips(doc: TimelineDocument, clips: list[Any]) -> TimelineDocument:
    tracks = tuple(
        dataclasses.replace(t, items=tuple(clips)) if t.kind == "video" else t for t in doc.tracks
    )
    return dataclasses.replace(doc, tracks=tracks)


def config() -> dict[str, Any]:
    cfg = default_config()
    cfg["qa"]["enabled"] = False
    cfg["grade"]["section_looks"] = ""
    return cfg


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The song, rendered once as planned (draft), with its saved edit."""
    folder = tmp_path_factory.mktemp("edited")
    spec = SongSpec(tempo=150.0, sections=(SectionSpec(label="verse", bars=6, energy=0.6),), seed=3)
    song = synthesize_song(spec)
    audio = write_wav(folder / "song.wav", song.audio, song.sample_rate)
    request = RenderRequest(
        audio_path=audio,
        output_path=folder / "planned.mp4",
        preset="draft",
        timeline_json=folder / "planned.timeline.json",
        cache_dir=folder / "cache",
    )
    render_video(request, config=config())
    return {"dir": folder, "audio": audio, "request": request}


def edit(doc: TimelineDocument) -> tuple[TimelineDocument, str, int]:
    """Split the longest clip on a beat, cut hard everywhere but one crossfade, grade the
    new right half.  Returns the edit, the graded clip's id and the crossfaded clip's index."""
    clips = list(doc.video_clips)
    index = max(range(len(clips)), key=lambda i: clips[i].duration)
    clip = clips[index]
    beats = [
        t for t in doc.tempo_map.beat_times if clip.start.seconds + 1 < t < clip.end.seconds - 1
    ]
    at = TimePoint.of(beats[len(beats) // 2], doc.tempo_map)
    left = dataclasses.replace(clip, end=at)
    right = dataclasses.replace(
        clip, clip_id=f"{clip.clip_id}.2", start=at, transition_in=None, grade=RED_GRADE
    )
    clips[index : index + 1] = [left, right]
    clips = [
        dataclasses.replace(c, transition_in=None, grade=None if c is not right else RED_GRADE)
        for c in clips
    ]
    fade = 1 if index + 1 != 1 else 2
    clips[fade] = dataclasses.replace(
        clips[fade], transition_in=TransitionSpec(kind="crossfade", duration_seconds=0.5)
    )
    return with_clips(doc, clips), right.clip_id, fade


def test_render_follows_the_edited_document(first: dict[str, Any]) -> None:
    folder = first["dir"]
    planned = load_timeline(folder / "planned.timeline.json")
    edited, graded_id, fade = edit(planned)
    path = save_timeline(folder / "edit.timeline.json", edited)
    request = dataclasses.replace(
        first["request"],
        output_path=folder / "edited.mp4",
        timeline_json=folder / "rendered.timeline.json",
        timeline_path=path,
    )
    report = render_video(request, config=config())
    assert report["inputs"]["timeline"] == str(path)

    frames = small_frames(folder / "edited.mp4")
    fps = float(edited.fps)
    clips = edited.video_clips
    expected = [c.start.frame(edited.fps) for i, c in enumerate(clips) if i and i != fade]
    found = detect_cuts(frames)
    # every hard cut of the edit is in the video, within a frame, and nothing else is
    for cut in expected:
        assert any(abs(cut - f) <= 1 for f in found), (cut, found)
    fade_frame = clips[fade].start.seconds * fps
    strays = [f for f in found if all(abs(f - c) > 1 for c in expected) and abs(f - fade_frame) > 8]
    assert strays == [], (strays, expected)
    # the crossfade is not a hard cut any more
    assert all(abs(f - fade_frame) > 1 for f in found), (fade_frame, found)
    assert len(clips) == len(planned.video_clips) + 1

    # the graded clip differs from the planned render; a clip before it does not
    before = small_frames(folder / "planned.mp4")
    graded = next(c for c in clips if c.clip_id == graded_id)
    g0, g1 = graded.start.frame(edited.fps) + 2, graded.end.frame(edited.fps) - 2
    assert np.abs(frames[g0:g1] - before[g0:g1]).mean() > 10.0
    first_clip = clips[0]
    e1 = min(first_clip.end.frame(edited.fps) - 2, (clips[1].start.frame(edited.fps) - 8))
    assert np.abs(frames[2:e1] - before[2:e1]).mean() < 3.0

    # what was rendered is saved as rendered
    saved = json.loads((folder / "rendered.timeline.json").read_text())
    assert len(saved["tracks"][0]["clips"]) == len(clips)


def test_missing_stills_are_made_again(first: dict[str, Any]) -> None:
    folder = first["dir"]
    doc = load_timeline(folder / "planned.timeline.json")
    clips = list(doc.video_clips)
    original = Path(clips[0].source.paths[0])
    pixels = original.read_bytes()
    original.unlink()  # gone from the cache too
    gone = str(folder / "gone.png")
    clips[0] = dataclasses.replace(
        clips[0], source=dataclasses.replace(clips[0].source, paths=(gone,))
    )
    path = save_timeline(folder / "gone.timeline.json", with_clips(doc, clips))
    request = dataclasses.replace(
        first["request"], output_path=folder / "regen.mp4", timeline_json=None, timeline_path=path
    )
    # stop after the stills: the missing one is made again from its prompt and seed,
    # the same picture as before (same backend, prompt, seed and size)
    summary = render_video(request, config=config(), until="generate")
    assert gone not in summary["stills"]
    assert Path(summary["stills"][0]).resolve() == original.resolve()
    assert original.read_bytes() == pixels

    # without a prompt it cannot be: a typed error names the file, before any work
    clips[0] = dataclasses.replace(clips[0], metadata={})
    save_timeline(path, with_clips(doc, clips))
    with pytest.raises(MissingStillsError, match=r"gone\.png") as info:
        render_video(request, config=config())
    assert info.value.missing == [gone]


def test_an_edit_of_another_song_is_refused(first: dict[str, Any]) -> None:
    folder = first["dir"]
    spec = SongSpec(tempo=120.0, sections=(SectionSpec(label="verse", bars=5, energy=0.6),), seed=4)
    song = synthesize_song(spec)
    other = write_wav(folder / "other.wav", song.audio, song.sample_rate)
    request = dataclasses.replace(
        first["request"],
        audio_path=other,
        output_path=folder / "other.mp4",
        timeline_json=None,
        timeline_path=folder / "planned.timeline.json",
    )
    with pytest.raises(TimelineMismatchError, match="another song"):
        render_video(request, config=config())
    assert not (folder / "other.mp4").exists()


def test_project_grades_go_over_the_edit(first: dict[str, Any]) -> None:
    """The grading panel's grades (settings.grades) are what the render shows: a shot's
    grade over its section's, a section's over the clip's own, the global one elsewhere."""
    folder = first["dir"]
    doc = load_timeline(folder / "planned.timeline.json")
    clips = doc.video_clips
    section = str(clips[0].metadata["section"])
    dark = {"schema": 1, "primary": {"exposure": -1.5}}
    grades = {"global": dark, "sections": {section: RED_GRADE}, "shots": {clips[1].clip_id: dark}}
    graded = apply_grades(doc, grades)
    plan = graded.render_plan()
    assert plan.grade == dark
    assert plan.shot_grades[1] == dark
    assert all(
        plan.shot_grades[i] == RED_GRADE
        for i, c in enumerate(clips)
        if i != 1 and c.metadata["section"] == section
    )
    with pytest.raises(ParameterError, match=r"grades\.shots\.x"):
        apply_grades(doc, {"shots": {"x": {"schema": 1, "primary": {"exposure": "bright"}}}})

    request = dataclasses.replace(
        first["request"],
        output_path=folder / "graded.mp4",
        timeline_json=None,
        timeline_path=folder / "planned.timeline.json",
        grades={"shots": {clips[1].clip_id: RED_GRADE}},
    )
    render_video(request, config=config())
    after, before = small_frames(folder / "graded.mp4"), small_frames(folder / "planned.mp4")
    s1, e1 = clips[1].start.frame(doc.fps) + 2, clips[1].end.frame(doc.fps) - 2
    assert np.abs(after[s1:e1] - before[s1:e1]).mean() > 10.0
    assert np.abs(after[2 : s1 - 8] - before[2 : s1 - 8]).mean() < 3.0


def test_cli_render_timeline_option(first: dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    """``apex-director render SONG --timeline EDIT.json``: an edit of another song is
    refused with exit code 2 and a message that says so; nothing is written."""
    from engine.cli import main

    folder = first["dir"]
    spec = SongSpec(tempo=120.0, sections=(SectionSpec(label="verse", bars=5, energy=0.6),), seed=4)
    song = synthesize_song(spec)
    other = write_wav(folder / "other-cli.wav", song.audio, song.sample_rate)
    out = folder / "cli.mp4"
    code = main(
        [
            "render",
            str(other),
            "-o",
            str(out),
            "--preset",
            "draft",
            "--cache-dir",
            str(folder / "cache"),
            "--timeline",
            str(folder / "planned.timeline.json"),
        ]
    )
    assert code == 2
    assert "another song" in capsys.readouterr().err
    assert not out.exists()


def test_cli_renders_an_edit_through_the_job_chain(first: dict[str, Any]) -> None:
    """``apex-director render SONG --timeline EDIT.json``: the six jobs render the edit
    (its split and crossfade are in the video's cuts), exit code 0, QC included."""
    from engine.cli import main

    folder = first["dir"]
    edited, _graded_id, fade = edit(load_timeline(folder / "planned.timeline.json"))
    path = save_timeline(folder / "cli-edit.timeline.json", edited)
    out = folder / "cli-edited.mp4"
    code = main(
        [
            "render",
            str(first["audio"]),
            "-o",
            str(out),
            "--preset",
            "draft",
            "--cache-dir",
            str(folder / "cache"),
            "--timeline",
            str(path),
            "--json-report",
            str(folder / "cli-edited.json"),
        ]
    )
    assert code == 0
    report = json.loads((folder / "cli-edited.json").read_text())
    assert report["inputs"]["timeline"] == str(path)
    clips = edited.video_clips
    expected = [c.start.frame(edited.fps) for i, c in enumerate(clips) if i and i != fade]
    found = detect_cuts(small_frames(out))
    for cut in expected:
        assert any(abs(cut - f) <= 1 for f in found), (cut, found)
