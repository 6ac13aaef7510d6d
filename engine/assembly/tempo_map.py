"""Musical positions (``bar:beat[:fraction]``) and the tempo map that turns them into seconds.

The tempo map is the beat grid of one analysis of the song: every beat's time with its
bar and beat number, the meter and the song's length.  A position on a beat maps to
that beat's time exactly (no arithmetic, so a cut pinned to ``17:1`` lands on the
analysed downbeat to the last bit); a position between two beats is interpolated
linearly between them; a position before the first beat or after the last is
extrapolated with the first (last) beat period.  The inverse, :meth:`TempoMap.position`,
gives the position of any time, so an edit made in seconds can be re-timed too.

Frame numbers follow from seconds and the frame rate with :func:`frame_at`, the one
rounding rule the renderer also uses (frame ``k`` shows time ``k / fps``).
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from engine.errors import ParameterError

if TYPE_CHECKING:
    from engine.audio.types import AudioAnalysis

__all__ = ["FRACTION_DIGITS", "MusicalPosition", "TempoMap", "frame_at", "parse_fps"]

# Fractions of a beat are kept to 1e-6 beat (well under a microsecond at any tempo), so a
# position written to JSON and read back is the same position.
FRACTION_DIGITS = 6
_POSITION = re.compile(r"^\s*(-?\d+):(\d+)(?::(\d*\.?\d+(?:[eE]-?\d+)?))?\s*$")


def frame_at(seconds: float, fps: Fraction | float) -> int:
    """The frame that shows ``seconds``: ``round(seconds * fps)``.

    The renderer's :class:`~engine.assembly.timeline.Timeline` places cuts with this same
    rule, so a time in a timeline document and the rendered cut agree on the frame.
    """
    return round(seconds * float(fps))


def parse_fps(value: Any, *, name: str = "fps") -> Fraction:
    """A frame rate from ``30``, ``29.97``, ``"30000/1001"`` or a Fraction.

    ``29.97`` (and any float within 1e-4 of an NTSC rate) means ``30000/1001``.

    Raises
    ------
    ParameterError
        ``name`` is not a positive rate up to 1000 fps.
    """
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, str):
            rate = Fraction(value.strip())
        elif isinstance(value, Fraction | int):
            rate = Fraction(value)
        elif isinstance(value, float):
            rate = Fraction(value).limit_denominator(1001)
        else:
            raise TypeError
    except (TypeError, ValueError, ZeroDivisionError):
        raise ParameterError(name, value, "a frame rate such as 30, 25 or '30000/1001'") from None
    if not (0 < rate <= 1000):
        raise ParameterError(name, value, "a frame rate in (0, 1000] fps")
    return rate


@dataclass(frozen=True, order=True)
class MusicalPosition:
    """A point in the music: ``bar``, ``beat`` (1-based in the bar) and a fraction of a beat.

    Bar 0 is the pickup before the first downbeat; earlier points (extrapolated) have
    negative bars.  Written ``"bar:beat"`` or ``"bar:beat:fraction"``.

    Examples
    --------
    >>> MusicalPosition.parse("17:3:0.5")
    MusicalPosition(bar=17, beat=3, fraction=0.5)
    >>> str(MusicalPosition(5, 1))
    '5:1'
    """

    bar: int
    beat: int
    fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.beat < 1:
            raise ParameterError("beat", self.beat, "a beat counted from 1")
        if not (0.0 <= self.fraction < 1.0):
            raise ParameterError("fraction", self.fraction, "a fraction of a beat in [0, 1)")
        object.__setattr__(self, "fraction", round(float(self.fraction), FRACTION_DIGITS))

    @classmethod
    def parse(cls, text: str, *, name: str = "position") -> MusicalPosition:
        """Read ``"bar:beat"`` or ``"bar:beat:fraction"``.

        Raises
        ------
        ParameterError
            ``text`` is not such a position (the error names ``name``).
        """
        match = _POSITION.match(text) if isinstance(text, str) else None
        if match is None:
            raise ParameterError(name, text, "'bar:beat' or 'bar:beat:fraction', e.g. '17:1:0.5'")
        fraction = float(match.group(3)) if match.group(3) else 0.0
        if int(match.group(2)) < 1 or not 0.0 <= fraction < 1.0:
            raise ParameterError(name, text, "a beat counted from 1 and a fraction in [0, 1)")
        return cls(int(match.group(1)), int(match.group(2)), fraction)

    def __str__(self) -> str:
        if self.fraction == 0.0:
            return f"{self.bar}:{self.beat}"
        return f"{self.bar}:{self.beat}:{self.fraction:.{FRACTION_DIGITS}f}".rstrip("0")


@dataclass(frozen=True, eq=False)
class TempoMap:
    """The beat grid of one song: beat times with their bar and beat numbers.

    Parameters
    ----------
    beats : sequence of tuple of (float, int, int)
        Beat times in seconds (strictly increasing) with their 1-based bar and beat
        numbers, as :class:`~engine.audio.types.BeatMarker` has them.  At least two.
    beats_per_bar : int
        The meter's beats per bar (3 for 3/4, 4 for 4/4).
    duration : float
        The song's length in seconds (where the ``"end"`` of a timeline lies).
    tempo : float, optional
        The song's tempo in BPM, for reports; by default from the median beat period.
    measured : bool
        False for an even grid made up for a song without beats (no beat pulse on it).

    Raises
    ------
    ParameterError
        Fewer than two beats, times not increasing, bar/beat numbers out of step with
        the meter, or a non-positive duration.
    """

    beats: tuple[tuple[float, int, int], ...]
    beats_per_bar: int
    duration: float
    tempo: float = 0.0
    measured: bool = True

    def __post_init__(self) -> None:
        beats = tuple((float(t), int(bar), int(beat)) for t, bar, beat in self.beats)
        object.__setattr__(self, "beats", beats)
        if not isinstance(self.beats_per_bar, int) or not 1 <= self.beats_per_bar <= 32:
            raise ParameterError("beats_per_bar", self.beats_per_bar, "an integer in 1..32")
        if len(beats) < 2:
            raise ParameterError("beats", len(beats), "at least two beats")
        if not (math.isfinite(self.duration) and self.duration > 0):
            raise ParameterError("duration", self.duration, "a positive number of seconds")
        for i, (time, _bar, beat) in enumerate(beats):
            if not math.isfinite(time):
                raise ParameterError(f"beats[{i}]", beats[i], "a finite time in seconds")
            if not 1 <= beat <= self.beats_per_bar:
                raise ParameterError(f"beats[{i}]", beats[i], f"beat in 1..{self.beats_per_bar}")
            if i and time <= beats[i - 1][0]:
                raise ParameterError(f"beats[{i}]", beats[i], "times that increase")
            if i and self._count(beats[i]) != self._count(beats[i - 1]) + 1:
                raise ParameterError(
                    f"beats[{i}]", beats[i], f"the beat after {beats[i - 1][1:]} in the meter"
                )
        if not self.tempo:
            periods = sorted(b[0] - a[0] for a, b in itertools.pairwise(beats))
            object.__setattr__(self, "tempo", 60.0 / periods[len(periods) // 2])
        object.__setattr__(self, "_times", [b[0] for b in beats])
        object.__setattr__(self, "_index", {(b[1], b[2]): i for i, b in enumerate(beats)})

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_analysis(cls, analysis: AudioAnalysis) -> TempoMap:
        """The analysis' beat grid; a song without beats gets an even grid at its tempo.

        Without (at least two) beats the grid starts at 0 with the analysis' tempo (120
        BPM when there is none), so positions are still defined; they follow the clock,
        not the music.
        """
        per_bar = analysis.beats_per_bar
        beats = [(b.time, b.bar, b.beat) for b in analysis.beats]
        if len(beats) < 2:
            tempo = analysis.tempo if analysis.tempo > 0 else 120.0
            period = 60.0 / tempo
            count = max(2, math.ceil(analysis.duration / period) + 1)
            beats = [(i * period, i // per_bar + 1, i % per_bar + 1) for i in range(count)]
            return cls(tuple(beats), per_bar, analysis.duration, tempo, measured=False)
        return cls(tuple(beats), per_bar, analysis.duration, float(analysis.tempo))

    def scaled(self, factor: float) -> TempoMap:
        """The same grid played ``factor`` times as fast (1.1 = 10 % faster): times / factor."""
        if not factor > 0:
            raise ParameterError("factor", factor, "a positive speed factor")
        return TempoMap(
            tuple((t / factor, bar, beat) for t, bar, beat in self.beats),
            self.beats_per_bar,
            self.duration / factor,
            self.tempo * factor,
            self.measured,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TempoMap):
            return NotImplemented
        return (self.beats, self.beats_per_bar, self.duration, self.tempo, self.measured) == (
            other.beats,
            other.beats_per_bar,
            other.duration,
            other.tempo,
            other.measured,
        )

    def __hash__(self) -> int:
        return hash((self.beats, self.beats_per_bar, self.duration))

    # -- mapping -----------------------------------------------------------------------
    def _count(self, beat: tuple[float, int, int] | tuple[int, int]) -> int:
        """Beats since bar 0 beat 1 (the grid's linear coordinate)."""
        bar, number = beat[-2], beat[-1]
        return int(bar) * self.beats_per_bar + int(number) - 1

    @property
    def beat_times(self) -> tuple[float, ...]:
        return tuple(self._times)  # type: ignore[attr-defined]

    def beat_period_at(self, seconds: float) -> float:
        """Seconds per beat around ``seconds`` (the interval that holds it)."""
        times: list[float] = self._times  # type: ignore[attr-defined]
        i = min(max(bisect.bisect_right(times, seconds) - 1, 0), len(times) - 2)
        return times[i + 1] - times[i]

    def seconds(self, position: MusicalPosition) -> float:
        """The time of ``position``: exact on a beat, linear between beats, extrapolated
        with the end's beat period before the first beat or after the last."""
        times: list[float] = self._times  # type: ignore[attr-defined]
        index = self._index.get((position.bar, position.beat))  # type: ignore[attr-defined]
        if index is not None:
            if position.fraction == 0.0:
                return times[index]
            if index + 1 < len(times):
                return times[index] + position.fraction * (times[index + 1] - times[index])
            return times[index] + position.fraction * (times[-1] - times[-2])
        count = self._count((position.bar, position.beat))
        first, last = self.beats[0], self.beats[-1]
        if count < self._count(first):
            beats = count - self._count(first) + position.fraction
            return times[0] + beats * (times[1] - times[0])
        if count > self._count(last):
            beats = count - self._count(last) + position.fraction
            return times[-1] + beats * (times[-1] - times[-2])
        raise ParameterError(
            "position", str(position), f"a beat of the song's {self.beats_per_bar}-beat bars"
        )

    def position(self, seconds: float) -> MusicalPosition:
        """The musical position of ``seconds`` (inverse of :meth:`seconds`)."""
        times: list[float] = self._times  # type: ignore[attr-defined]
        if not math.isfinite(seconds):
            raise ParameterError("seconds", seconds, "a finite time")
        i = bisect.bisect_right(times, seconds) - 1
        if 0 <= i < len(times) - 1:
            span = times[i + 1] - times[i]
            return self._at_count(self._count(self.beats[i]), (seconds - times[i]) / span)
        if i < 0:
            beats = (seconds - times[0]) / (times[1] - times[0])
            base = self._count(self.beats[0])
        else:
            beats = (seconds - times[-1]) / (times[-1] - times[-2])
            base = self._count(self.beats[-1])
        whole = math.floor(beats)
        return self._at_count(base + whole, beats - whole)

    def _at_count(self, count: int, fraction: float) -> MusicalPosition:
        fraction = round(fraction, FRACTION_DIGITS)
        if fraction >= 1.0:  # rounding reached the next beat
            count, fraction = count + 1, 0.0
        bar, beat = divmod(count, self.beats_per_bar)
        return MusicalPosition(bar, beat + 1, max(0.0, fraction))

    # -- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "beats_per_bar": self.beats_per_bar,
            "duration": self.duration,
            "tempo": self.tempo,
            "measured": self.measured,
            "beats": [[t, bar, beat] for t, bar, beat in self.beats],
        }

    @classmethod
    def from_dict(cls, data: Any, *, path: str = "tempo_map") -> TempoMap:
        """Rebuild from :meth:`to_dict`; errors name ``path`` and the bad field.

        Raises
        ------
        ParameterError
            A missing or malformed field.
        """
        if not isinstance(data, dict):
            raise ParameterError(path, data, "an object with beats_per_bar, duration, beats")
        for key in ("beats_per_bar", "duration", "beats"):
            if key not in data:
                raise ParameterError(f"{path}.{key}", None, "a value (the field is missing)")
        beats = data["beats"]
        if not isinstance(beats, list):
            raise ParameterError(f"{path}.beats", beats, "a list of [time, bar, beat]")
        rows: list[tuple[float, int, int]] = []
        for i, row in enumerate(beats):
            ok = (
                isinstance(row, list | tuple)
                and len(row) == 3
                and isinstance(row[0], int | float)
                and not isinstance(row[0], bool)
                and all(isinstance(v, int) and not isinstance(v, bool) for v in row[1:])
            )
            if not ok:
                raise ParameterError(f"{path}.beats[{i}]", row, "[time, bar, beat] numbers")
            rows.append((float(row[0]), int(row[1]), int(row[2])))
        per_bar, duration = data["beats_per_bar"], data["duration"]
        if isinstance(per_bar, bool) or not isinstance(per_bar, int):
            raise ParameterError(f"{path}.beats_per_bar", per_bar, "an integer in 1..32")
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise ParameterError(f"{path}.duration", duration, "a positive number of seconds")
        tempo = data.get("tempo", 0.0)
        if isinstance(tempo, bool) or not isinstance(tempo, int | float) or tempo < 0:
            raise ParameterError(f"{path}.tempo", tempo, "a tempo in BPM (>= 0)")
        measured = data.get("measured", True)
        if not isinstance(measured, bool):
            raise ParameterError(f"{path}.measured", measured, "true or false")
        try:
            return cls(tuple(rows), per_bar, float(duration), float(tempo), measured)
        except ParameterError as err:
            raise ParameterError(f"{path}.{err.name}", err.value, err.allowed) from None
