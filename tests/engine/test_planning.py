from __future__ import annotations

import numpy as np
import pytest

from engine.assembly.motion import apply_motion, motion_matrix
from engine.assembly.timeline import Timeline, blend
from engine.audio.types import AudioAnalysis, AudioSection, BeatMarker
from engine.errors import ParameterError
from engine.planning.shots import plan_shots


def make_analysis(
    *,
    tempo: float = 120.0,
    bars: int = 16,
    per_bar: int = 4,
    offset: float = 0.0,
    sections: list[tuple[str, int]] | None = None,
) -> AudioAnalysis:
    period = 60.0 / tempo
    beats = []
    for i in range(bars * per_bar):
        beats.append(
            BeatMarker(
                time=offset + i * period,
                strength=1.0,
                is_downbeat=i % per_bar == 0,
                bar=i // per_bar + 1,
                beat=i % per_bar + 1,
            )
        )
    duration = offset + bars * per_bar * period
    spans = sections or [("song", bars)]
    out, bar = [], 0
    for label, n in spans:
        start = 0.0 if bar == 0 else offset + bar * per_bar * period
        bar += n
        end = duration if bar >= bars else offset + bar * per_bar * period
        out.append(AudioSection(start=start, end=end, label=label, confidence=1.0, energy=0.5))
    return AudioAnalysis(
        duration=duration,
        tempo=tempo,
        key="A minor",
        time_signature=f"{per_bar}/4",
        sections=out,
        beats=beats,
        spectral_features=None,
        sample_rate=22050,
        analyzer_version="test",
    )


def test_one_shot_per_phrase_cut_on_downbeats() -> None:
    analysis = make_analysis(bars=16)
    shots = plan_shots(analysis, phrase_bars=4)
    assert len(shots) == 4
    assert [s.start for s in shots] == pytest.approx([0.0, 8.0, 16.0, 24.0])
    assert [s.position for s in shots] == ["1:1", "5:1", "9:1", "13:1"]
    assert shots.shots[-1].end == pytest.approx(analysis.duration)
    downbeats = {round(b.time, 6) for b in analysis.downbeats}
    assert all(round(c, 6) in downbeats for c in shots.cut_times)


def test_phrases_restart_at_sections_and_section_changes_crossfade() -> None:
    analysis = make_analysis(bars=18, sections=[("intro", 2), ("verse", 8), ("chorus", 8)])
    shots = plan_shots(analysis, phrase_bars=4, min_shot_seconds=1.0)
    starts = [s.position for s in shots]
    assert starts == ["1:1", "3:1", "7:1", "11:1", "15:1"]
    assert [s.transition_in for s in shots] == ["cut", "crossfade", "cut", "crossfade", "cut"]
    assert [s.section for s in shots] == ["intro", "verse", "verse", "chorus", "chorus"]
    assert "vivid" in shots.shots[-1].prompt  # chorus mood reaches the prompt


def test_repeated_sections_share_a_theme() -> None:
    analysis = make_analysis(
        bars=16, sections=[("verse", 4), ("chorus", 4), ("verse", 4), ("chorus", 4)]
    )
    shots = plan_shots(analysis, phrase_bars=4)
    assert shots.shots[0].prompt == shots.shots[2].prompt
    assert shots.shots[1].prompt == shots.shots[3].prompt
    assert shots.shots[0].prompt != shots.shots[1].prompt
    assert len({s.seed for s in shots}) == 4


def test_pickup_before_first_downbeat_is_covered() -> None:
    analysis = make_analysis(bars=8, offset=3.0)
    shots = plan_shots(analysis, phrase_bars=4)
    assert shots.shots[0].start == 0.0
    assert shots.shots[1].start == pytest.approx(3.0)


def test_short_phrases_merge_and_long_ones_split() -> None:
    analysis = make_analysis(tempo=240.0, bars=16)  # 1 s bars: 4 s phrases
    merged = plan_shots(analysis, phrase_bars=1, min_shot_seconds=2.5)
    assert all(s.duration >= 2.5 - 1e-9 for s in merged)
    long = plan_shots(make_analysis(tempo=60.0, bars=8), phrase_bars=8, max_shot_seconds=10.0)
    assert all(s.duration <= 10.0 + 1e-9 for s in long)
    downbeats = {round(b.time, 6) for b in make_analysis(tempo=60.0, bars=8).downbeats}
    assert all(round(c, 6) in downbeats for c in long.cut_times)


def test_no_beats_cuts_evenly_and_warns() -> None:
    analysis = AudioAnalysis(
        duration=20.0,
        tempo=0.0,
        key="unknown",
        time_signature="4/4",
        sections=[],
        beats=[],
        spectral_features=None,
        sample_rate=22050,
        analyzer_version="test",
    )
    shots = plan_shots(analysis)
    assert len(shots) == 5
    assert shots.warnings and "no beat" in shots.warnings[0]


def test_bad_parameters() -> None:
    with pytest.raises(ParameterError, match="phrase_bars=0"):
        plan_shots(make_analysis(), phrase_bars=0)
    with pytest.raises(ParameterError, match="min_shot_seconds"):
        plan_shots(make_analysis(), min_shot_seconds=20.0, max_shot_seconds=10.0)


def test_timeline_cuts_land_on_the_nearest_frame() -> None:
    analysis = make_analysis(tempo=123.0, bars=12, sections=[("verse", 12)])
    shots = plan_shots(analysis, phrase_bars=4)
    timeline = Timeline(shots, fps=30, crossfade_seconds=0.5)
    assert timeline.frame_count == round(analysis.duration * 30)
    for shot in shots.shots[1:]:
        frame = round(shot.start * 30)
        assert abs(frame / 30 - shot.start) <= 0.5 / 30
        assert timeline.recipe(frame - 1).layers[0][0] == shot.index - 1
        assert timeline.recipe(frame).layers[0][0] == shot.index


def test_timeline_crossfade_is_centred_on_the_cut() -> None:
    analysis = make_analysis(bars=8, sections=[("verse", 4), ("chorus", 4)])
    shots = plan_shots(analysis, phrase_bars=4)
    timeline = Timeline(shots, fps=30, crossfade_seconds=0.5)
    cut = round(shots.shots[1].start * 30)
    weights = {
        f: dict((i, w) for i, w, _ in timeline.recipe(f).layers) for f in range(cut - 10, cut + 10)
    }
    blended = [f for f, layers in weights.items() if len(layers) == 2]
    assert len(blended) == 15
    assert min(blended) == cut - 7 and max(blended) == cut + 7
    assert weights[cut][1] == pytest.approx(0.5, abs=0.06)
    incoming = [weights[f].get(1, 0.0) for f in sorted(weights)]
    assert incoming == sorted(incoming)  # monotonic fade


def test_motion_never_shows_a_border() -> None:
    for motion in ("zoom_in", "zoom_out", "pan_left", "pan_right"):
        for progress in (0.0, 0.5, 1.0):
            m = motion_matrix(motion, progress, width=320, height=180, amount=0.1)
            # the frame's corners map back inside the still
            inverse = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
            for x, y in ((0, 0), (319, 0), (0, 179), (319, 179)):
                sx, sy, _ = inverse @ np.array([x, y, 1.0])
                assert -0.5 <= sx <= 319.5 and -0.5 <= sy <= 179.5, (motion, progress)


def test_motion_moves_the_picture() -> None:
    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    start = apply_motion(still, "zoom_in", 0.0, amount=0.1)
    end = apply_motion(still, "zoom_in", 1.0, amount=0.1)
    assert np.array_equal(start, still)
    assert np.abs(end.astype(int) - still).mean() > 10
    with pytest.raises(ParameterError, match="motion='spin'"):
        motion_matrix("spin", 0.5, width=10, height=10, amount=0.1)


def test_blend_weights() -> None:
    a = np.zeros((2, 2, 3), np.uint8)
    b = np.full((2, 2, 3), 200, np.uint8)
    assert blend([a, b], [0.25, 0.75])[0, 0, 0] == 150


def test_downbeat_just_before_a_section_start_belongs_to_the_new_section() -> None:
    analysis = make_analysis(bars=8, sections=[("verse", 4), ("chorus", 4)])
    late = [
        AudioSection(start=s.start + (0.03 if i else 0.0), end=s.end, label=s.label, confidence=1.0)
        for i, s in enumerate(analysis.sections)
    ]
    shifted = AudioAnalysis(**{**analysis.__dict__, "sections": late})
    shots = plan_shots(shifted, phrase_bars=4)
    assert [s.section for s in shots] == ["verse", "chorus"]
    assert shots.shots[1].position == "5:1"


def test_a_style_prompt_is_the_subject_of_every_shot() -> None:
    analysis = make_analysis(bars=16, sections=[("verse", 8), ("chorus", 8)])
    shots = plan_shots(analysis, phrase_bars=4, base_prompt="red fox in snow")
    assert all(s.prompt.startswith("red fox in snow") for s in shots)
    assert shots.shots[0].prompt != shots.shots[2].prompt  # the mood differs by section
    themed = plan_shots(analysis, phrase_bars=4)
    assert themed.shots[0].prompt.split(",")[0] != themed.shots[2].prompt.split(",")[0]


def _energetic(bars: int = 24) -> AudioAnalysis:
    analysis = make_analysis(bars=bars, sections=[("intro", 8), ("verse", 8), ("chorus", 8)])
    energies = {"intro": 0.3, "verse": 0.6, "chorus": 1.0}
    sections = [
        AudioSection(
            start=s.start, end=s.end, label=s.label, confidence=1.0, energy=energies[s.label]
        )
        for s in analysis.sections
    ]
    return AudioAnalysis(**{**analysis.__dict__, "sections": sections})


def test_energy_pacing_cuts_faster_in_loud_sections() -> None:
    shots = plan_shots(_energetic(), phrase_bars=4, pacing="energy", max_shot_seconds=20.0)
    bars = {
        label: [s.duration / 2.0 for s in shots if s.section == label]
        for label in ("intro", "verse", "chorus")
    }
    assert bars == {"intro": [8.0], "verse": [4.0, 4.0], "chorus": [2.0, 2.0, 2.0, 2.0]}
    even = plan_shots(_energetic(), phrase_bars=4, pacing="even")
    assert {s.duration for s in even} == {8.0}
    with pytest.raises(ParameterError, match="pacing='wild'"):
        plan_shots(_energetic(), pacing="wild")


def test_overrides_add_and_remove_cuts_and_survive_replanning() -> None:
    from engine.planning.shots import ShotOverride

    overrides = [
        ShotOverride(position="3:3", prompt="close-up of the singer", motion="static"),
        ShotOverride(position="13:1", cut=False),
        ShotOverride(position="99:1"),
    ]
    analysis = _energetic()
    for phrase_bars, pacing in ((4, "even"), (2, "energy"), (8, "even")):
        shots = plan_shots(analysis, phrase_bars=phrase_bars, pacing=pacing, overrides=overrides)
        pinned = [s for s in shots if s.position == "3:3"]
        assert len(pinned) == 1
        assert pinned[0].prompt == "close-up of the singer" and pinned[0].motion == "static"
        assert pinned[0].start == pytest.approx(2 * 2.0 + 2 * 0.5)
        assert all(s.position != "13:1" for s in shots)
        assert any("99:1" in w for w in shots.warnings)


def test_adding_a_cut_keeps_the_other_shots_seeds() -> None:
    from engine.planning.shots import ShotOverride

    plain = plan_shots(_energetic(), phrase_bars=4, pacing="even")
    edited = plan_shots(
        _energetic(), phrase_bars=4, pacing="even", overrides=[ShotOverride(position="7:1")]
    )
    seeds = {s.position: s.seed for s in plain}
    assert len(edited) == len(plain) + 1
    for shot in edited:
        if shot.position in seeds and shot.position != "5:1":  # 5:1 now ends earlier
            assert shot.seed == seeds[shot.position]


def test_override_validation() -> None:
    from engine.planning.shots import ShotOverride

    with pytest.raises(ParameterError, match="position='bar 3'"):
        ShotOverride(position="bar 3")
    with pytest.raises(ParameterError, match="counted from 1"):
        ShotOverride(position="0:1")


def test_shot_list_json_round_trip() -> None:
    import json

    from engine.planning.shots import ShotList

    shots = plan_shots(_energetic(), phrase_bars=4)
    again = ShotList.from_dict(json.loads(json.dumps(shots.to_dict())))
    assert again == shots


def test_cut_on_beat_cuts_a_loud_chorus_every_two_beats() -> None:
    # 120 BPM: 0.5 s a beat; intro 0.3, verse 0.6, chorus 1.0 energy, 8 bars each.
    shots = plan_shots(
        _energetic(),
        phrase_bars=4,
        pacing="energy",
        cut_on="beat",
        min_shot_seconds=0.9,
        max_shot_seconds=20.0,
    )
    chorus = [s for s in shots if s.section == "chorus"]
    assert [s.position for s in chorus[:5]] == ["17:1", "17:3", "18:1", "18:3", "19:1"]
    assert {s.duration for s in chorus} == {1.0}  # every 2 beats, off the downbeat too
    assert len(chorus) == 16
    beat_times = {round(b.time, 9) for b in _energetic().beats}
    assert all(round(s.start, 9) in beat_times for s in shots)  # every cut on a beat
    # quieter sections keep longer shots: the verse a phrase, the intro two phrases
    assert {s.duration for s in shots if s.section == "verse"} == {8.0}
    assert [s.duration for s in shots if s.section == "intro"] == [16.0]


def test_cut_on_beat_respects_min_and_max_shot_length() -> None:
    analysis = _energetic()
    # 2 beats (1.0 s) is too short for min 1.5 s: the chorus doubles to 4 beats, regularly
    shots = plan_shots(analysis, phrase_bars=4, pacing="energy", cut_on="beat")
    chorus = [s for s in shots if s.section == "chorus"]
    assert {s.duration for s in chorus} == {2.0}
    assert all(s.duration >= 1.5 for s in shots)
    # a 16 s intro is split under max_shot_seconds, on a downbeat
    capped = plan_shots(
        analysis, phrase_bars=4, pacing="energy", cut_on="beat", max_shot_seconds=10.0
    )
    assert all(s.duration <= 10.0 for s in capped)
    assert [s.position for s in capped if s.section == "intro"] == ["1:1", "5:1"]
    # even pacing on beats gives the downbeat plan
    even = plan_shots(analysis, phrase_bars=4, pacing="even", cut_on="beat")
    assert even.to_dict() == plan_shots(analysis, phrase_bars=4, pacing="even").to_dict()
    with pytest.raises(ParameterError, match="cut_on='bar'"):
        plan_shots(analysis, cut_on="bar")


def test_overrides_survive_replanning_on_beats() -> None:
    from engine.planning.shots import ShotOverride

    overrides = [
        ShotOverride(position="18:1", cut=False),
        ShotOverride(position="6:2", prompt="the drummer", seed=42),
    ]
    for cut_on in ("beat", "downbeat"):
        shots = plan_shots(
            _energetic(),
            phrase_bars=4,
            pacing="energy",
            cut_on=cut_on,
            min_shot_seconds=0.9,
            overrides=overrides,
        )
        assert all(s.position != "18:1" for s in shots)
        pinned = [s for s in shots if s.position == "6:2"]
        assert len(pinned) == 1 and pinned[0].prompt == "the drummer" and pinned[0].seed == 42
