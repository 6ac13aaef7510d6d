"""Accuracy and speed of the audio analyser against ground truth, beside librosa's stock tracker.

    .venv/bin/python benchmarks/audio_accuracy.py [--quick] [--jobs 2] [--random N] [--only TEXT]
        [--no-speed] [--synthetic-only | --real-only] [--json FILE]

Three parts, each printed as a table with summary lines against the targets of issue 3:

1. **Synthetic suite** (:data:`SUITE`): 32 songs made by :func:`engine.audio.synth.synthesize_song`
   with exact truth (beats, downbeats, sections, key), 60..180 BPM, 3/4 and 4/4, and the
   rhythms that break naive trackers: swing, off-beat hi-hats, syncopation, half-time drums
   (kick on 1, snare on 3), kicks on 1 and 3 only, quiet intros and lead-ins, pad-only
   outros, gradual tempo changes and ritardando endings.  Each song is written to a temp
   folder as 16-bit WAV (every fourth as 160 kbit/s MP3) and analysed from that file by
   ``AudioAnalyzer().analyze(path)``, so decoding is included.  librosa's stock pipeline
   (``librosa.load`` + ``librosa.beat.beat_track``) runs on the same file.
2. **Real recordings** in ``../shared/eval/beats/`` (skipped with a message when absent):
   the same figures on human annotations.
3. **Speed**: a 3-minute synthesized song, analysed cold in a fresh subprocess (imports and
   any JIT compilation included, once with numba's on-disk cache empty) and warm in-process;
   librosa's stock pipeline timed the same way in the same run.

Scores (mir_eval):

* beat F-measure at +-70 ms, *trimmed* (the standard protocol: beats before 5 s dropped from
  both sides) and on the *whole* clip (a video cut sees every beat);
* downbeat F-measure (+-70 ms, whole clip);
* tempo: the median inter-beat interval within 4 % of the truth's; otherwise the ratio is
  named when it is a metrical error (x2, x1/2, x3/2, x2/3) -- an *octave error*;
* sections: boundary detection (``mir_eval.segment.detection``, the ends trimmed) at 0.5 s
  and 3 s: the *hit rate* is its F-measure (precision and recall in the summary); label
  agreement as the pairwise frame-clustering F (does repeated material share a label,
  whatever its name) and the fraction of time whose label is the truth's (``drop`` counts
  as ``chorus``: the synthesizer has no drops);
* key: exact, and the usual near misses counted apart (fifth, relative, parallel).

``--quick`` runs 12 of the songs and one warm repeat; ``--random N`` adds N random songs
(seeded, fixed) as a separate table, not scored against the targets; ``--only TEXT`` runs
the suite songs whose name contains TEXT (and skips the real recordings and the speed part);
``--synthetic-only`` and ``--real-only`` run one part alone, ``--no-speed`` skips the speed part.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.audio.synth import SectionSpec, SongSpec, demo_song_spec, parse_key  # noqa: E402

EVAL_DIR = ROOT.parent / "shared" / "eval" / "beats"
STOCK_SR = 22050
TEMPO_TOLERANCE = 0.04
TARGETS = {
    "real_beat_f": 0.95,
    "synth_beat_f": 0.98,
    "synth_downbeat_f": 0.9,
    "synth_section_hit_3s": 0.8,
    "warm_seconds": 3.0,
    "cold_seconds": 15.0,
}

# ----------------------------------------------------------------------------- the suite


def _s(label: str, bars: int, energy: float) -> SectionSpec:
    return SectionSpec(label=label, bars=bars, energy=energy)


def pop_form(verse: float = 0.5) -> tuple[SectionSpec, ...]:
    """48 bars: intro, verse, pre-chorus, chorus, verse, pre-chorus, chorus, outro."""
    return (
        _s("intro", 4, 0.2),
        _s("verse", 8, verse),
        _s("pre-chorus", 4, 0.65),
        _s("chorus", 8, 0.9),
        _s("verse", 8, verse),
        _s("pre-chorus", 4, 0.65),
        _s("chorus", 8, 0.9),
        _s("outro", 4, 0.3),
    )


def short_form(verse: float = 0.5, chorus: float = 0.85) -> tuple[SectionSpec, ...]:
    """24 bars, for slow songs: intro, verse, chorus, verse, chorus, outro."""
    return (
        _s("intro", 4, 0.2),
        _s("verse", 4, verse),
        _s("chorus", 4, chorus),
        _s("verse", 4, verse),
        _s("chorus", 4, chorus),
        _s("outro", 4, 0.3),
    )


def edm_form(outro: float = 0.1) -> tuple[SectionSpec, ...]:
    """44 bars: intro, verse, breakdown, chorus (the drop), breakdown, chorus, outro.

    The default outro is a pad alone (energy 0.1), fading towards silence.
    """
    return (
        _s("intro", 8, 0.3),
        _s("verse", 8, 0.55),
        _s("breakdown", 4, 0.2),
        _s("chorus", 8, 0.95),
        _s("breakdown", 4, 0.2),
        _s("chorus", 8, 0.95),
        _s("outro", 4, outro),
    )


def waltz_form() -> tuple[SectionSpec, ...]:
    """36 bars of 3/4: intro, verse, chorus, verse, chorus, outro."""
    return (
        _s("intro", 4, 0.15),
        _s("verse", 8, 0.5),
        _s("chorus", 8, 0.8),
        _s("verse", 4, 0.5),
        _s("chorus", 8, 0.8),
        _s("outro", 4, 0.3),
    )


def bridge_form() -> tuple[SectionSpec, ...]:
    """52 bars: intro, verse, chorus, verse, chorus, bridge, chorus, outro."""
    return (
        _s("intro", 4, 0.2),
        _s("verse", 8, 0.5),
        _s("chorus", 8, 0.9),
        _s("verse", 8, 0.5),
        _s("chorus", 8, 0.9),
        _s("bridge", 8, 0.6),
        _s("chorus", 4, 0.95),
        _s("outro", 4, 0.3),
    )


def kicks_on_one_and_three() -> tuple[SectionSpec, ...]:
    """28 bars where the kick plays on beats 1 and 3 only and no snare (energy 0.4..0.45)."""
    return (
        _s("intro", 4, 0.2),
        _s("verse", 8, 0.42),
        _s("chorus", 4, 0.44),
        _s("verse", 4, 0.42),
        _s("chorus", 4, 0.44),
        _s("outro", 4, 0.3),
    )


@dataclasses.dataclass(frozen=True)
class SuiteSong:
    """One song of the suite: a name that says what it tests, the spec, and the file type."""

    name: str
    spec: SongSpec
    fmt: str = "wav"


def _song(
    name: str,
    tempo: float,
    sections: tuple[SectionSpec, ...],
    key: str,
    seed: int,
    *,
    fmt: str = "wav",
    **options: Any,
) -> SuiteSong:
    spec = SongSpec(tempo=tempo, sections=sections, key=key, seed=seed, **options)
    return SuiteSong(name=name, spec=spec, fmt=fmt)


def suite() -> list[SuiteSong]:
    """The fixed synthetic suite: 32 songs, 60..180 BPM; every field is written out."""
    songs = [
        _song("060 quiet lead-in", 60, short_form(), "C major", 101, lead_in=2.0),
        _song("064 3/4", 64, waltz_form()[:4], "E minor", 102, beats_per_bar=3),
        _song("068 shuffle", 68, short_form(), "Bb major", 103, swing=0.25),
        _song("072 half-time", 72, short_form(0.55, 0.8), "G minor", 104, half_time=True),
        _song("076 3/4 swing", 76, waltz_form(), "D major", 105, beats_per_bar=3, swing=0.2),
        _song("080 kicks 1+3", 80, kicks_on_one_and_three(), "F minor", 106),
        _song("084 off-beat hats", 84, pop_form(), "A major", 107, offbeat_hats=True),
        _song("088 syncopation", 88, pop_form(), "C# minor", 108, syncopation=True),
        _song(
            "090 3/4 off-beat", 90, waltz_form(), "F major", 109, beats_per_bar=3, offbeat_hats=True
        ),
        _song("094 half-time", 94, pop_form(), "B minor", 110, half_time=True),
        _song("098 swing sync", 98, pop_form(), "Eb major", 111, swing=0.33, syncopation=True),
        _song("100 glide to 112", 100, pop_form(), "D minor", 112, tempo_end=112.0),
        _song("104 3/4 sync", 104, waltz_form(), "G major", 113, beats_per_bar=3, syncopation=True),
        _song("108 pad outro", 108, edm_form(), "A minor", 114),
        _song("112 ritardando", 112, pop_form(), "E major", 115, rubato_end=0.25),
        _song(
            "116 kicks 1+3 off-beat",
            116,
            kicks_on_one_and_three(),
            "F# minor",
            116,
            offbeat_hats=True,
        ),
        _song("120 edm off-beat", 120, edm_form(), "Ab major", 117, offbeat_hats=True),
        SuiteSong(name="124 demo song", spec=demo_song_spec(), fmt="mp3"),
        _song("128 edm lead-in", 128, edm_form(), "C minor", 119, lead_in=3.0),
        _song("132 3/4 fast waltz", 132, waltz_form(), "B major", 120, beats_per_bar=3),
        _song(
            "136 sync off-beat",
            136,
            pop_form(),
            "G# minor",
            121,
            syncopation=True,
            offbeat_hats=True,
        ),
        _song("140 half-time edm", 140, edm_form(0.3), "Eb minor", 122, half_time=True),
        _song("145 swing", 145, pop_form(), "F major", 123, swing=0.2),
        _song("150 bridge", 150, bridge_form(), "D major", 124, fmt="mp3"),
        _song(
            "155 3/4 off-beat",
            155,
            waltz_form(),
            "Db major",
            125,
            beats_per_bar=3,
            offbeat_hats=True,
        ),
        _song("160 glide to 148", 160, bridge_form(), "E minor", 126, tempo_end=148.0),
        _song("165 kicks 1+3", 165, kicks_on_one_and_three(), "Bb minor", 127),
        _song("170 edm sync", 170, edm_form(), "G major", 128, syncopation=True),
        _song("174 heavy swing", 174, bridge_form(), "C# minor", 129, swing=0.4, fmt="mp3"),
        _song("180 off-beat", 180, bridge_form(), "A major", 130, offbeat_hats=True),
        _song("180 3/4", 180, waltz_form(), "D minor", 131, beats_per_bar=3),
        _song(
            "096 ritardando lead-in",
            96,
            short_form(),
            "A minor",
            132,
            rubato_end=0.4,
            lead_in=1.5,
            fmt="mp3",
        ),
    ]
    for index, song in enumerate(songs):
        if song.fmt == "wav" and index % 4 == 3:
            songs[index] = dataclasses.replace(song, fmt="mp3")
    return songs


SUITE = suite()
QUICK = (0, 2, 4, 5, 9, 11, 13, 14, 20, 21, 28, 31)


def random_songs(count: int, seed: int = 2024) -> list[SuiteSong]:
    """Random songs (seeded, so the same every run): tempo, meter, rhythm, form and key."""
    rng = np.random.default_rng(seed)
    tonics = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    labels = ("verse", "pre-chorus", "chorus", "bridge", "breakdown")
    songs = []
    for i in range(count):
        tempo = float(np.round(rng.uniform(60.0, 180.0), 1))
        bpb = 3 if rng.random() < 0.3 else 4
        sections = [_s("intro", int(rng.choice([2, 4, 8])), float(rng.uniform(0.05, 0.35)))]
        for _ in range(int(rng.integers(3, 7))):
            label = str(rng.choice(labels))
            sections.append(_s(label, int(rng.choice([4, 8])), float(rng.uniform(0.35, 1.0))))
        sections.append(_s("outro", int(rng.choice([2, 4])), float(rng.uniform(0.05, 0.4))))
        seconds = sum(s.bars for s in sections) * bpb * 60.0 / tempo
        while seconds > 120.0 and len(sections) > 3:
            sections.pop(-2)
            seconds = sum(s.bars for s in sections) * bpb * 60.0 / tempo
        spec = SongSpec(
            tempo=tempo,
            beats_per_bar=bpb,
            sections=tuple(sections),
            key=f"{rng.choice(tonics)} {rng.choice(['major', 'minor'])}",
            swing=float(rng.choice([0.0, 0.0, 0.15, 0.3])),
            offbeat_hats=bool(rng.random() < 0.3),
            syncopation=bool(rng.random() < 0.3),
            half_time=bool(rng.random() < 0.1),
            lead_in=float(rng.choice([0.0, 0.0, 0.5, 2.0])),
            seed=1000 + i,
        )
        songs.append(SuiteSong(name=f"random {i:03d} {tempo:.0f}", spec=spec))
    return songs


# ------------------------------------------------------------------------------- scoring


def tempo_class(estimate: float, truth: float) -> str:
    """``ok`` within 4 %, a metrical ratio's name (an octave error), or ``other``."""
    if estimate <= 0 or truth <= 0:
        return "none"
    ratio = estimate / truth
    for name, value in (("ok", 1.0), ("x2", 2.0), ("x1/2", 0.5), ("x3/2", 1.5), ("x2/3", 2 / 3)):
        if abs(ratio / value - 1.0) <= TEMPO_TOLERANCE:
            return name
    return "other"


def key_class(estimate: str, truth: str) -> str:
    """exact, fifth, relative, parallel or other (the MIREX categories); none if unknown."""
    try:
        est_pc, est_mode, _ = parse_key(estimate)
    except Exception:  # "unknown" or a malformed name
        return "none"
    ref_pc, ref_mode, _ = parse_key(truth)
    if est_mode == ref_mode:
        if est_pc == ref_pc:
            return "exact"
        if (est_pc - ref_pc) % 12 in (5, 7):
            return "fifth"
        return "other"
    if est_pc == ref_pc:
        return "parallel"
    relative = (ref_pc + 9) % 12 if ref_mode == "major" else (ref_pc + 3) % 12
    return "relative" if est_pc == relative else "other"


def beat_scores(reference: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """(trimmed F, whole-clip F) at +-70 ms."""
    import mir_eval

    trimmed = mir_eval.beat.f_measure(
        mir_eval.beat.trim_beats(reference), mir_eval.beat.trim_beats(estimate)
    )
    whole = mir_eval.beat.f_measure(reference, estimate, f_measure_threshold=0.07)
    return float(trimmed), float(whole)


def tempo_of(beats: np.ndarray) -> float:
    return 60.0 / float(np.median(np.diff(beats))) if beats.size >= 2 else 0.0


def section_scores(truth: dict[str, Any], sections: Sequence[Any]) -> dict[str, float]:
    """Boundary P/R/F at 0.5 s and 3 s, pairwise label F and label accuracy."""
    import mir_eval

    ref = np.array([[s["start"], s["end"]] for s in truth["sections"]])
    ref_labels = [s["label"] for s in truth["sections"]]
    est = np.array([[s.start, s.end] for s in sections])
    est_labels = ["chorus" if s.label == "drop" else s.label for s in sections]
    out: dict[str, float] = {}
    for window in (0.5, 3.0):
        p, r, f = mir_eval.segment.detection(ref, est, window=window, trim=True)
        out[f"p{window:g}"], out[f"r{window:g}"], out[f"f{window:g}"] = p, r, f
    if len(ref_labels) < 2 or len(est_labels) < 1:
        return out
    est_adj, est_lab = mir_eval.util.adjust_intervals(
        est, est_labels, t_min=0.0, t_max=float(ref[-1, 1])
    )
    _, _, pairwise_f = mir_eval.segment.pairwise(ref, ref_labels, est_adj, est_lab, frame_size=0.1)
    out["pairwise"] = float(pairwise_f)
    grid = np.arange(0.0, float(ref[-1, 1]), 0.1)
    ref_at = np.array(ref_labels)[
        np.clip(np.searchsorted(ref[:, 1], grid, "right"), 0, len(ref) - 1)
    ]
    est_at = np.array(est_lab)[
        np.clip(np.searchsorted(est_adj[:, 1], grid, "right"), 0, len(est_adj) - 1)
    ]
    out["label_acc"] = float(np.mean(ref_at == est_at))
    return out


def stock_beats(path: Path) -> tuple[np.ndarray, float]:
    """librosa's stock pipeline: ``librosa.load`` at 22050 Hz mono, then ``beat_track``."""
    import librosa

    y, sr = librosa.load(str(path), sr=STOCK_SR, mono=True)
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    return np.asarray(beats, dtype=np.float64), float(np.atleast_1d(tempo)[0])


# ----------------------------------------------------------------------------- encoding


def write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write stereo float audio as 16-bit WAV or 160 kbit/s MP3 (by the suffix)."""
    if path.suffix == ".wav":
        import soundfile

        soundfile.write(str(path), audio.T, sample_rate, subtype="PCM_16")
        return path
    import av

    planar = np.ascontiguousarray(audio, dtype=np.float32)
    with av.open(str(path), mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=sample_rate, layout="stereo")
        stream.bit_rate = 160_000
        stream.format = "fltp"
        for start in range(0, planar.shape[1], 4096):
            chunk = np.ascontiguousarray(planar[:, start : start + 4096])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


# ------------------------------------------------------------------------------ workers


def _analyse_file(path: Path) -> Any:
    from engine.audio.analyzer import AudioAnalyzer

    return AudioAnalyzer().analyze(path)


def run_synthetic(song: SuiteSong) -> dict[str, Any]:
    """Synthesize, encode, analyse (ours and stock) and score one song (in a worker)."""
    from engine.audio.synth import synthesize_song

    logging.disable(logging.WARNING)
    synth = synthesize_song(song.spec)
    truth = synth.truth
    with tempfile.TemporaryDirectory(prefix="apex-bench-") as folder:
        path = write_audio(Path(folder) / f"song.{song.fmt}", synth.audio, synth.sample_rate)
        started = time.perf_counter()
        analysis = _analyse_file(path)
        ours_seconds = time.perf_counter() - started
        stock_times, stock_tempo = stock_beats(path)
    ref_beats = np.asarray(truth["beats"])
    ref_downbeats = np.asarray(truth["downbeats"])
    times = np.asarray(analysis.beat_times, dtype=np.float64)
    downbeats = np.asarray([b.time for b in analysis.downbeats], dtype=np.float64)
    true_tempo = tempo_of(ref_beats)
    f_trim, f_whole = beat_scores(ref_beats, times)
    s_trim, s_whole = beat_scores(ref_beats, stock_times)
    import mir_eval

    return {
        "name": song.name,
        "fmt": song.fmt,
        "tempo": true_tempo,
        "meter": song.spec.beats_per_bar,
        "ours": {
            "f_trim": f_trim,
            "f_whole": f_whole,
            "downbeat_f": float(mir_eval.beat.f_measure(ref_downbeats, downbeats)),
            "tempo": analysis.tempo,
            "tempo_class": tempo_class(tempo_of(times), true_tempo),
            "meter": analysis.beats_per_bar,
            "key": analysis.key,
            "key_confidence": analysis.key_confidence,
            "key_class": key_class(analysis.key, truth["key"]),
            "sections": section_scores(truth, analysis.sections),
            "labels": [s.label for s in analysis.sections],
            "seconds": ours_seconds,
        },
        "stock": {
            "f_trim": s_trim,
            "f_whole": s_whole,
            "tempo": stock_tempo,
            "tempo_class": tempo_class(tempo_of(stock_times), true_tempo),
        },
        "truth_key": truth["key"],
        "truth_labels": [s["label"] for s in truth["sections"]],
    }


def read_annotation(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Beat times and positions in the bar from a ``time<TAB>position`` file."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    times = np.array([float(r[0]) for r in rows])
    positions = np.array([int(float(r[1])) if len(r) > 1 else 0 for r in rows])
    return times, positions


def run_real(audio_path: Path) -> dict[str, Any]:
    import mir_eval

    logging.disable(logging.WARNING)
    ref_beats, positions = read_annotation(audio_path.with_suffix(".beats"))
    analysis = _analyse_file(audio_path)
    times = np.asarray(analysis.beat_times, dtype=np.float64)
    downbeats = np.asarray([b.time for b in analysis.downbeats], dtype=np.float64)
    stock_times, stock_tempo = stock_beats(audio_path)
    true_tempo = tempo_of(ref_beats)
    f_trim, f_whole = beat_scores(ref_beats, times)
    s_trim, s_whole = beat_scores(ref_beats, stock_times)
    return {
        "name": audio_path.name,
        "tempo": true_tempo,
        "meter": int(positions.max()) if positions.size else 0,
        "ours": {
            "f_trim": f_trim,
            "f_whole": f_whole,
            "downbeat_f": float(mir_eval.beat.f_measure(ref_beats[positions == 1], downbeats)),
            "tempo": analysis.tempo,
            "tempo_class": tempo_class(tempo_of(times), true_tempo),
            "meter": analysis.beats_per_bar,
        },
        "stock": {
            "f_trim": s_trim,
            "f_whole": s_whole,
            "tempo": stock_tempo,
            "tempo_class": tempo_class(tempo_of(stock_times), true_tempo),
        },
    }


# ------------------------------------------------------------------------------ printing


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def print_synthetic(title: str, rows: list[dict[str, Any]], *, targets: bool) -> dict[str, Any]:
    print(f"\n## {title} ({len(rows)} songs)\n")
    head = (
        f"{'song':<24} {'fmt':<3} {'bpm':>5} {'m':>1} | {'F trim':>6} {'whole':>5} {'dbF':>5} "
        f"{'tempo':>5} {'m':>1} | {'stock':>5} {'whole':>5} {'tempo':>5} | "
        f"{'HR.5':>4} {'HR3':>4} {'pwF':>4} {'lab':>4} | key"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        o, s, sec = r["ours"], r["stock"], r["ours"]["sections"]
        key = f"{o['key']} ({o['key_confidence']:.2f})"
        key += "" if o["key_class"] == "exact" else f" {o['key_class']}, truth {r['truth_key']}"
        print(
            f"{r['name']:<24.24} {r['fmt']:<3} {r['tempo']:5.1f} {r['meter']:1d} | "
            f"{o['f_trim']:6.3f} {o['f_whole']:5.3f} {o['downbeat_f']:5.3f} "
            f"{o['tempo_class']:>5} {o['meter']:1d} | "
            f"{s['f_trim']:5.3f} {s['f_whole']:5.3f} {s['tempo_class']:>5} | "
            f"{sec['f0.5']:4.2f} {sec['f3']:4.2f} {sec.get('pairwise', 0):4.2f} "
            f"{sec.get('label_acc', 0):4.2f} | {key}"
        )
    ours = [r["ours"] for r in rows]
    stock = [r["stock"] for r in rows]
    f_trim = _mean([o["f_trim"] for o in ours])
    octave = sum(o["tempo_class"] not in ("ok", "other") for o in ours)
    wrong_tempo = sum(o["tempo_class"] != "ok" for o in ours)
    downbeat = _mean([o["downbeat_f"] for o in ours])
    hit3 = _mean([o["sections"]["f3"] for o in ours])
    keys: dict[str, int] = {}
    for o in ours:
        keys[o["key_class"]] = keys.get(o["key_class"], 0) + 1
    print()
    print(
        f"beat F trimmed: ours {f_trim:.3f}, stock {_mean([s['f_trim'] for s in stock]):.3f}; "
        f"whole clip: ours {_mean([o['f_whole'] for o in ours]):.3f}, "
        f"stock {_mean([s['f_whole'] for s in stock]):.3f}; "
        f"songs below 0.95: ours {sum(o['f_trim'] < 0.95 for o in ours)}, "
        f"stock {sum(s['f_trim'] < 0.95 for s in stock)}"
    )
    print(
        f"tempo within 4 %: ours {len(ours) - wrong_tempo}/{len(ours)} ({octave} octave errors), "
        f"stock {sum(s['tempo_class'] == 'ok' for s in stock)}/{len(stock)} "
        f"({sum(s['tempo_class'] not in ('ok', 'other') for s in stock)} octave errors); "
        f"meter right: {sum(o['meter'] == r['meter'] for o, r in zip(ours, rows, strict=True))}"
        f"/{len(ours)}"
    )
    print(
        f"downbeat F: {downbeat:.3f}; sections: hit rate (F) 0.5 s "
        f"{_mean([o['sections']['f0.5'] for o in ours]):.3f}, 3 s {hit3:.3f} "
        f"(P {_mean([o['sections']['p3'] for o in ours]):.3f}, "
        f"R {_mean([o['sections']['r3'] for o in ours]):.3f}); "
        f"pairwise label F {_mean([o['sections'].get('pairwise', 0) for o in ours]):.3f}, "
        f"label accuracy {_mean([o['sections'].get('label_acc', 0) for o in ours]):.3f}"
    )
    print(
        "key: "
        + ", ".join(f"{k} {keys.get(k, 0)}" for k in ("exact", "fifth", "relative", "parallel"))
        + f", other {keys.get('other', 0) + keys.get('none', 0)} of {len(ours)}"
    )
    summary = {
        "f_trim": f_trim,
        "octave": octave,
        "downbeat": downbeat,
        "hit3": hit3,
        "key_exact": keys.get("exact", 0) / max(1, len(ours)),
    }
    if targets:
        print(
            f"TARGET beat F trimmed >= {TARGETS['synth_beat_f']}: {f_trim:.3f} "
            f"{_verdict(f_trim >= TARGETS['synth_beat_f'])}; no octave errors: {octave} "
            f"{_verdict(octave == 0)}"
        )
        print(
            f"TARGET downbeat F >= {TARGETS['synth_downbeat_f']}: {downbeat:.3f} "
            f"{_verdict(downbeat >= TARGETS['synth_downbeat_f'])}; section hit rate (3 s) >= "
            f"{TARGETS['synth_section_hit_3s']}: {hit3:.3f} "
            f"{_verdict(hit3 >= TARGETS['synth_section_hit_3s'])}"
        )
    return summary


def print_real(rows: list[dict[str, Any]]) -> None:
    print(f"\n## Real recordings in {EVAL_DIR.relative_to(ROOT.parent)} ({len(rows)} clips)\n")
    head = (
        f"{'clip':<28} {'bpm':>5} {'m':>1} | {'F trim':>6} {'whole':>5} {'dbF':>5} {'tempo':>5} "
        f"{'m':>1} | {'stock':>5} {'whole':>5} {'tempo':>5}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        o, s = r["ours"], r["stock"]
        print(
            f"{r['name']:<28.28} {r['tempo']:5.1f} {r['meter']:1d} | {o['f_trim']:6.3f} "
            f"{o['f_whole']:5.3f} {o['downbeat_f']:5.3f} {o['tempo_class']:>5} {o['meter']:1d} | "
            f"{s['f_trim']:5.3f} {s['f_whole']:5.3f} {s['tempo_class']:>5}"
        )
    ours = _mean([r["ours"]["f_trim"] for r in rows])
    stock = _mean([r["stock"]["f_trim"] for r in rows])
    print(
        f"\nbeat F trimmed: ours {ours:.3f}, stock {stock:.3f}; whole clip: ours "
        f"{_mean([r['ours']['f_whole'] for r in rows]):.3f}, stock "
        f"{_mean([r['stock']['f_whole'] for r in rows]):.3f}"
    )
    print(
        f"TARGET beat F trimmed >= {TARGETS['real_beat_f']}: {ours:.3f} "
        f"{_verdict(ours >= TARGETS['real_beat_f'])}"
    )


# -------------------------------------------------------------------------------- speed

_COLD_OURS = """
import time
started = time.perf_counter()
from engine.audio.analyzer import AudioAnalyzer
AudioAnalyzer().analyze({path!r})
print(time.perf_counter() - started)
"""
_COLD_STOCK = """
import time
started = time.perf_counter()
import librosa
y, sr = librosa.load({path!r}, sr=22050, mono=True)
librosa.beat.beat_track(y=y, sr=sr)
print(time.perf_counter() - started)
"""


def speed_song() -> SongSpec:
    """About 3 minutes: 92 bars at 122 BPM, intro, verses, choruses, a bridge, an outro."""
    form = [_s("intro", 8, 0.2)]
    for _ in range(2):
        form += [_s("verse", 16, 0.5), _s("pre-chorus", 4, 0.65), _s("chorus", 16, 0.9)]
    form += [_s("bridge", 8, 0.6), _s("outro", 4, 0.3)]
    return SongSpec(tempo=122.0, sections=tuple(form), key="G minor", seed=5)


def _cold(script: str, path: Path, *, empty_jit_cache: bool) -> tuple[float, float]:
    """(seconds inside the fresh process from its first import, process wall time)."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="apex-numba-") as cache:
        if empty_jit_cache:
            env["NUMBA_CACHE_DIR"] = cache
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", script.format(path=str(path))],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=True,
        )
        wall = time.perf_counter() - started
    return float(done.stdout.strip().splitlines()[-1]), wall


def _warm(call: Callable[[], Any], repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_speed(repeats: int) -> None:
    from engine.audio.analyzer import AudioAnalyzer
    from engine.audio.synth import synthesize_song

    spec = speed_song()
    song = synthesize_song(spec)
    print(
        f"\n## Speed: a {song.duration:.0f} s song ({spec.tempo:g} BPM, 16-bit WAV, 44.1 kHz), "
        f"{os.cpu_count()} CPUs\n"
    )
    with tempfile.TemporaryDirectory(prefix="apex-speed-") as folder:
        path = write_audio(Path(folder) / "three_minutes.wav", song.audio, song.sample_rate)
        rows = []
        for name, script, call in (
            ("ours: AudioAnalyzer().analyze()", _COLD_OURS, lambda: AudioAnalyzer().analyze(path)),
            ("stock: librosa.load + beat_track", _COLD_STOCK, lambda: stock_beats(path)),
        ):
            first, first_wall = _cold(script, path, empty_jit_cache=True)
            cold, cold_wall = _cold(script, path, empty_jit_cache=False)
            warm = _warm(call, repeats)
            rows.append((name, first, first_wall, cold, cold_wall, warm))
    head = f"{'pipeline':<34} {'cold, empty JIT cache':>22} {'cold':>14} {'warm (median)':>14}"
    print(head)
    print("-" * len(head))
    for name, first, first_wall, cold, cold_wall, warm in rows:
        print(
            f"{name:<34} {first:8.2f} s ({first_wall:5.2f} wall) {cold:5.2f} s ({cold_wall:4.1f})"
            f" {warm:11.2f} s"
        )
    ours = rows[0]
    print(
        "\n(cold: from the fresh process's first import to the result; wall: the whole "
        "subprocess, interpreter start included)"
    )
    print(
        f"TARGET warm <= {TARGETS['warm_seconds']:g} s: {ours[5]:.2f} s "
        f"{_verdict(ours[5] <= TARGETS['warm_seconds'])}; cold <= {TARGETS['cold_seconds']:g} s "
        f"(fresh process, JIT code as cached after the first use): {ours[3]:.2f} s "
        f"{_verdict(ours[3] <= TARGETS['cold_seconds'])}; first run after installing (empty "
        f"numba cache, all JIT compilation): {ours[1]:.2f} s "
        f"{_verdict(ours[1] <= TARGETS['cold_seconds'])} (stock: {rows[1][1]:.2f} s)"
    )


# --------------------------------------------------------------------------------- main


def _pool_map(function: Callable[[Any], dict[str, Any]], items: Sequence[Any], jobs: int) -> list:
    if jobs <= 1:
        return [function(item) for item in items]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(function, items))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 songs, one warm repeat")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--random", type=int, default=0, metavar="N", help="add N random songs")
    parser.add_argument("--only", default="", metavar="TEXT", help="suite songs named so")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed section")
    parts = parser.add_mutually_exclusive_group()
    parts.add_argument(
        "--synthetic-only", action="store_true", help="only the synthetic suite (no real, speed)"
    )
    parts.add_argument(
        "--real-only", action="store_true", help="only the real recordings (no suite, speed)"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    started = time.perf_counter()

    songs = [SUITE[i] for i in QUICK] if args.quick else list(SUITE)
    songs = [s for s in songs if args.only in s.name] if not args.real_only else []
    print(f"# Audio analysis accuracy: {len(songs)} synthetic songs, ours vs stock librosa")
    print(
        "columns: F trim / whole = beat F (70 ms) with beats before 5 s dropped / whole clip; "
        "dbF = downbeat F;\ntempo = ok (within 4 %) or the metrical error; m = beats per bar; "
        "stock = librosa.beat.beat_track on the same file;\nHR.5 / HR3 = section boundary "
        "hit rate (F) at 0.5 / 3 s; pwF = pairwise label F; lab = time with the truth's label"
    )
    report: dict[str, Any] = {}
    if songs:
        rows = _pool_map(run_synthetic, songs, args.jobs)
        report["synthetic"] = rows
        print_synthetic("Synthetic suite", rows, targets=not args.only)
    if args.random:
        rows = _pool_map(run_synthetic, random_songs(args.random), args.jobs)
        report["random"] = rows
        print_synthetic("Random synthetic songs (not scored against targets)", rows, targets=False)

    clips = sorted(p for p in EVAL_DIR.glob("*") if p.suffix in (".wav", ".flac", ".mp3"))
    clips = [p for p in clips if p.with_suffix(".beats").exists()]
    if not clips:
        print(f"\n## Real recordings: skipped, {EVAL_DIR} is absent or holds no annotated audio")
    elif not args.only and not args.synthetic_only:
        rows = _pool_map(run_real, clips, args.jobs)
        report["real"] = rows
        print_real(rows)
    if not (args.no_speed or args.only or args.synthetic_only or args.real_only):
        run_speed(1 if args.quick else 3)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
