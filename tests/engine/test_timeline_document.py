"""The timeline document: musical times, re-timing, JSON round trip, rendering from it."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from engine.assembly.frame_renderer import FrameRenderer, FrameStyle
from engine.assembly.tempo_map import MusicalPosition, TempoMap, frame_at
from engine.assembly.timeline import Timeline
from engine.assembly.timeline_document import (
    TimelineDocument,
    load_timeline,
    save_timeline,
    timeline_from_plan,
)
from engine.audio.types import AudioAnalysis, AudioSection, BeatMarker
from engine.errors import ParameterError
from engine.planning.shots import plan_shots

GRADE = {"schema": 1, "primary": {"exposure": 0.3, "contrast": 1.1}}
LOOK = {"schema": 1, "primary": {"saturation": 1.3}}


def _analysis(*, tempo: float = 124.0, bars: int = 24, pickup: int = 2) -> AudioAnalysis:
    """4/4 with ``pickup`` beats before bar 1 and a little drift, sections of 8 bars."""
    period = 60.0 / tempo
    rng = np.random.default_rng(3)
    beats, time = [], 0.37
    for i in range(-pickup, bars * 4):
        bar, beat = (i // 4 + 1, i % 4 + 1) if i >= 0 else (0, 4 + i + 1)
        beats.append(BeatMarker(time, 1.0, beat == 1 and bar > 0, bar, beat))
        time += period * (1.0 + 0.01 * rng.standard_normal())
    duration = time + 0.8
    changes = (1 + bars // 3, 1 + 2 * bars // 3)
    starts = [0.0, *(b.time for b in beats if b.is_downbeat and b.bar in changes)]
    labels = ("verse", "chorus", "verse")
    sections = [
        AudioSection(s, e, label, 1.0, energy)
        for s, e, label, energy in zip(
            starts, [*starts[1:], duration], labels, (0.5, 0.9, 0.5), strict=True
        )
    ]
    return AudioAnalysis(
        duration=duration,
        tempo=tempo,
        key="A minor",
        time_signature="4/4",
        sections=sections,
        beats=beats,
        spectral_features=None,
        sample_rate=22050,
        analyzer_version="test",
    )


def _document(fps: Fraction | str = Fraction(30)) -> TimelineDocument:
    analysis = _analysis()
    shots = plan_shots(analysis, phrase_bars=4, pacing="energy", min_shot_seconds=1.0)
    return timeline_from_plan(
        shots,
        analysis,
        fps=fps,
        still_paths=[f"/stills/{i}.png" for i in range(len(shots))],
        audio_path="/songs/song.wav",
        motion_amount=0.08,
        beat_pulse=0.04,
        transition_seconds=0.5,
        grade=GRADE,
        shot_grades={1: LOOK},
    )


def test_positions_map_to_beats_exactly_and_interpolate_between() -> None:
    analysis = _analysis()
    tempo_map = TempoMap.from_analysis(analysis)
    for beat in analysis.beats:
        position = MusicalPosition(beat.bar, beat.beat)
        assert tempo_map.seconds(position) == beat.time  # exact, not approximately
        assert tempo_map.position(beat.time) == position
    a, b = analysis.beats[10], analysis.beats[11]
    half = MusicalPosition(a.bar, a.beat, 0.5)
    assert tempo_map.seconds(half) == pytest.approx((a.time + b.time) / 2, abs=1e-12)
    assert str(half) == f"{a.bar}:{a.beat}:0.5"
    assert MusicalPosition.parse(str(half)) == half
    # before the first beat and after the last: extrapolated with the end's beat period
    first, second = analysis.beats[0], analysis.beats[1]
    zero = tempo_map.position(0.0)
    assert (zero.bar, zero.beat) == (0, 2)  # one beat before the pickup's beat 3
    assert tempo_map.seconds(zero) == pytest.approx(0.0, abs=1e-6)
    assert tempo_map.seconds(MusicalPosition(0, 2)) == pytest.approx(
        first.time - (second.time - first.time), abs=1e-12
    )
    late = analysis.duration - 0.1
    assert tempo_map.seconds(tempo_map.position(late)) == pytest.approx(late, abs=1e-6)


def test_json_round_trip_is_equal(tmp_path: Path) -> None:
    document = _document(Fraction(30000, 1001))
    path = save_timeline(tmp_path / "edit.timeline.json", document)
    loaded = load_timeline(path)
    assert loaded == document
    assert loaded.to_dict() == document.to_dict()
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["fps"] == "30000/1001"
    kinds = [t["kind"] for t in data["tracks"]]
    assert kinds == ["video", "audio", "effects"]
    clip = data["tracks"][0]["clips"][1]
    assert set(clip["start"]) == {"position", "seconds", "frame"}
    faded = [c for c in data["tracks"][0]["clips"] if "transition_in" in c]
    assert len(faded) == 2  # the two section changes
    assert faded[0]["transition_in"] == {
        "kind": "crossfade",
        "duration_seconds": 0.5,
        "direction": faded[0]["transition_in"]["direction"],
        "easing": "sine",
        "blur": 0.25,
    }
    assert data["tracks"][2]["effects"][0]["parameters"] == GRADE
    # nothing but the atomically renamed file is left in the folder
    assert [p.name for p in tmp_path.iterdir()] == ["edit.timeline.json"]


def test_retime_to_a_faster_tempo_map_lands_every_cut_on_the_new_downbeats() -> None:
    document = _document()
    faster = document.tempo_map.scaled(1.1)
    retimed = document.retime(faster)
    new_downbeats = {(bar, beat): t for t, bar, beat in faster.beats if beat == 1}
    clips = retimed.video_clips
    assert len(clips) == len(document.video_clips) > 4
    assert clips[0].start.seconds == 0.0
    assert clips[-1].end.seconds == faster.duration
    for old, new in zip(document.video_clips[1:], clips[1:], strict=True):
        assert new.start.position == old.start.position  # the music did not move
        position = new.start.position
        assert isinstance(position, MusicalPosition) and position.fraction == 0.0
        assert new.start.seconds == new_downbeats[(position.bar, position.beat)]  # exactly
    # the plan the renderer gets follows: shots start on the new downbeats
    plan = retimed.render_plan()
    assert [s.start for s in plan.shots.shots[1:]] == [c.start.seconds for c in clips[1:]]
    assert plan.shots.duration == faster.duration
    assert plan.beat_times == faster.beat_times
    # and back again: the original times to the bit
    assert retimed.retime(document.tempo_map) == document


def test_frame_rate_change_renumbers_frames_from_seconds() -> None:
    document = _document(Fraction(30))
    ntsc = document.retime(fps="30000/1001")
    assert ntsc.fps == Fraction(30000, 1001)
    seconds = [c.start.seconds for c in document.video_clips]
    assert [c.start.seconds for c in ntsc.video_clips] == seconds  # times do not change
    assert document.cut_frames() == [round(t * 30) for t in seconds]
    expected = [round(t * 30000 / 1001) for t in seconds]
    assert ntsc.cut_frames() == expected
    assert ntsc.cut_frames() != document.cut_frames()  # ~0.1 % fewer frames per second
    assert ntsc.frame_count == frame_at(document.duration, Fraction(30000, 1001))
    # the renderer's timeline, built from the document, puts the cuts on the same frames
    plan = ntsc.render_plan()
    timeline = Timeline(
        plan.shots,
        fps=float(ntsc.fps),
        crossfade_seconds=0.5,
        transition_seconds=plan.transition_seconds,
    )
    assert timeline.cut_frames == expected
    assert timeline.frame_count == ntsc.frame_count
    assert ntsc.to_dict()["tracks"][0]["clips"][2]["start"]["frame"] == expected[2]


def test_rendering_the_document_matches_rendering_the_plan() -> None:
    """The conversion loses nothing: frames from the document equal the plan's own."""
    analysis = _analysis(bars=8)
    shots = plan_shots(analysis, phrase_bars=2, min_shot_seconds=1.0)
    document = timeline_from_plan(
        shots, analysis, fps=24, still_paths=[f"{i}.png" for i in range(len(shots))]
    )
    plan = document.render_plan()
    assert plan.shots.to_dict() == shots.to_dict()
    rng = np.random.default_rng(0)
    stills = [rng.integers(0, 255, (36, 64, 3), dtype=np.uint8) for _ in shots]
    direct = FrameRenderer(
        shots,
        Timeline(shots, fps=24.0, crossfade_seconds=0.5),
        stills.__getitem__,
        FrameStyle(motion_amount=0.08, transition_seconds=0.5),
    )
    from_document = FrameRenderer(
        plan.shots,
        Timeline(
            plan.shots,
            fps=24.0,
            crossfade_seconds=0.5,
            transition_seconds=plan.transition_seconds,
        ),
        stills.__getitem__,
        FrameStyle(
            motion_amount=0.08,
            transition_seconds=0.5,
            motions=plan.motions,
            transitions=plan.transitions,
        ),
    )
    cuts = direct.timeline.cut_frames
    frames = sorted({0, *cuts, *(c - 3 for c in cuts[1:]), *(c + 2 for c in cuts[1:])})
    for frame in frames:
        assert np.array_equal(direct.render(frame), from_document.render(frame)), frame


def _bad(document: TimelineDocument, edit) -> ParameterError:  # type: ignore[no-untyped-def]
    data = document.to_dict()
    edit(data)
    with pytest.raises(ParameterError) as info:
        TimelineDocument.from_json(json.dumps(data))
    return info.value


def test_bad_documents_raise_parameter_errors_naming_the_field(tmp_path: Path) -> None:
    document = _document()
    with pytest.raises(ParameterError, match=r"line 1 column 2.*valid JSON"):
        TimelineDocument.from_json("{oops")
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1,')
    with pytest.raises(ParameterError, match=r"broken\.json"):
        load_timeline(broken)

    def position(data: dict) -> None:
        data["tracks"][0]["clips"][2]["start"]["position"] = "seven:1"

    assert _bad(document, position).name == "tracks[0].clips[2].start.position"

    def seconds(data: dict) -> None:
        data["tracks"][0]["clips"][1]["end"]["seconds"] += 0.5

    err = _bad(document, seconds)
    assert err.name == "tracks[0].clips[1].end.seconds" and "edit the position" in str(err)

    def motion(data: dict) -> None:
        data["tracks"][0]["clips"][0]["motion"]["kind"] = "barrel_roll"

    assert _bad(document, motion).name == "tracks[0].clips[0].motion.kind"

    def version(data: dict) -> None:
        data["schema_version"] = 99

    assert _bad(document, version).name == "schema_version"

    def beat(data: dict) -> None:
        data["tempo_map"]["beats"][3][0] = "soon"

    assert _bad(document, beat).name == "tempo_map.beats[3]"

    def grade(data: dict) -> None:
        data["tracks"][2]["effects"][0]["parameters"]["primary"]["exposure"] = "bright"

    assert _bad(document, grade).name.startswith("tracks[2].effects[0].parameters")

    def missing(data: dict) -> None:
        del data["tracks"][0]["clips"][0]["source"]

    assert _bad(document, missing).name == "tracks[0].clips[0].source"


def test_render_plan_refuses_gaps() -> None:
    document = _document()
    data = document.to_dict()
    del data["tracks"][0]["clips"][2]
    with pytest.raises(ParameterError, match="no gaps") as info:
        TimelineDocument.from_dict(data).render_plan()
    assert info.value.name == "tracks[0].clips[2].start"


def test_an_image_sequence_clip_is_rendered_image_by_image() -> None:
    import dataclasses

    from engine.assembly.timeline_document import ClipSource

    document = _document(Fraction(24))
    clips = list(document.video_clips)
    # clip 2 becomes a flip-book of 3 images at 2 images per second
    clips[2] = dataclasses.replace(
        clips[2],
        source=ClipSource(kind="image_sequence", paths=("a.png", "b.png", "c.png"), rate=2.0),
        motion=None,
        transition_in=None,
        grade=None,
    )
    video = dataclasses.replace(document.tracks[0], items=tuple(clips))
    edited = dataclasses.replace(document, tracks=(video, *document.tracks[1:]))
    assert TimelineDocument.from_json(edited.to_json()) == edited  # round trip
    plan = edited.render_plan()
    assert plan.image_at is not None
    assert plan.still_paths[2:5] == ("a.png", "b.png", "c.png")
    assert plan.still_paths[5] == clips[3].source.paths[0]
    assert [plan.image_at(2, t) for t in (-0.1, 0.0, 0.49, 0.5, 1.2, 60.0)] == [2, 2, 2, 3, 4, 4]
    assert plan.image_at(3, 0.7) == 5

    # the renderer shows them: each image a flat colour, no move, no grade
    colours = [np.full((36, 64, 3), 10 * i, np.uint8) for i in range(len(plan.still_paths))]
    renderer = FrameRenderer(
        plan.shots,
        Timeline(plan.shots, fps=24.0, crossfade_seconds=0.5, transition_seconds={}),
        colours.__getitem__,
        FrameStyle(motions={2: plan.motions[2]}, image_at=plan.image_at),
    )
    start = clips[2].start.seconds
    for offset, image in ((0.1, 2), (0.6, 3), (1.1, 4), (1.6, 4)):
        if start + offset < clips[2].end.seconds - 0.3:
            frame = round((start + offset) * 24)
            assert int(renderer.render(frame)[0, 0, 0]) == 10 * image, offset
            assert int(renderer.render_i420(frame, (64, 36))[0, 0]) == int(
                16 + 219 * 10 * image / 255 + 0.5
            )


def test_retime_to_a_shorter_song_clamps_and_still_round_trips() -> None:
    document = _document()
    beats = document.tempo_map.beats
    cut = beats[len(beats) // 2]  # a remix that stops half way, at this beat
    shorter = TempoMap(beats[: len(beats) // 2 + 1], 4, cut[0] + 0.25)
    retimed = document.retime(shorter)
    clips = retimed.video_clips
    assert 0 < len(clips) < len(document.video_clips)
    assert clips[-1].end.seconds == shorter.duration  # the last clip runs to the new end
    assert all(c.start.seconds < c.end.seconds <= shorter.duration for c in clips)
    assert TimelineDocument.from_json(retimed.to_json()) == retimed
    assert retimed.render_plan().shots.duration == shorter.duration
    assert all(m.time.seconds <= shorter.duration for m in retimed.markers)
