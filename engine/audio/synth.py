"""Synthesize songs whose beats, bars, sections and key are known exactly.

The analysis code (beat tracking, downbeats, sections, key) needs test material with a
ground truth, and the app needs a demo song that ships with it.  This module makes both
with numpy and scipy only: drums, a bass line on the chord roots, a pad and electric-piano
chords over a diatonic progression, and a lead melody in the chorus-like sections.

Every note is placed on the beat grid the truth describes, so the truth is exact, not
estimated.  With ``swing`` only the off-beat eighths (and the sixteenths between) move;
the beats stay where the truth says.  Rendering is deterministic for a given ``seed``.

Three options make the traps that beat trackers fall into, with the truth still exact:
``half_time`` (kick on beat 1 and snare on beat 3 only, so the drums pulse at half the
tempo), ``tempo_end`` (the tempo glides from ``tempo`` to ``tempo_end`` over the song) and
``rubato_end`` (a ritardando over the last section).  Under a tempo change, beat ``b`` is at
``lead_in + integral of 60 / bpm(x) dx from 0 to b`` seconds, with ``bpm`` piecewise linear
in beats: a closed form (logarithms), not a numerical estimate.

Speed comes from rendering each distinct sound once (a drum hit, a bass note of a given
pitch and length, a chord voicing) and adding it at every offset where it is played;
repeated sections reuse the same renders, which also makes them sample-identical apart
from section-start crashes and fills, so section detectors can find the repetition.

Example
-------
>>> spec = SongSpec(tempo=120.0, sections=(SectionSpec(label="verse", bars=4, energy=0.5),))
>>> song = synthesize_song(spec)
>>> song.audio.shape[0], song.truth["tempo"], len(song.truth["downbeats"])
(2, 120.0, 4)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from engine.atomic_files import atomic_write_text
from engine.errors import ParameterError

__all__ = [
    "SECTION_LABELS",
    "SectionSpec",
    "SongSpec",
    "SynthSong",
    "demo_song_spec",
    "parse_key",
    "synthesize_song",
    "write_truth_json",
]

log = logging.getLogger(__name__)

SECTION_LABELS: tuple[str, ...] = (
    "intro",
    "verse",
    "pre-chorus",
    "chorus",
    "bridge",
    "breakdown",
    "outro",
)
"""The section labels a :class:`SectionSpec` may carry."""

_MAX_DURATION_S = 900.0
_TAIL_S = 1.5  # release and reverb after the last bar; part of the last section
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor
_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*([#b\u266f\u266d]?)\s+(major|minor)\s*$", re.IGNORECASE)

# Progressions as 0-based scale degrees, one chord per bar, by mode and section label.
_PROGRESSIONS: dict[str, dict[str, tuple[int, ...]]] = {
    "minor": {
        "intro": (0, 5, 2, 6),  # i VI III VII
        "verse": (0, 5, 2, 6),
        "pre-chorus": (3, 4, 5, 6),  # iv v VI VII
        "chorus": (5, 6, 0, 0),  # VI VII i i: lands on the tonic
        "bridge": (3, 5, 0, 6),  # iv VI i VII
        "breakdown": (5, 5, 0, 0),
        "outro": (0, 5, 2, 6),
    },
    "major": {
        "intro": (0, 4, 5, 3),  # I V vi IV
        "verse": (0, 4, 5, 3),
        "pre-chorus": (1, 3, 4, 4),  # ii IV V V
        "chorus": (3, 0, 4, 5),  # IV I V vi
        "bridge": (5, 3, 0, 4),  # vi IV I V
        "breakdown": (5, 5, 3, 3),
        "outro": (0, 4, 5, 3),
    },
}


# --------------------------------------------------------------------------- specs


def _check_number(name: str, value: Any, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(float(value))
        or not low <= float(value) <= high
    ):
        raise ParameterError(name, value, f"a number from {low:g} to {high:g}")
    return float(value)


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not low <= value <= high
    ):
        raise ParameterError(name, value, f"an integer from {low} to {high}")
    return int(value)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(name, value, "True or False")


def parse_key(key: str) -> tuple[int, str, str]:
    """Parse a key name such as ``"A minor"``, ``"F# major"`` or ``"Bb minor"``.

    Parameters
    ----------
    key : str
        Tonic letter, optional ``#`` or ``b``, then ``major`` or ``minor``.

    Returns
    -------
    tuple[int, str, str]
        The tonic's pitch class (0 = C), the mode (``"major"`` or ``"minor"``) and the
        key's canonical spelling (``"A minor"``).

    Raises
    ------
    ParameterError
        If ``key`` is not such a name.
    """
    match = _KEY_RE.match(key) if isinstance(key, str) else None
    if match is None:
        raise ParameterError("key", key, "a tonic and mode such as 'A minor' or 'F# major'")
    letter, accidental, mode = match.group(1).upper(), match.group(2), match.group(3).lower()
    accidental = {"\u266f": "#", "\u266d": "b"}.get(accidental, accidental)
    shift = {"#": 1, "b": -1}.get(accidental, 0)
    return (_PITCH_CLASSES[letter] + shift) % 12, mode, f"{letter}{accidental} {mode}"


@dataclass(frozen=True, kw_only=True)
class SectionSpec:
    """One section of a synthesized song.

    Attributes
    ----------
    label : str
        One of :data:`SECTION_LABELS`.  Sections with the same label play the same
        material (chords, bass, melody), so repetition is there to be found.
    bars : int
        Length in bars, 1 to 256.
    energy : float
        0 to 1: which instruments play and how loud and dense.  Roughly: below 0.15 a
        pad alone; hats from 0.15; bass from 0.3; kick from 0.4; snare and piano chords
        from 0.45; four-on-the-floor and eighth-note bass from 0.6; sixteenth hats, clap
        and a bright pad from 0.75; a lead melody in choruses and from 0.8.

    Raises
    ------
    ParameterError
        If a field is out of range.
    """

    label: str
    bars: int
    energy: float

    def __post_init__(self) -> None:
        if self.label not in SECTION_LABELS:
            raise ParameterError("label", self.label, f"one of {', '.join(SECTION_LABELS)}")
        _check_int("bars", self.bars, 1, 256)
        _check_number("energy", self.energy, 0.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class SongSpec:
    """What to synthesize.

    Attributes
    ----------
    tempo : float
        Beats per minute, 50 to 200.
    beats_per_bar : int
        2 to 7; the time signature is ``beats_per_bar/4``.
    sections : tuple[SectionSpec, ...]
        The song's sections in order, at least one (a list is accepted and stored as a
        tuple).
    key : str
        Tonic and mode, e.g. ``"A minor"`` or ``"Eb major"``.
    swing : float
        0 to 0.5: how late the off-beat eighth comes, as a fraction of half a beat.
    offbeat_hats : bool
        Loud open hats on the "and" of each beat with only faint hats on the beat, a
        trap for trackers that lock onto the loudest high-frequency onsets.
    syncopation : bool
        Kick and bass sometimes push ahead of the beat (on the "and" before it).
    lead_in : float
        0 to 30 seconds of quiet ambience before the first downbeat.
    sample_rate : int
        8000 to 192000 Hz.
    seed : int
        0 or more: picks the melody and the noise of the drums.
    half_time : bool
        Half-time drums: the kick on beat 1 and the snare (and clap) on beat 3 of each bar,
        nothing on 2 and 4, while hats, bass and keys keep the tempo: a trap for trackers
        that follow the kick and snare and report half the tempo.
    tempo_end : float or None
        50 to 200: the tempo glides linearly (in beats) from ``tempo`` on the first beat to
        this on the beat after the last; None (default) keeps the tempo steady.
    rubato_end : float
        0 to 0.5: a ritardando over the last section, which slows down linearly to
        ``1 - rubato_end`` of its starting tempo by its end; 0 (default) for none.

    The last three default to a song identical to one made before they existed, and
    :meth:`to_dict` leaves them out while they are at their defaults.

    Raises
    ------
    ParameterError
        If a field is out of range or the song would be longer than 15 minutes.
    """

    tempo: float
    beats_per_bar: int = 4
    sections: tuple[SectionSpec, ...]
    key: str = "A minor"
    swing: float = 0.0
    offbeat_hats: bool = False
    syncopation: bool = False
    lead_in: float = 0.0
    sample_rate: int = 44100
    seed: int = 0
    half_time: bool = False
    tempo_end: float | None = None
    rubato_end: float = 0.0

    def __post_init__(self) -> None:
        _check_number("tempo", self.tempo, 50.0, 200.0)
        _check_int("beats_per_bar", self.beats_per_bar, 2, 7)
        if isinstance(self.sections, list):
            object.__setattr__(self, "sections", tuple(self.sections))
        if (
            not isinstance(self.sections, tuple)
            or not self.sections
            or not all(isinstance(s, SectionSpec) for s in self.sections)
        ):
            raise ParameterError("sections", self.sections, "a non-empty tuple of SectionSpec")
        parse_key(self.key)
        _check_number("swing", self.swing, 0.0, 0.5)
        _check_bool("offbeat_hats", self.offbeat_hats)
        _check_bool("syncopation", self.syncopation)
        _check_number("lead_in", self.lead_in, 0.0, 30.0)
        _check_int("sample_rate", self.sample_rate, 8000, 192000)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_bool("half_time", self.half_time)
        if self.tempo_end is not None:
            _check_number("tempo_end", self.tempo_end, 50.0, 200.0)
        _check_number("rubato_end", self.rubato_end, 0.0, 0.5)
        if self.duration > _MAX_DURATION_S:
            raise ParameterError(
                "sections",
                f"{self.total_bars} bars ({self.duration:.0f} s)",
                f"a song of at most {_MAX_DURATION_S:.0f} s; use fewer bars or a faster tempo",
            )

    @property
    def seconds_per_beat(self) -> float:
        """Length of one beat in seconds."""
        return 60.0 / float(self.tempo)

    @property
    def total_bars(self) -> int:
        """Number of bars over all sections."""
        return sum(s.bars for s in self.sections)

    @property
    def duration(self) -> float:
        """Song length in seconds: lead-in, the bars, and a short release tail."""
        n_beats = self.total_bars * self.beats_per_bar
        tempo_map = _tempo_map(self)
        bars = n_beats * self.seconds_per_beat if tempo_map is None else tempo_map.seconds(n_beats)
        n = round((self.lead_in + bars + _TAIL_S) * self.sample_rate)
        return n / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-friendly types (the sections as a list of dicts).

        The tempo-change and half-time options are left out while at their defaults, so
        the dict of a song made before they existed is unchanged.
        """
        fields = dataclasses.asdict(self)
        fields["sections"] = list(fields["sections"])
        for name, default in _OPTION_DEFAULTS.items():
            if fields[name] == default:
                del fields[name]
        return fields


_OPTION_DEFAULTS: dict[str, Any] = {"half_time": False, "tempo_end": None, "rubato_end": 0.0}


@dataclass(frozen=True)
class _TempoMap:
    """Beat position to seconds for a tempo that is piecewise linear in beats.

    ``knots`` are ``(beat, bpm)`` pairs, increasing in beat; the tempo is constant before
    the first and after the last.  Within a segment from beat ``b0`` at ``a`` BPM to ``b1``
    at ``c`` BPM, ``bpm(x) = a + (c - a) * (x - b0) / (b1 - b0)`` and the time taken is the
    integral of ``60 / bpm``: ``60 * L / (c - a) * ln(bpm(x) / a)`` with ``L = b1 - b0``.
    """

    knots: tuple[tuple[float, float], ...]

    def seconds(self, beat: float) -> float:
        """Seconds from beat 0 to ``beat``."""
        first_beat, first_bpm = self.knots[0]
        if beat <= first_beat:
            return (beat - first_beat) * 60.0 / first_bpm
        total = 0.0
        for (b0, a), (b1, c) in zip(self.knots[:-1], self.knots[1:], strict=True):
            x = min(beat, b1) - b0
            length = b1 - b0
            if abs(c - a) < 1e-12:
                total += 60.0 * x / a
            else:
                total += 60.0 * length / (c - a) * math.log((a + (c - a) * x / length) / a)
            if beat <= b1:
                return total
        last_beat, last_bpm = self.knots[-1]
        return total + (beat - last_beat) * 60.0 / last_bpm


def _tempo_map(spec: SongSpec) -> _TempoMap | None:
    """The song's tempo map, or None for a steady tempo (the original, exact arithmetic)."""
    if spec.tempo_end is None and spec.rubato_end == 0.0:
        return None
    n_beats = float(spec.total_bars * spec.beats_per_bar)
    start, end = float(spec.tempo), float(spec.tempo if spec.tempo_end is None else spec.tempo_end)

    def glide(beat: float) -> float:
        return start + (end - start) * beat / n_beats

    knots = [(0.0, start)]
    if spec.rubato_end > 0.0:
        last_start = float((spec.total_bars - spec.sections[-1].bars) * spec.beats_per_bar)
        if last_start > 0.0:
            knots.append((last_start, glide(last_start)))
        knots.append((n_beats, glide(n_beats) * (1.0 - spec.rubato_end)))
    else:
        knots.append((n_beats, end))
    return _TempoMap(tuple(knots))


@dataclass(frozen=True)
class SynthSong:
    """A synthesized song and its ground truth.

    Attributes
    ----------
    audio : numpy.ndarray
        float32, shape ``(2, n_samples)``, peak at most 0.9.
    sample_rate : int
        Samples per second.
    truth : dict
        JSON-friendly ground truth: ``tempo`` (under a tempo change, that of the median
        beat interval), ``time_signature``, ``key``, ``duration``,
        ``beats``, ``downbeats``, ``beat_in_bar`` (1-based), ``sections`` (``start``,
        ``end``, ``label``, ``energy``, ``bars``; contiguous from 0 to ``duration``, so
        the first one includes the lead-in and the last one the release tail; the inner
        boundaries are downbeats), ``chords`` (``start``, ``end``, ``label`` such as
        ``"Am"``, one per bar) and ``spec`` (the :class:`SongSpec` as a dict).
    """

    audio: np.ndarray
    sample_rate: int
    truth: dict[str, Any]

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.audio.shape[1] / self.sample_rate


def demo_song_spec() -> SongSpec:
    """The demo song that ships in ``resources/demo/``.

    124 BPM in 4/4, A minor, 36 bars (about 72 s): intro 4, verse 8, chorus 8,
    breakdown 4, chorus 8, outro 4, after a half-second lead-in, so the first downbeat
    is not at time zero.

    Returns
    -------
    SongSpec
        The spec; :func:`synthesize_song` turns it into audio and truth.
    """
    return SongSpec(
        tempo=124.0,
        beats_per_bar=4,
        key="A minor",
        lead_in=0.5,
        seed=7,
        sections=(
            SectionSpec(label="intro", bars=4, energy=0.2),
            SectionSpec(label="verse", bars=8, energy=0.55),
            SectionSpec(label="chorus", bars=8, energy=0.9),
            SectionSpec(label="breakdown", bars=4, energy=0.35),
            SectionSpec(label="chorus", bars=8, energy=0.9),
            SectionSpec(label="outro", bars=4, energy=0.3),
        ),
    )


def write_truth_json(path: Path, truth: dict[str, Any]) -> None:
    """Write a song's truth as indented JSON, atomically.

    Parameters
    ----------
    path : Path
        Target file; its folder must exist.
    truth : dict
        :attr:`SynthSong.truth`.
    """
    atomic_write_text(path, json.dumps(truth, indent=2) + "\n")


# ------------------------------------------------------------------------ sounds


def _envelope(
    n: int,
    sr: int,
    *,
    attack: float,
    release: float,
    hold: int | None = None,
    decay: float | None = None,
) -> np.ndarray:
    """Attack ramp, optional exponential decay, and a raised-cosine release at the end.

    ``hold`` is where the release starts (default: ``n`` minus the release).
    """
    t = np.arange(n) / sr
    env = np.ones(n)
    if decay is not None:
        env = np.exp(-t / decay)
    n_att = max(1, int(attack * sr))
    env[:n_att] *= np.linspace(0.0, 1.0, n_att, endpoint=False)
    n_rel = max(1, int(release * sr))
    start = n - n_rel if hold is None else min(hold, n - 1)
    start = max(start, 0)
    ramp_len = n - start
    ramp = 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, n_rel)))
    if ramp_len <= n_rel:
        env[start:] *= ramp[:ramp_len]
    else:
        env[start : start + n_rel] *= ramp
        env[start + n_rel :] = 0.0
    return env


def _pan(mono: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan, -1 (left) to 1 (right), into shape (2, n)."""
    angle = (pan + 1.0) * math.pi / 4.0
    return np.stack([mono * math.cos(angle), mono * math.sin(angle)])


def _midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


class _Wavetables:
    """Band-limited saw-like single cycles, built once per harmonic count and tone."""

    size = 4096

    def __init__(self, sr: int) -> None:
        self.sr = sr
        self._tables: dict[tuple[int, float], np.ndarray] = {}

    def table(self, freq: float, *, max_harmonics: int, rolloff: float) -> np.ndarray:
        # Harmonics stop below 0.45 sr so nothing aliases.
        n_h = int(max(1, min(max_harmonics, 0.45 * self.sr // max(freq, 1.0))))
        key = (n_h, rolloff)
        if key not in self._tables:
            h = np.arange(1, n_h + 1)
            amps = np.exp(-(h - 1) / rolloff) / h
            phase = 2.0 * np.pi * np.arange(self.size) / self.size
            tab = np.sin(np.outer(phase, h)) @ amps
            tab /= np.max(np.abs(tab))
            self._tables[key] = np.append(tab, tab[0])  # guard for interpolation
        return self._tables[key]

    def play(self, table: np.ndarray, phase_cycles: np.ndarray) -> np.ndarray:
        pos = (phase_cycles % 1.0) * self.size
        i = pos.astype(np.int64)
        frac = pos - i
        return table[i] * (1.0 - frac) + table[i + 1] * frac


class _Sounds:
    """Renders each distinct sound once per song and keeps it for every later use."""

    def __init__(self, sr: int, seed: int) -> None:
        self.sr = sr
        self.seed = seed
        self.waves = _Wavetables(sr)
        self._cache: dict[tuple[Any, ...], np.ndarray] = {}

    def _rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])

    def get(self, key: tuple[Any, ...], make: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _filtered_noise(
        self, name: str, n: int, kind: str, cutoff: float | tuple[float, float], order: int = 4
    ) -> np.ndarray:
        noise = self._rng(name).standard_normal(n)
        cutoff = np.minimum(cutoff, 0.45 * self.sr)  # low sample rates: stay below Nyquist
        sos = signal.butter(order, cutoff, btype=kind, fs=self.sr, output="sos")
        return signal.sosfilt(sos, noise)

    def _metal(self, n: int) -> np.ndarray:
        # Six detuned square waves, the classic drum-machine cymbal source.
        t = np.arange(n) / self.sr
        freqs = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)
        return sum(np.sign(np.sin(2 * np.pi * f * 1.7 * t + i)) for i, f in enumerate(freqs))

    # drums ---------------------------------------------------------------------------

    def kick(self, tonic: int) -> np.ndarray:
        """A kick whose body settles on the key's tonic (41 to 78 Hz), as producers tune it."""

        def make() -> np.ndarray:
            n = int(0.45 * self.sr)
            t = np.arange(n) / self.sr
            low = _midi_hz(28 + (tonic - 4) % 12)  # E1 (41 Hz) to D#2 (78 Hz)
            freq = low + 100.0 * np.exp(-t / 0.016)
            body = np.sin(2 * np.pi * np.cumsum(freq) / self.sr)
            click = self._filtered_noise("kick-click", n, "lowpass", 3000.0) * np.exp(-t / 0.004)
            x = body * _envelope(n, self.sr, attack=0.001, release=0.03, decay=0.2)
            x = np.tanh(1.8 * (x + 0.15 * click / np.max(np.abs(click))))
            return _pan(x / np.max(np.abs(x)), 0.0)

        return self.get(("kick", tonic), make)

    def snare(self) -> np.ndarray:
        def make() -> np.ndarray:
            n = int(0.3 * self.sr)
            t = np.arange(n) / self.sr
            tone = (np.sin(2 * np.pi * 185 * t) + 0.5 * np.sin(2 * np.pi * 330 * t)) * np.exp(
                -t / 0.05
            )
            noise = self._filtered_noise("snare", n, "bandpass", (1200.0, 9000.0), 2)
            noise = noise / np.max(np.abs(noise)) * np.exp(-t / 0.11)
            x = (0.55 * tone + noise) * _envelope(n, self.sr, attack=0.0008, release=0.04)
            return _pan(x / np.max(np.abs(x)), 0.05)

        return self.get(("snare",), make)

    def clap(self) -> np.ndarray:
        def make() -> np.ndarray:
            n = int(0.3 * self.sr)
            t = np.arange(n) / self.sr
            noise = self._filtered_noise("clap", n, "bandpass", (900.0, 4000.0), 2)
            env = np.exp(-t / 0.09)
            for burst in (0.0, 0.011, 0.022):  # three hands, slightly apart
                env += np.where(t >= burst, np.exp(-np.clip(t - burst, 0, None) / 0.006), 0.0)
            x = noise * env * _envelope(n, self.sr, attack=0.0008, release=0.04)
            stereo = np.stack([x, np.roll(x, int(0.0007 * self.sr))])  # a little width
            return stereo / np.max(np.abs(stereo))

        return self.get(("clap",), make)

    def hat(self, *, open_: bool) -> np.ndarray:
        def make() -> np.ndarray:
            length, decay = (0.42, 0.16) if open_ else (0.09, 0.028)
            n = int(length * self.sr)
            src = 0.5 * self._metal(n) / 6.0 + self._rng("hat-noise").standard_normal(n) * 0.4
            sos = signal.butter(
                4,
                7000.0 if self.sr > 16000 else 0.4 * self.sr,
                btype="highpass",
                fs=self.sr,
                output="sos",
            )
            x = signal.sosfilt(sos, src)
            x = x * _envelope(n, self.sr, attack=0.0005, release=0.02, decay=decay)
            return _pan(x / np.max(np.abs(x)), -0.25 if open_ else 0.3)

        return self.get(("hat", open_), make)

    def crash(self) -> np.ndarray:
        def make() -> np.ndarray:
            n = int(2.2 * self.sr)
            sides = []
            for side in ("l", "r"):  # decorrelated sides: a wide cymbal
                src = 0.3 * self._metal(n) / 6.0 + self._rng(f"crash-{side}").standard_normal(n)
                sos = signal.butter(
                    2, min(3500.0, 0.4 * self.sr), btype="highpass", fs=self.sr, output="sos"
                )
                sides.append(signal.sosfilt(sos, src))
            x = np.stack(sides) * _envelope(n, self.sr, attack=0.002, release=0.3, decay=0.7)
            return x / np.max(np.abs(x))

        return self.get(("crash",), make)

    # pitched --------------------------------------------------------------------------

    def bass(self, midi: int, n_note: int) -> np.ndarray:
        def make() -> np.ndarray:
            n = n_note + int(0.02 * self.sr)
            t = np.arange(n) / self.sr
            f = _midi_hz(midi)
            phase = f * t
            bright = self.waves.play(self.waves.table(f, max_harmonics=40, rolloff=8.0), phase)
            dark = self.waves.play(self.waves.table(f, max_harmonics=6, rolloff=1.5), phase)
            sweep = np.exp(-t / 0.09)  # a filter envelope, by crossfading tones
            x = dark + (bright - dark) * sweep + 0.6 * np.sin(2 * np.pi * phase)
            x *= _envelope(n, self.sr, attack=0.004, release=0.02, hold=n_note)
            return _pan(x / np.max(np.abs(x)), 0.0)

        return self.get(("bass", midi, n_note), make)

    def pad(self, notes: tuple[int, ...], n_note: int, bright: bool) -> np.ndarray:
        def make() -> np.ndarray:
            n = n_note + int(0.25 * self.sr)
            t = np.arange(n) / self.sr
            out = np.zeros((2, n))
            for k, midi in enumerate(notes):
                f = _midi_hz(midi)
                tab = self.waves.table(
                    f, max_harmonics=24 if bright else 10, rolloff=5.0 if bright else 2.0
                )
                for side, cents in ((0, -7.0), (1, 7.0)):  # detuned per side: stereo width
                    det = f * 2.0 ** ((cents + 2.0 * k) / 1200.0)
                    out[side] += self.waves.play(tab, det * t + 0.37 * k + 0.5 * side)
            out *= _envelope(n, self.sr, attack=0.12, release=0.25, hold=n_note)
            return out / (len(notes) ** 0.5 * 1.5)

        return self.get(("pad", notes, n_note, bright), make)

    def keys(self, notes: tuple[int, ...], n_note: int) -> np.ndarray:
        """An FM electric piano: a bright, decaying tine over a sine."""

        def make() -> np.ndarray:
            n = n_note + int(0.04 * self.sr)
            t = np.arange(n) / self.sr
            index = 0.3 + 2.2 * np.exp(-t / 0.2)
            x = np.zeros(n)
            for midi in notes:
                f = _midi_hz(midi)
                x += np.sin(2 * np.pi * f * t + index * np.sin(2 * np.pi * f * t))
            x *= _envelope(n, self.sr, attack=0.003, release=0.04, hold=n_note, decay=0.8)
            return _pan(x / len(notes) ** 0.5 / 1.4, -0.2)

        return self.get(("keys", notes, n_note), make)

    def lead(self, midi: int, n_note: int) -> np.ndarray:
        def make() -> np.ndarray:
            n = n_note + int(0.06 * self.sr)
            t = np.arange(n) / self.sr
            f = _midi_hz(midi)
            vibrato = 1.0 + 0.004 * np.sin(2 * np.pi * 5.5 * t) * np.clip((t - 0.15) / 0.2, 0, 1)
            tab = self.waves.table(f, max_harmonics=16, rolloff=3.0)
            sides = []
            for cents in (-5.0, 5.0):
                phase = np.cumsum(f * 2.0 ** (cents / 1200.0) * vibrato) / self.sr
                sides.append(self.waves.play(tab, phase) + 0.5 * np.sin(2 * np.pi * phase))
            x = np.stack(sides) * _envelope(n, self.sr, attack=0.012, release=0.06, hold=n_note)
            return x / 1.5

        return self.get(("lead", midi, n_note), make)

    def ambience(self, n: int) -> np.ndarray:
        """Quiet filtered noise for the lead-in: air, no onsets."""
        sides = [
            self._filtered_noise(f"air-{s}", n, "bandpass", (300.0, min(3000.0, 0.4 * self.sr)), 2)
            for s in ("l", "r")
        ]
        x = np.stack(sides)
        return x / max(float(np.max(np.abs(x))), 1e-9)


# ------------------------------------------------------------------------- harmony


@dataclass(frozen=True)
class _Harmony:
    tonic: int  # pitch class
    mode: str
    scale: tuple[int, ...]

    def triad(self, degree: int) -> tuple[int, int, int]:
        """Pitch classes of the diatonic triad on a 0-based scale degree."""
        root, third, fifth = (
            (self.tonic + self.scale[(degree + step) % 7]) % 12 for step in (0, 2, 4)
        )
        return root, third, fifth

    def chord_name(self, degree: int) -> str:
        root, third, fifth = self.triad(degree)
        names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
        quality = {(4, 7): "", (3, 7): "m", (3, 6): "dim"}.get(
            ((third - root) % 12, (fifth - root) % 12), ""
        )
        return names[root] + quality

    def voice(self, degree: int, low: int) -> tuple[int, ...]:
        """The triad in close position inside the octave starting at MIDI note ``low``."""
        return tuple(sorted(low + (pc - low) % 12 for pc in self.triad(degree)))

    def root(self, degree: int, low: int) -> int:
        return low + (self.triad(degree)[0] - low) % 12

    def scale_notes(self, low: int, high: int) -> list[int]:
        return [m for m in range(low, high + 1) if (m - self.tonic) % 12 in self.scale]


def _melody(
    harmony: _Harmony, progression: Sequence[int], beats_per_bar: int, rng: np.random.Generator
) -> list[tuple[float, float, int]]:
    """A 4-bar phrase: ``(start_beat, length_beats, midi)`` relative to the phrase start.

    Bars 1 and 3 share a rhythm (the motif and its answer), bar 4 ends on a long chord
    tone, so the phrase sounds like a phrase.
    """
    eighths = 2 * beats_per_bar
    scale = harmony.scale_notes(64, 86)

    def rhythm(ending: bool) -> list[tuple[int, int]]:
        notes: list[tuple[int, int]] = []
        pos = 0
        while pos < eighths:
            left = eighths - pos
            if ending and pos >= eighths // 2:
                length = left
            else:
                length = int(rng.choice([1, 1, 2, 2, 2, 3, 4]))
                length = min(length, left)
            notes.append((pos, length))
            pos += length
        return notes

    motif = rhythm(False)
    rhythms = [motif, rhythm(False), motif, rhythm(True)]
    out: list[tuple[float, float, int]] = []
    prev = scale[len(scale) // 2]
    for bar, bar_rhythm in enumerate(rhythms):
        chord_pcs = harmony.triad(progression[bar % len(progression)])
        chord_tones = [m for m in scale if m % 12 in chord_pcs]
        for i, (pos, length) in enumerate(bar_rhythm):
            last = bar == 3 and i == len(bar_rhythm) - 1
            if pos % 2 == 0 or last:
                # Strong positions: a chord tone near the previous note.
                near = sorted(chord_tones, key=lambda m: (abs(m - prev), m))[:2]
                pitch = near[0] if last else int(rng.choice(near))
            else:
                idx = scale.index(prev) if prev in scale else len(scale) // 2
                idx = int(np.clip(idx + rng.choice([-1, 1]), 0, len(scale) - 1))
                pitch = scale[idx]
            gap = 0.1 if not (bar == 1 and i == len(bar_rhythm) - 1) else 0.5  # a breath
            out.append((bar * beats_per_bar + pos / 2, max(length / 2 - gap, 0.2), pitch))
            prev = pitch
    return out


# ------------------------------------------------------------------------ renderer


class _Song:
    """Mix buses and the beat grid of one rendering."""

    def __init__(self, spec: SongSpec) -> None:
        self.spec = spec
        self.sr = spec.sample_rate
        self.spb = spec.seconds_per_beat
        self.tempo_map = _tempo_map(spec)
        self.n = round(spec.duration * self.sr)
        self.buses = {name: np.zeros((2, self.n)) for name in ("drums", "music", "lead", "send")}
        self.kick_samples: list[int] = []

    def sample_at(self, beat: float) -> int:
        """Sample index of a position in beats from the first downbeat, with swing."""
        whole = math.floor(beat + 1e-9)
        frac = beat - whole
        s = self.spec.swing
        # Piecewise-linear warp inside the beat: the "and" moves, the beat stays.
        warped = frac * (1 + s) if frac <= 0.5 else 0.5 * (1 + s) + (frac - 0.5) * (1 - s)
        if self.tempo_map is not None:
            return round((self.spec.lead_in + self.tempo_map.seconds(whole + warped)) * self.sr)
        return round((self.spec.lead_in + (whole + warped) * self.spb) * self.sr)

    def beats_to_samples(self, beats: float, at: float = 0.0) -> int:
        """Length of ``beats`` beats in samples, starting at beat ``at`` (under a tempo map)."""
        if self.tempo_map is not None:
            seconds = self.tempo_map.seconds(at + beats) - self.tempo_map.seconds(at)
            return max(1, round(seconds * self.sr))
        return max(1, round(beats * self.spb * self.sr))

    def add(self, bus: str, sound: np.ndarray, start: int, gain: float, send: float = 0.0) -> None:
        s0 = max(start, 0)
        end = min(start + sound.shape[1], self.n)
        if end <= s0 or gain == 0.0:
            return
        chunk = sound[:, s0 - start : end - start]
        self.buses[bus][:, s0:end] += gain * chunk
        if send:
            self.buses["send"][:, s0:end] += gain * send * chunk


def _label_rng(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(label.encode()), 1])


def _render_section(
    song: _Song,
    sounds: _Sounds,
    harmony: _Harmony,
    *,
    index: int,
    first_bar: int,
    next_chord: int | None,
) -> None:
    """Add one section's notes to the song's buses."""
    spec = song.spec
    section = spec.sections[index]
    e = section.energy
    bpb = spec.beats_per_bar
    progression = _PROGRESSIONS[harmony.mode][section.label]
    level = 0.55 + 0.45 * e
    melody = (
        _melody(harmony, progression, bpb, _label_rng(spec.seed, section.label))
        if section.label == "chorus" or (e >= 0.8 and section.label != "outro")
        else []
    )
    backbeats = [b for b in range(1, bpb, 2)] + ([2] if bpb == 3 else [])
    comp = [1.0, 2.0] if bpb == 3 else [p / 2 for p in range(0, 2 * bpb, 3)]
    skip_bass_downbeat = False

    for j in range(section.bars):
        bar = first_bar + j
        b0 = bar * bpb
        degree = progression[j % len(progression)]
        last_bar = j + 1 == section.bars
        following = next_chord if last_bar else progression[(j + 1) % len(progression)]
        pushes = spec.syncopation and j % 2 == 1

        # Pad: always there; darker and quieter in the busy sections except the bright top.
        pad_notes = (harmony.root(degree, 45), *harmony.voice(degree, 57))
        bright = e >= 0.75
        song.add(
            "music",
            sounds.pad(pad_notes, song.beats_to_samples(bpb, b0), bright),
            song.sample_at(b0),
            (0.32 if e < 0.45 else 0.22) * level,
            send=0.5,
        )

        # Drums.
        if j == 0 and (index > 0 or e >= 0.3):
            song.add("drums", sounds.crash(), song.sample_at(b0), 0.35 * max(e, 0.5), send=0.2)
        if e >= 0.15:
            step = 0.25 if e >= 0.75 and not spec.offbeat_hats else 0.5
            for k in range(round(bpb / step)):
                pos = k * step
                on_beat = abs(pos - round(pos)) < 1e-9
                if spec.offbeat_hats:
                    if on_beat:
                        song.add(
                            "drums", sounds.hat(open_=False), song.sample_at(b0 + pos), 0.05 * level
                        )
                    else:
                        song.add(
                            "drums", sounds.hat(open_=True), song.sample_at(b0 + pos), 0.3 * level
                        )
                    continue
                is_and = abs(pos % 1.0 - 0.5) < 1e-9
                vel = 1.0 if on_beat else (0.75 if is_and else 0.5)
                base = 0.09 if e < 0.4 else 0.14
                song.add(
                    "drums", sounds.hat(open_=False), song.sample_at(b0 + pos), base * vel * level
                )
        if e >= 0.4:
            kicks = list(range(bpb)) if e >= 0.6 else list(range(0, bpb, 2))
            if spec.half_time:
                kicks = [0]
            if pushes:
                if 2 in kicks and e < 0.6:
                    kicks.remove(2)
                kicks.append(1.5)  # the "and" of two pushes the third beat ahead
            if spec.syncopation and j % 4 == 3:
                kicks.append(bpb - 0.5)
            for pos in kicks:
                start = song.sample_at(b0 + pos)
                song.add("drums", sounds.kick(harmony.tonic), start, 0.9 * level)
                song.kick_samples.append(start)
        if e >= 0.45:
            for pos in [2] if spec.half_time and bpb >= 3 else backbeats:
                vel = 0.7 if (bpb == 3 and pos == 2) else 1.0
                song.add(
                    "drums", sounds.snare(), song.sample_at(b0 + pos), 0.5 * vel * level, send=0.25
                )
                if e >= 0.75:
                    song.add(
                        "drums",
                        sounds.clap(),
                        song.sample_at(b0 + pos),
                        0.3 * vel * level,
                        send=0.3,
                    )
            bigger_next = index + 1 < len(spec.sections) and spec.sections[index + 1].energy > e
            if last_bar and bigger_next:  # a fill into a bigger section
                for k in range(4):
                    song.add(
                        "drums",
                        sounds.snare(),
                        song.sample_at(b0 + bpb - 1 + k / 4),
                        (0.2 + 0.08 * k) * level,
                        send=0.25,
                    )

        # Bass on the chord roots.
        if e >= 0.3:
            root = harmony.root(degree, 33)
            if e >= 0.6:
                notes = [(k / 2, 0.42, root + (12 if k % 4 == 3 else 0)) for k in range(2 * bpb)]
            else:
                notes = [(float(p), 1.8 if p + 2 <= bpb else 0.9, root) for p in range(0, bpb, 2)]
            if skip_bass_downbeat:
                notes = [nt for nt in notes if nt[0] > 0]
            skip_bass_downbeat = False
            if pushes and following is not None:
                # Anticipate the next chord's root on the last "and", tied over the bar line.
                notes = [nt for nt in notes if nt[0] < bpb - 0.5]
                notes = [(p, min(d, bpb - 0.5 - p - 0.05), m) for p, d, m in notes]
                notes.append((bpb - 0.5, 0.95, harmony.root(following, 33)))
                skip_bass_downbeat = True
            for pos, length, midi in notes:
                vel = 1.0 if abs(pos - round(pos)) < 1e-9 else 0.8
                song.add(
                    "music",
                    sounds.bass(midi, song.beats_to_samples(length, b0 + pos)),
                    song.sample_at(b0 + pos),
                    0.45 * vel * level,
                )

        # Electric-piano comping.
        if e >= 0.45:
            chord = harmony.voice(degree, 60)
            for pos in comp:
                length = min(0.9, bpb - pos) - 0.1
                song.add(
                    "music",
                    sounds.keys(chord, song.beats_to_samples(length, b0 + pos)),
                    song.sample_at(b0 + pos),
                    (0.16 if e >= 0.75 else 0.22) * level,
                    send=0.35,
                )

        # Lead melody, a 4-bar phrase repeated.
        phrase_bar = j % 4
        for start, length, midi in melody:
            if int(start // bpb) != phrase_bar:
                continue
            pos = start - phrase_bar * bpb
            song.add(
                "lead",
                sounds.lead(midi, song.beats_to_samples(length, b0 + pos)),
                song.sample_at(b0 + pos),
                0.2 * level,
                send=0.4,
            )


def _reverb_ir(sr: int, seed: int) -> np.ndarray:
    n = int(1.3 * sr)
    t = np.arange(n) / sr
    rng = np.random.default_rng([seed, 99])
    noise = rng.standard_normal((2, n))
    sos = signal.butter(2, min(6000.0, 0.4 * sr), btype="lowpass", fs=sr, output="sos")
    ir = signal.sosfilt(sos, noise, axis=1) * np.exp(-t / 0.28)
    pre = int(0.018 * sr)
    ir[:, :pre] = 0.0
    return ir / np.sqrt(np.sum(ir**2, axis=1, keepdims=True))


def _duck_envelope(n: int, sr: int, starts: list[int]) -> np.ndarray:
    """Sidechain-style dip after every kick: the pumping of dance music."""
    impulses = np.zeros(n)
    for s in starts:
        if 0 <= s < n:
            impulses[s] = 1.0
    release = math.exp(-1.0 / (0.14 * sr))
    dip = signal.lfilter([1.0], [1.0, -release], impulses)
    attack = math.exp(-1.0 / (0.004 * sr))
    dip = signal.lfilter([1.0 - attack], [1.0, -attack], np.minimum(dip, 1.0))
    return 1.0 - 0.45 * dip


def _master_gain(spec: SongSpec, song: _Song) -> np.ndarray | None:
    """A fade over a final outro: to a quarter by its last bar, then to silence."""
    last = spec.sections[-1]
    if last.label != "outro":
        return None
    outro_start = song.sample_at((spec.total_bars - last.bars) * spec.beats_per_bar)
    bars_end = song.sample_at(spec.total_bars * spec.beats_per_bar)
    gain = np.ones(song.n)
    gain[outro_start:bars_end] = np.linspace(1.0, 0.25, bars_end - outro_start)
    tail = song.n - bars_end
    gain[bars_end:] = 0.25 * 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, tail)))
    return gain


def synthesize_song(spec: SongSpec) -> SynthSong:
    """Render a song and its ground truth.

    Parameters
    ----------
    spec : SongSpec
        What to play.

    Returns
    -------
    SynthSong
        Stereo float32 audio (peak 0.89) and the truth; see :class:`SynthSong`.

    Examples
    --------
    >>> song = synthesize_song(demo_song_spec())
    >>> round(song.truth["tempo"]), song.truth["time_signature"]
    (124, '4/4')
    """
    started = time.perf_counter()
    tonic, mode, key_name = parse_key(spec.key)
    harmony = _Harmony(tonic, mode, _MAJOR_SCALE if mode == "major" else _MINOR_SCALE)
    song = _Song(spec)
    sounds = _Sounds(spec.sample_rate, spec.seed)
    sr = spec.sample_rate

    first_bar = 0
    for index, section in enumerate(spec.sections):
        if index + 1 < len(spec.sections):
            nxt = spec.sections[index + 1].label
            next_chord: int | None = _PROGRESSIONS[mode][nxt][0]
        else:
            next_chord = None
        _render_section(
            song, sounds, harmony, index=index, first_bar=first_bar, next_chord=next_chord
        )
        first_bar += section.bars

    if spec.lead_in > 0:
        n_in = song.sample_at(0)
        air = sounds.ambience(n_in) * np.sin(np.linspace(0.0, np.pi / 2, n_in)) ** 2
        song.add("music", air, 0, 0.03)

    duck = _duck_envelope(song.n, sr, song.kick_samples)
    wet = signal.oaconvolve(song.buses["send"], _reverb_ir(sr, spec.seed), axes=1)[:, : song.n]
    mix = song.buses["drums"] + song.buses["music"] * duck + song.buses["lead"] + 0.35 * wet
    sos = signal.butter(2, 25.0, btype="highpass", fs=sr, output="sos")
    mix = signal.sosfilt(sos, mix, axis=1)
    gain = _master_gain(spec, song)
    if gain is not None:
        mix *= gain
    fade = min(song.n, int(0.01 * sr))
    mix[:, song.n - fade :] *= np.linspace(1.0, 0.0, fade)
    peak = float(np.max(np.abs(mix)))
    audio = (mix * (0.89 / peak if peak > 0 else 1.0)).astype(np.float32)

    truth = _truth(spec, harmony, key_name, song)
    log.debug("synthesized %.1f s of audio in %.2f s", song.n / sr, time.perf_counter() - started)
    return SynthSong(audio=audio, sample_rate=sr, truth=truth)


def _truth(spec: SongSpec, harmony: _Harmony, key_name: str, song: _Song) -> dict[str, Any]:
    bpb = spec.beats_per_bar
    n_beats = spec.total_bars * bpb
    if song.tempo_map is None:
        beats = [spec.lead_in + i * song.spb for i in range(n_beats)]
    else:
        beats = [spec.lead_in + song.tempo_map.seconds(i) for i in range(n_beats)]
    duration = song.n / spec.sample_rate
    last_beat = (
        song.spb
        if song.tempo_map is None
        else song.tempo_map.seconds(n_beats) - song.tempo_map.seconds(n_beats - 1)
    )
    sections: list[dict[str, Any]] = []
    chords: list[dict[str, Any]] = []
    bar = 0
    for index, section in enumerate(spec.sections):
        start = 0.0 if index == 0 else beats[bar * bpb]
        end_bar = bar + section.bars
        end = duration if index == len(spec.sections) - 1 else beats[end_bar * bpb]
        sections.append(
            {
                "start": start,
                "end": end,
                "label": section.label,
                "energy": section.energy,
                "bars": section.bars,
            }
        )
        progression = _PROGRESSIONS[harmony.mode][section.label]
        for j in range(section.bars):
            b = bar + j
            chord_end = beats[(b + 1) * bpb] if b + 1 < spec.total_bars else beats[-1] + last_beat
            chords.append(
                {
                    "start": beats[b * bpb],
                    "end": chord_end,
                    "label": harmony.chord_name(progression[j % len(progression)]),
                }
            )
        bar = end_bar
    # Under a tempo change, the tempo of the median beat interval.
    tempo = float(spec.tempo) if song.tempo_map is None else 60.0 / float(np.median(np.diff(beats)))
    return {
        "tempo": tempo,
        "time_signature": f"{bpb}/4",
        "key": key_name,
        "duration": duration,
        "beats": beats,
        "downbeats": beats[::bpb],
        "beat_in_bar": [i % bpb + 1 for i in range(n_beats)],
        "sections": sections,
        "chords": chords,
        "spec": spec.to_dict(),
    }
