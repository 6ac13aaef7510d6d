"""Tests of the beat, downbeat and meter tracker on synthesized songs with known beats."""

from __future__ import annotations

import dataclasses
from typing import Any

import mir_eval
import numpy as np
import pytest

from engine.audio.beats import BeatTrack, track_beats
from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
from engine.errors import ParameterError

SR = 22050


def song_spec(tempo: float, **changes: Any) -> SongSpec:
    """An 18-bar song (about 25..60 s): a hats-only intro, verses, choruses, an outro."""
    sections = (
        SectionSpec(label="intro", bars=2, energy=0.2),
        SectionSpec(label="verse", bars=4, energy=0.5),
        SectionSpec(label="chorus", bars=4, energy=0.9),
        SectionSpec(label="verse", bars=2, energy=0.6),
        SectionSpec(label="chorus", bars=4, energy=0.85),
        SectionSpec(label="outro", bars=2, energy=0.3),
    )
    return SongSpec(tempo=tempo, sections=sections, sample_rate=SR, **changes)


# Tempos from ballad to drum'n'bass, both meters, and the rhythms that trap stock trackers.
CASES: dict[str, SongSpec] = {
    "72bpm": song_spec(72.0, seed=1),
    "90bpm-3/4": song_spec(90.0, beats_per_bar=3, seed=2),
    "120bpm-offbeat-hats": song_spec(120.0, offbeat_hats=True, seed=3),
    "140bpm-swing-syncopation": song_spec(140.0, swing=0.3, syncopation=True, seed=4),
    "170bpm": song_spec(170.0, seed=5),
    "120bpm-3/4-swing": song_spec(120.0, beats_per_bar=3, swing=0.2, seed=6),
    "90bpm-offbeat-syncopation-lead-in": song_spec(
        90.0, offbeat_hats=True, syncopation=True, lead_in=1.0, seed=7
    ),
    "170bpm-3/4-offbeat": song_spec(170.0, beats_per_bar=3, offbeat_hats=True, seed=8),
}


@pytest.fixture(scope="module")
def tracked() -> dict[str, tuple[dict[str, Any], BeatTrack]]:
    """Every case synthesized and tracked once (the first call also warms up numba)."""
    out = {}
    for name, spec in CASES.items():
        song = synthesize_song(spec)
        out[name] = (song.truth, track_beats(song.audio.mean(axis=0), song.sample_rate))
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_beats_match_the_truth(
    tracked: dict[str, tuple[dict[str, Any], BeatTrack]], name: str
) -> None:
    truth, track = tracked[name]
    f_beats = mir_eval.beat.f_measure(np.array(truth["beats"]), track.times)
    assert f_beats >= 0.95, f"{name}: beat F {f_beats:.3f}"
    # No octave errors: the tempo is within 4 % of the truth, not half or double.
    assert track.tempo == pytest.approx(truth["tempo"], rel=0.04)
    assert track.beats_per_bar == CASES[name].beats_per_bar
    f_downbeats = mir_eval.beat.f_measure(np.array(truth["downbeats"]), track.downbeat_times)
    assert f_downbeats >= 0.9, f"{name}: downbeat F {f_downbeats:.3f}"
    assert track.warnings == ()


def test_track_is_well_formed(tracked: dict[str, tuple[dict[str, Any], BeatTrack]]) -> None:
    _, track = tracked["140bpm-swing-syncopation"]
    n = len(track)
    assert track.times.dtype == np.float64
    assert np.all(np.diff(track.times) > 0)
    assert track.strengths.shape == (n,)
    assert np.all((track.strengths >= 0.0) & (track.strengths <= 1.0))
    assert track.beat_in_bar.shape == (n,)
    assert set(np.unique(track.beat_in_bar)) <= {1, 2, 3, 4}
    # Positions count up through each bar.
    following = track.beat_in_bar[1:]
    assert np.all(following == track.beat_in_bar[:-1] % track.beats_per_bar + 1)


def test_no_beats_in_a_silent_lead_in(
    tracked: dict[str, tuple[dict[str, Any], BeatTrack]],
) -> None:
    truth, track = tracked["90bpm-offbeat-syncopation-lead-in"]
    assert track.times[0] > truth["beats"][0] - 0.07
    assert track.times[-1] < truth["beats"][-1] + 0.07


def test_other_sample_rates_are_resampled() -> None:
    song = synthesize_song(dataclasses.replace(song_spec(128.0, seed=9), sample_rate=44100))
    track = track_beats(song.audio.mean(axis=0), song.sample_rate)
    assert mir_eval.beat.f_measure(np.array(song.truth["beats"]), track.times) >= 0.95


def test_imposed_meter_is_kept() -> None:
    song = synthesize_song(song_spec(100.0, seed=10))
    track = track_beats(song.audio.mean(axis=0), SR, beats_per_bar=3)
    assert track.beats_per_bar == 3
    assert set(np.unique(track.beat_in_bar)) == {1, 2, 3}


def test_silence_gives_an_empty_track_with_a_warning() -> None:
    track = track_beats(np.zeros(10 * SR, dtype=np.float32), SR)
    assert len(track) == 0
    assert track.tempo == 0.0
    assert track.times.dtype == np.float64
    assert track.beat_in_bar.size == 0
    assert "silent" in track.warnings[0]


def test_white_noise_gives_an_empty_track_with_a_warning() -> None:
    noise = 0.3 * np.random.default_rng(0).standard_normal(20 * SR).astype(np.float32)
    for sensitivity in (0.5, 1.0):
        track = track_beats(noise, SR, sensitivity=sensitivity)
        assert len(track) == 0
        assert track.tempo == 0.0
        assert "no steady pulse" in track.warnings[0]


def test_too_short_audio_gives_an_empty_track() -> None:
    track = track_beats(np.zeros(SR, dtype=np.float32), SR)
    assert len(track) == 0
    assert "shorter" in track.warnings[0]


def test_sensitivity_sets_how_quiet_music_may_be() -> None:
    """The loudness gate is -50 - 30 * sensitivity dBFS: a song at about -60 dBFS counts
    as music at 0.9 (gate -77 dBFS) and as silence at 0.1 (gate -53 dBFS)."""
    song = synthesize_song(song_spec(110.0, seed=11))
    quiet = song.audio.mean(axis=0) * 10.0 ** (-45.0 / 20.0)
    deaf = track_beats(quiet, SR, sensitivity=0.1)
    assert len(deaf) == 0
    assert "silent" in deaf.warnings[0]
    keen = track_beats(quiet, SR, sensitivity=0.9)
    assert mir_eval.beat.f_measure(np.array(song.truth["beats"]), keen.times) >= 0.95


def drifting_drums(start_bpm: float, end_bpm: float, seconds: float) -> tuple[np.ndarray, ...]:
    """Kick and snare alternating on every beat while the tempo glides; returns audio, beats."""
    beats = [0.5]
    while beats[-1] < seconds - 1.0:
        bpm = start_bpm + (end_bpm - start_bpm) * beats[-1] / seconds
        beats.append(beats[-1] + 60.0 / bpm)
    t = np.arange(int(0.15 * SR)) / SR
    kick = np.sin(2 * np.pi * (50 * t + 2.0 * (1 - np.exp(-t / 0.02)))) * np.exp(-t / 0.05)
    snare = np.random.default_rng(0).standard_normal(t.size) * np.exp(-t / 0.03) * 0.3
    y = np.zeros(int(seconds * SR))
    for i, beat in enumerate(beats):
        start = int(beat * SR)
        y[start : start + t.size] += kick if i % 2 == 0 else snare + 0.3 * kick
    return (0.5 * y).astype(np.float32), np.array(beats)


def test_sensitivity_sets_how_closely_beats_follow_the_timing() -> None:
    """Tightness to the global tempo is 400 * 16 ** -sensitivity: at 1.0 the beats follow a
    tempo that glides from 90 to 130 BPM; at 0.0 they hold on to the average tempo."""
    y, beats = drifting_drums(90.0, 130.0, 40.0)
    loose = mir_eval.beat.f_measure(beats, track_beats(y, SR, sensitivity=1.0).times)
    strict = mir_eval.beat.f_measure(beats, track_beats(y, SR, sensitivity=0.0).times)
    assert loose >= 0.95
    assert loose > strict + 0.1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"y": np.zeros((2, SR * 4), dtype=np.float32)}, "mono 1-D"),
        ({"y": np.zeros(SR * 4, dtype=np.int16)}, "floating-point"),
        ({"y": [0.0] * (SR * 4)}, "mono 1-D"),
        ({"sr": 0}, "sr=0"),
        ({"sr": 22050.0}, "sr=22050.0"),
        ({"sensitivity": 1.5}, "sensitivity=1.5"),
        ({"sensitivity": True}, "sensitivity=True"),
        ({"beats_per_bar": 5}, "beats_per_bar=5"),
        ({"y": np.full(SR * 4, np.nan, dtype=np.float32)}, "finite"),
    ],
)
def test_bad_arguments_raise_parameter_error(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"y": np.zeros(SR * 4, dtype=np.float32), "sr": SR}
    args.update(kwargs)
    y, sr = args.pop("y"), args.pop("sr")
    with pytest.raises(ParameterError, match=match):
        track_beats(y, sr, **args)


# Traps from issue 3, each with exact truth: kicks only on 1 and 3 (nothing on 2 and 4),
# half-time drums, a tempo that glides, a ritardando ending and a pad-only outro.
def trap_spec(tempo: float, *, energies: tuple[float, ...], **changes: Any) -> SongSpec:
    labels = ("intro", "verse", "chorus", "verse", "chorus", "outro")
    bars = (2, 4, 4, 2, 4, 2)
    sections = tuple(
        SectionSpec(label=label, bars=n, energy=e)
        for label, n, e in zip(labels, bars, energies, strict=True)
    )
    return SongSpec(tempo=tempo, sections=sections, sample_rate=SR, **changes)


POP_ENERGIES = (0.2, 0.5, 0.9, 0.6, 0.85, 0.3)
TRAPS: dict[str, tuple[SongSpec, float]] = {
    "116bpm-kicks-on-1-and-3-off-beat-hats": (
        trap_spec(116.0, energies=(0.2, 0.42, 0.44, 0.42, 0.44, 0.3), offbeat_hats=True, seed=21),
        0.95,
    ),
    "94bpm-half-time": (trap_spec(94.0, energies=POP_ENERGIES, half_time=True, seed=22), 0.95),
    # Tempo changes need only be not catastrophic: a glide by a quarter in 40 s, and a
    # last section slowing to 70 % of its tempo.
    "100bpm-gliding-to-124": (
        trap_spec(100.0, energies=POP_ENERGIES, tempo_end=124.0, seed=23),
        0.9,
    ),
    "112bpm-ritardando": (trap_spec(112.0, energies=POP_ENERGIES, rubato_end=0.3, seed=24), 0.85),
    "108bpm-pad-only-outro": (
        trap_spec(108.0, energies=(0.3, 0.55, 0.95, 0.55, 0.95, 0.08), seed=25),
        0.95,
    ),
}


@pytest.fixture(scope="module")
def trapped() -> dict[str, tuple[dict[str, Any], BeatTrack]]:
    out = {}
    for name, (spec, _) in TRAPS.items():
        song = synthesize_song(spec)
        out[name] = (song.truth, track_beats(song.audio.mean(axis=0), song.sample_rate))
    return out


@pytest.mark.parametrize("name", list(TRAPS))
def test_traps_are_tracked(trapped: dict[str, tuple[dict[str, Any], BeatTrack]], name: str) -> None:
    truth, track = trapped[name]
    f_beats = mir_eval.beat.f_measure(np.array(truth["beats"]), track.times)
    assert f_beats >= TRAPS[name][1], f"{name}: beat F {f_beats:.3f}"
    assert track.tempo == pytest.approx(truth["tempo"], rel=0.04)


def test_synth_tempo_changes_keep_the_truth_exact() -> None:
    """Under a glide and a ritardando, every kick of a four-on-the-floor song starts at a
    beat of the truth (to the sample), and the beats slow down as asked."""
    spec = SongSpec(
        tempo=100.0,
        tempo_end=130.0,
        rubato_end=0.4,
        sample_rate=SR,
        sections=(
            SectionSpec(label="verse", bars=4, energy=0.7),
            SectionSpec(label="outro", bars=2, energy=0.7),
        ),
    )
    from engine.audio.synth import _Song, _tempo_map

    song = synthesize_song(spec)
    beats = np.array(song.truth["beats"])
    tempo_map = _tempo_map(spec)
    assert tempo_map is not None
    rendered = _Song(spec)
    kicks = [rendered.sample_at(float(b)) for b in range(beats.size)]
    assert np.array_equal(np.round(beats * SR).astype(int), kicks)
    gaps = np.diff(beats)
    assert 60.0 / gaps[0] == pytest.approx(100.0, rel=0.02)
    assert gaps[-1] > gaps[15]  # the ritardando
    assert song.truth["spec"]["tempo_end"] == 130.0


def test_synth_options_at_their_defaults_leave_the_spec_dict_alone() -> None:
    fields = song_spec(120.0).to_dict()
    assert not {"half_time", "tempo_end", "rubato_end"} & set(fields)
    with pytest.raises(ParameterError, match="tempo_end"):
        song_spec(120.0, tempo_end=300.0)
    with pytest.raises(ParameterError, match="rubato_end"):
        song_spec(120.0, rubato_end=0.9)


# Tempo-octave traps that once tracked at half the tempo (issue 3).
def _section_specs(*sections: tuple[str, int, float]) -> tuple[SectionSpec, ...]:
    return tuple(SectionSpec(label=label, bars=n, energy=e) for label, n, e in sections)


def _mp3_round_trip(audio: np.ndarray, sample_rate: int, path: Any) -> tuple[np.ndarray, int]:
    """Encode stereo float audio as 160 kbit/s MP3 with PyAV and decode it as the app does."""
    import av

    from engine.audio.decode import decode_audio

    with av.open(str(path), mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=sample_rate, layout="stereo")
        stream.bit_rate = 160_000
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio, dtype=np.float32), format="fltp", layout="stereo"
        )
        frame.sample_rate = sample_rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    decoded = decode_audio(path)
    return decoded.mono(), decoded.sample_rate


def test_half_time_edm_is_tracked_at_its_tempo_not_half() -> None:
    """140 BPM, kick on 1 and snare on 3, hats and bass in eighths: kick and snare alternate
    on the beats at 70 BPM, but the eighths are played too, so 70 BPM would be a groove in
    sixteenths; the level nearer 120 BPM wins."""
    spec = SongSpec(
        tempo=140.0,
        sections=_section_specs(("intro", 2, 0.3), ("verse", 4, 0.55), ("chorus", 8, 0.95)),
        half_time=True,
        sample_rate=SR,
        seed=32,
    )
    song = synthesize_song(spec)
    track = track_beats(song.audio.mean(axis=0), SR)
    assert track.tempo == pytest.approx(140.0, rel=0.04)
    assert mir_eval.beat.f_measure(np.array(song.truth["beats"]), track.times) >= 0.95


def test_slow_half_time_ballad_keeps_its_tempo() -> None:
    """The same drums at 72 BPM with nothing between the eighths stay at 72 BPM (144 would
    leave its own off-beats empty)."""
    spec = SongSpec(
        tempo=72.0,
        sections=_section_specs(("intro", 2, 0.2), ("verse", 4, 0.55), ("chorus", 4, 0.8)),
        half_time=True,
        sample_rate=SR,
        seed=104,
    )
    song = synthesize_song(spec)
    track = track_beats(song.audio.mean(axis=0), SR)
    assert track.tempo == pytest.approx(72.0, rel=0.04)


def test_kicks_on_1_and_3_under_off_beat_hats_from_mp3(tmp_path: Any) -> None:
    """116 BPM, kicks on 1 and 3 only, open hats on every off-beat, a hats-only intro, from
    MP3: the grid tracked at 116 BPM once followed the hats for half the song, so the level
    test saw no beat on 2 and 4 and halved the tempo.  The faster grid must hold the kicks."""
    spec = SongSpec(
        tempo=116.0,
        sections=_section_specs(
            ("intro", 4, 0.2),
            ("verse", 8, 0.42),
            ("chorus", 4, 0.44),
            ("verse", 4, 0.42),
            ("chorus", 4, 0.44),
            ("outro", 4, 0.3),
        ),
        key="F# minor",
        offbeat_hats=True,
        seed=116,
    )
    song = synthesize_song(spec)
    y, sr = _mp3_round_trip(song.audio, song.sample_rate, tmp_path / "song.mp3")
    track = track_beats(y, sr)
    assert track.tempo == pytest.approx(116.0, rel=0.04)
    truth = np.array(song.truth["beats"])
    assert mir_eval.beat.f_measure(truth, track.times) >= 0.95


def test_a_faster_grid_that_drifts_off_beat_is_nested_in_the_slower_one() -> None:
    """Where the grid at twice the tempo sits on the off-beats of clear kicks for a stretch,
    the kicks are kept and the gaps halved; elsewhere the tracked grid stays as it is."""
    from engine.audio.beats import _nest

    slow = np.arange(0.0, 400.0, 20.0)  # kicks every 20 frames
    accent = np.zeros(420)
    accent[slow.astype(int)] = 1.0
    accent[(slow + 5).astype(int)] = 0.5  # hats a quarter of a slow beat later
    fast = np.arange(0.0, 400.0, 10.0)
    fast[10:20] += 5.0  # frames 105..195: on the hats
    nested = _nest(slow, fast, accent)
    expected = np.arange(0.0, 390.0 + 1e-9, 10.0)
    assert nested == pytest.approx(expected)


def test_slow_waltz_with_a_kick_on_every_beat_is_not_doubled() -> None:
    """67 BPM in 3/4, a kick on every beat and hats in eighths: the eighths are a level
    whose own off-beats are silent, so they are the subdivision, not the beat (the prior
    alone would prefer 134 BPM)."""
    spec = SongSpec(
        tempo=67.0,
        beats_per_bar=3,
        key="E major",
        sections=_section_specs(("intro", 2, 0.2), ("verse", 6, 0.6), ("chorus", 6, 0.83)),
        sample_rate=SR,
        seed=42,
    )
    song = synthesize_song(spec)
    track = track_beats(song.audio.mean(axis=0), SR)
    assert track.tempo == pytest.approx(67.0, rel=0.04)
    assert track.beats_per_bar == 3
    assert mir_eval.beat.f_measure(np.array(song.truth["beats"]), track.times) >= 0.95


@pytest.mark.parametrize(
    ("tempo", "slowing", "outro", "seed"), [(150.0, 0.4, 0.45, 306), (90.0, 0.25, 0.35, 307)]
)
def test_ritardando_endings_are_followed(
    tempo: float, slowing: float, outro: float, seed: int
) -> None:
    """The last section slows to 60 % (75 %) of the tempo, bass and hats still playing: the
    beats follow it to the end (a grid at the song's tempo falls between them; F was 0.85
    and 0.83 with it)."""
    spec = SongSpec(
        tempo=tempo,
        beats_per_bar=4 if tempo > 100 else 3,
        swing=0.0 if tempo > 100 else 0.25,
        sections=_section_specs(
            ("intro", 2, 0.2), ("verse", 4, 0.55), ("chorus", 4, 0.9), ("outro", 4, outro)
        ),
        rubato_end=slowing,
        sample_rate=SR,
        seed=seed,
    )
    song = synthesize_song(spec)
    track = track_beats(song.audio.mean(axis=0), SR)
    truth = np.array(song.truth["beats"])
    trimmed = mir_eval.beat.f_measure(
        mir_eval.beat.trim_beats(truth), mir_eval.beat.trim_beats(track.times)
    )
    assert trimmed >= 0.95
    last_bar = truth[-spec.beats_per_bar :]
    assert np.all(np.min(np.abs(track.times[:, None] - last_bar[None, :]), axis=0) < 0.07)
