"""Tests of section finding on synthesized songs whose sections are known."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import mir_eval
import numpy as np
import pytest

from engine.audio.beats import BeatTrack, track_beats
from engine.audio.sections import find_sections
from engine.audio.synth import SectionSpec, SongSpec, demo_song_spec, synthesize_song
from engine.audio.types import AudioSection
from engine.errors import ParameterError

SR = 22050

POP = SongSpec(
    tempo=100.0,
    sample_rate=SR,
    seed=3,
    sections=(
        SectionSpec(label="intro", bars=4, energy=0.2),
        SectionSpec(label="verse", bars=8, energy=0.5),
        SectionSpec(label="chorus", bars=8, energy=0.9),
        SectionSpec(label="verse", bars=8, energy=0.5),
        SectionSpec(label="chorus", bars=8, energy=0.9),
        SectionSpec(label="bridge", bars=4, energy=0.6),
        SectionSpec(label="chorus", bars=8, energy=0.95),
        SectionSpec(label="outro", bars=4, energy=0.3),
    ),
)


@dataclasses.dataclass(frozen=True)
class Analysed:
    y: np.ndarray
    truth: dict[str, Any]
    track: BeatTrack
    sections: list[AudioSection]


def analyse(spec: SongSpec) -> Analysed:
    song = synthesize_song(dataclasses.replace(spec, sample_rate=SR))
    y = song.audio.mean(axis=0)
    track = track_beats(y, SR)
    sections = find_sections(
        y,
        SR,
        downbeat_times=track.downbeat_times,
        duration=song.truth["duration"],
        beats_per_bar=track.beats_per_bar,
    )
    return Analysed(y=y, truth=song.truth, track=track, sections=sections)


@pytest.fixture(scope="module")
def demo() -> Analysed:
    return analyse(demo_song_spec())


@pytest.fixture(scope="module")
def pop() -> Analysed:
    return analyse(POP)


def boundary_scores(song: Analysed) -> tuple[float, float]:
    """(hit rate, precision) of the inner boundaries within 3 s."""
    ref = np.array([[s["start"], s["end"]] for s in song.truth["sections"]])
    est = np.array([[s.start, s.end] for s in song.sections])
    precision, recall, _ = mir_eval.segment.detection(ref, est, window=3.0, trim=True)
    return float(recall), float(precision)


def bars_in(section: AudioSection, downbeats: np.ndarray) -> int:
    """Number of bars that start inside a section."""
    return int(np.count_nonzero((downbeats >= section.start) & (downbeats < section.end)))


@pytest.mark.parametrize("which", ["demo", "pop"])
def test_boundaries_are_found(which: str, request: pytest.FixtureRequest) -> None:
    song: Analysed = request.getfixturevalue(which)
    hit_rate, precision = boundary_scores(song)
    assert hit_rate >= 0.8, [(s.start, s.label) for s in song.sections]
    assert precision >= 0.8, [(s.start, s.label) for s in song.sections]


@pytest.mark.parametrize("which", ["demo", "pop"])
def test_sections_cover_the_song_on_downbeats(which: str, request: pytest.FixtureRequest) -> None:
    song: Analysed = request.getfixturevalue(which)
    sections = song.sections
    assert sections[0].start == 0.0
    assert sections[-1].end == song.truth["duration"]
    for before, after in itertools.pairwise(sections):
        assert before.end == after.start
        assert np.min(np.abs(song.track.downbeat_times - after.start)) < 1e-9
    assert min(bars_in(s, song.track.downbeat_times) for s in sections) >= 4
    assert all(0.0 <= s.confidence <= 1.0 and 0.0 <= s.energy <= 1.0 for s in sections)
    assert max(s.energy for s in sections) == pytest.approx(1.0)


def label_at(song: Analysed, time: float) -> str:
    return next(s.label for s in song.sections if s.start <= time < s.end)


def test_repeated_sections_share_a_label(demo: Analysed, pop: Analysed) -> None:
    for song in (demo, pop):
        by_truth: dict[str, set[str]] = {}
        for ref in song.truth["sections"]:
            middle = 0.5 * (ref["start"] + ref["end"])
            by_truth.setdefault(ref["label"], set()).add(label_at(song, middle))
        assert by_truth["chorus"] == {"chorus"}
    verses = {
        label_at(pop, 0.5 * (r["start"] + r["end"]))
        for r in pop.truth["sections"]
        if r["label"] == "verse"
    }
    assert verses == {"verse"}


def test_quiet_ends_are_intro_and_outro(demo: Analysed, pop: Analysed) -> None:
    for song in (demo, pop):
        assert song.sections[0].label == "intro"
        assert song.sections[-1].label == "outro"
        assert song.sections[0].energy < 0.5


def test_min_bars_is_respected(pop: Analysed) -> None:
    sections = find_sections(
        pop.y,
        SR,
        downbeat_times=pop.track.downbeat_times,
        duration=pop.truth["duration"],
        beats_per_bar=4,
        min_bars=8,
    )
    assert len(sections) >= 3
    assert min(bars_in(s, pop.track.downbeat_times) for s in sections) >= 8


def test_no_downbeats_give_one_section() -> None:
    y = np.zeros(5 * SR, dtype=np.float32)
    (only,) = find_sections(y, SR, downbeat_times=np.array([]), duration=5.0, beats_per_bar=4)
    assert (only.start, only.end, only.label, only.confidence) == (0.0, 5.0, "song", 0.0)


def test_a_few_bars_give_one_section(demo: Analysed) -> None:
    downbeats = demo.track.downbeat_times[:5]
    duration = float(downbeats[-1]) + 2.0
    y = demo.y[: int(duration * SR)]
    (only,) = find_sections(y, SR, downbeat_times=downbeats, duration=duration, beats_per_bar=4)
    assert (only.start, only.end, only.label) == (0.0, duration, "song")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"y": np.zeros((2, SR))}, "mono 1-D"),
        ({"sr": -1}, "sr=-1"),
        ({"duration": 0.0}, "duration=0.0"),
        ({"duration": float("nan")}, "duration=nan"),
        ({"beats_per_bar": 0}, "beats_per_bar=0"),
        ({"min_bars": 0}, "min_bars=0"),
        ({"downbeat_times": np.array([2.0, 1.0])}, "strictly increasing"),
        ({"downbeat_times": "soon"}, "downbeat_times"),
    ],
)
def test_bad_arguments_raise_parameter_error(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "y": np.zeros(4 * SR, dtype=np.float32),
        "sr": SR,
        "downbeat_times": np.array([0.0, 2.0]),
        "duration": 4.0,
        "beats_per_bar": 4,
    }
    args.update(kwargs)
    y, sr = args.pop("y"), args.pop("sr")
    with pytest.raises(ParameterError, match=match):
        find_sections(y, sr, **args)


EDM = SongSpec(
    tempo=128.0,
    sample_rate=SR,
    seed=4,
    key="C minor",
    sections=(
        SectionSpec(label="intro", bars=4, energy=0.3),
        SectionSpec(label="verse", bars=8, energy=0.55),
        SectionSpec(label="breakdown", bars=4, energy=0.2),
        SectionSpec(label="chorus", bars=8, energy=0.95),
        SectionSpec(label="breakdown", bars=4, energy=0.2),
        SectionSpec(label="chorus", bars=8, energy=0.95),
        SectionSpec(label="outro", bars=4, energy=0.3),
    ),
)

BUILD_UP = SongSpec(
    tempo=120.0,
    sample_rate=SR,
    seed=5,
    key="E major",
    sections=(
        SectionSpec(label="intro", bars=4, energy=0.2),
        SectionSpec(label="verse", bars=8, energy=0.5),
        SectionSpec(label="pre-chorus", bars=4, energy=0.65),
        SectionSpec(label="chorus", bars=8, energy=0.9),
        SectionSpec(label="verse", bars=8, energy=0.5),
        SectionSpec(label="pre-chorus", bars=4, energy=0.65),
        SectionSpec(label="chorus", bars=8, energy=0.9),
        SectionSpec(label="outro", bars=4, energy=0.3),
    ),
)


@pytest.fixture(scope="module")
def edm() -> Analysed:
    return analyse(EDM)


@pytest.fixture(scope="module")
def build_up() -> Analysed:
    return analyse(BUILD_UP)


def labels_of(song: Analysed, truth_label: str) -> list[str]:
    """Our labels at the middle of each section the truth calls ``truth_label``."""
    return [
        label_at(song, 0.5 * (r["start"] + r["end"]))
        for r in song.truth["sections"]
        if r["label"] == truth_label
    ]


def test_dips_between_loud_sections_are_breakdowns(demo: Analysed, edm: Analysed) -> None:
    assert labels_of(demo, "breakdown") == ["breakdown"]
    assert labels_of(edm, "breakdown") == ["breakdown", "breakdown"]


def test_a_sudden_loud_entry_after_a_breakdown_is_a_drop(demo: Analysed, edm: Analysed) -> None:
    # Both choruses of the dance song enter straight after a breakdown: one label, "drop".
    assert labels_of(edm, "chorus") == ["drop", "drop"]
    # The demo's first chorus follows a verse: it stays a chorus, and so does its repeat.
    assert labels_of(demo, "chorus") == ["chorus", "chorus"]


def test_build_ups_before_a_chorus_are_pre_choruses(build_up: Analysed) -> None:
    assert "pre-chorus" in labels_of(build_up, "pre-chorus")
    assert set(labels_of(build_up, "chorus")) == {"chorus"}
    assert labels_of(build_up, "verse")[0] == "verse"
    hit_rate, _ = boundary_scores(build_up)
    assert hit_rate >= 0.8


def test_confidence_is_higher_where_the_label_is_clear(edm: Analysed) -> None:
    """The drops repeat each other exactly: their confidence beats the song's median."""
    drops = [s.confidence for s in edm.sections if s.label == "drop"]
    assert min(drops) >= float(np.median([s.confidence for s in edm.sections]))


def test_short_sections_of_a_slow_song_are_not_merged() -> None:
    """A 64 BPM song whose verses and choruses last 4 bars each (16 s), as long as the
    novelty kernel: the intro's and outro's loudness steps must not hide the verse/chorus
    boundaries between them, and repeats keep sharing a label."""
    spec = SongSpec(
        tempo=64.0,
        key="Bb major",
        seed=103,
        sections=(
            SectionSpec(label="intro", bars=4, energy=0.2),
            SectionSpec(label="verse", bars=4, energy=0.5),
            SectionSpec(label="chorus", bars=4, energy=0.85),
            SectionSpec(label="verse", bars=4, energy=0.5),
            SectionSpec(label="chorus", bars=4, energy=0.85),
            SectionSpec(label="outro", bars=4, energy=0.3),
        ),
    )
    song = analyse(spec)
    hit_rate, precision = boundary_scores(song)
    assert hit_rate >= 0.8, [(s.start, s.label) for s in song.sections]
    assert precision >= 0.8, [(s.start, s.label) for s in song.sections]
    starts = [s["start"] for s in song.truth["sections"]]
    assert label_at(song, starts[1] + 1.0) == label_at(song, starts[3] + 1.0)
    assert label_at(song, starts[2] + 1.0) == label_at(song, starts[4] + 1.0)
