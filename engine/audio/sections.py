"""Musical sections (intro, verse, pre-chorus, chorus, bridge, breakdown, drop, outro).

A first version, built on bars:

1. Features per bar (the span between two downbeats): loudness (mean RMS, in dB for the
   boundary search), chroma (harmony), MFCC 1..12 (timbre) and spectral contrast (texture),
   each dimension standardised over the song.
2. A bar-by-bar self-similarity matrix (cosine) and a novelty curve from a Gaussian-tapered
   checkerboard kernel along its diagonal, ``min_bars`` bars on each side (Foote 2000),
   plus the change of mean loudness between the ``min_bars`` bars before and after.
3. Boundaries: local maxima of the novelty above its median and above a fifth of its
   maximum, taken greedily, strongest first, at least ``min_bars`` bars from each other and
   from the ends of the song.  Then, inside each section so found, its bars are compared
   on their own scale (features standardised over the section) and the strongest peak of
   that novelty is added while it stands clear of the novelty's floor, one at a time: a
   verse and a chorus of 4 bars each, between a much quieter intro and outro, are no
   longer merged.
4. Labels: sections whose bars repeat each other (high similarity along the aligned bar
   diagonals, and similar mean features) form groups that share a label.  The first section
   is the ``intro`` and the last the ``outro`` when quieter than the song's average; the
   loudest recurring group is the ``chorus``; other recurring groups are ``verse``; a
   one-off section is a ``verse`` before the first chorus and a ``bridge`` after it.  When
   nothing recurs, the loudest section above the song's average is the ``chorus``.  Then,
   from the energy around them:

   * ``breakdown``: a group (or a one-off) every occurrence of which is a dip, quieter than
     0.65 of both its neighbours (RMS), with at least one after the first chorus;
   * ``drop``: the chorus group, when its first occurrence comes straight after a breakdown
     and at least 1.6 times as loud (a one-off loud section after a breakdown, likewise);
   * ``pre-chorus``: a section right before a chorus and quieter than it, after a verse,
     that is either its own material or a louder continuation of the verse before it (a
     boundary was found between them, so they differ).

   Repeated material keeps one label, except that a pre-chorus found inside the verse group
   (the same chords played louder) is labelled where it sits.

Example
-------
>>> import numpy as np
>>> from engine.audio.sections import find_sections
>>> find_sections(
...     np.zeros(22050 * 4, dtype=np.float32), 22050,
...     downbeat_times=np.array([]), duration=4.0, beats_per_bar=4,
... )[0].label
'song'
"""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np

from engine.audio.dsp import stft_reduce
from engine.audio.features import (
    chroma_stft,
    contrast_bands,
    mel_filterbank,
    mfcc,
    power_to_db,
    resample,
    rms,
)
from engine.audio.types import AudioSection
from engine.errors import ParameterError

__all__ = ["find_sections"]

log = logging.getLogger(__name__)

_SR = 22050
_N_FFT = 2048
_HOP = 512
_CHROMA_N_FFT = 4096
_N_MFCC = 13
_N_MELS = 64
# Relative weight of each feature group in the bar similarity (per group, not per dim).
_WEIGHTS = {"chroma": 1.0, "mfcc": 1.0, "contrast": 0.5, "loudness": 0.75}
_ENERGY_NOVELTY_WEIGHT = 0.75
_PEAK_OF_MAX = 0.2
# A boundary found inside a section stands this far above the novelty's lower quartile
# (the insides of sections), on the 0..1 scale of the song's strongest boundary.
_REFINE_ABOVE_FLOOR = 0.15
# Sections whose aligned bars are this similar (cosine, standardised features) repeat.
_REPEAT_SIMILARITY = 0.6
_DIP = 0.65  # a breakdown is quieter than this fraction of both neighbours (RMS)
_DROP_RISE = 1.6  # a drop is at least this much louder than the breakdown before it


def _check_args(
    *,
    y: object,
    sr: object,
    downbeat_times: object,
    duration: object,
    beats_per_bar: object,
    min_bars: object,
) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
        shape = getattr(y, "shape", type(y).__name__)
        raise ParameterError("y", shape, "a mono 1-D float numpy array")
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or not 4000 <= sr <= 384000:
        raise ParameterError("sr", sr, "an integer sample rate in 4000..384000 Hz")
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int | float | np.integer | np.floating)
        or not math.isfinite(float(duration))
        or float(duration) <= 0.0
    ):
        raise ParameterError("duration", duration, "a positive number of seconds")
    if isinstance(beats_per_bar, bool) or not isinstance(beats_per_bar, int | np.integer):
        raise ParameterError("beats_per_bar", beats_per_bar, "an integer in 1..12")
    if not 1 <= int(beats_per_bar) <= 12:
        raise ParameterError("beats_per_bar", beats_per_bar, "an integer in 1..12")
    if isinstance(min_bars, bool) or not isinstance(min_bars, int | np.integer) or min_bars < 1:
        raise ParameterError("min_bars", min_bars, "an integer of at least 1")
    try:
        times = np.asarray(downbeat_times, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ParameterError(
            "downbeat_times", downbeat_times, "a 1-D array of times in seconds"
        ) from err
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0.0):
        raise ParameterError(
            "downbeat_times", downbeat_times, "finite, strictly increasing times in seconds"
        )
    return times


def _bar_means(features: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Mean of each feature row over frames [start, end) of every bar: (n_bars, n_features)."""
    cumulative = np.concatenate(
        [np.zeros((features.shape[0], 1)), np.cumsum(features, axis=1, dtype=np.float64)], axis=1
    )
    widths = np.maximum(1, ends - starts)
    return ((cumulative[:, ends] - cumulative[:, starts]) / widths).T


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 1e-9, sd, 1.0)


def _bar_features(
    y: np.ndarray, bar_edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weighted standardised features per bar, mean RMS per bar, loudness dB per bar)."""
    mel_fb = mel_filterbank(sr=_SR, n_fft=_N_FFT, n_mels=_N_MELS)

    def reduce(power: np.ndarray) -> np.ndarray:
        # Per-frame reductions, block by block: the song's spectrogram is never held whole.
        magnitude = np.sqrt(power)
        peak, valley = contrast_bands(magnitude, sr=_SR, n_fft=_N_FFT)
        # float32 throughout: peak and valley are means of float32 values, so exact in it.
        bands = np.vstack([peak, valley]).astype(np.float32)
        return np.vstack([rms(magnitude, frame_length=_N_FFT), mel_fb @ power, bands])

    reduced = stft_reduce(y, n_fft=_N_FFT, hop_length=_HOP, reduce=reduce)
    n_frames = reduced.shape[1]
    frame_edges = np.clip(np.rint(bar_edges * _SR / _HOP).astype(np.int64), 0, n_frames)
    starts, ends = frame_edges[:-1], np.maximum(frame_edges[1:], frame_edges[:-1] + 1)
    ends = np.minimum(ends, n_frames)
    starts = np.minimum(starts, ends - 1)

    frame_rms = reduced[:1]
    mel = reduced[1 : 1 + _N_MELS]
    peak, valley = np.split(reduced[1 + _N_MELS :].astype(np.float64), 2)
    # The dB floors (80 dB under the loudest value) are song-wide, so they come after.
    cepstrum = mfcc(power_to_db(mel, top_db=80.0), n_mfcc=_N_MFCC)[1:]
    del mel
    contrast = power_to_db(peak) - power_to_db(valley)
    chroma = stft_reduce(
        y,
        n_fft=_CHROMA_N_FFT,
        hop_length=_HOP,
        reduce=lambda block: chroma_stft(block, sr=_SR, n_fft=_CHROMA_N_FFT),
    )[:, :n_frames]

    bar_rms = _bar_means(frame_rms, starts, ends)[:, 0]
    loudness = 20.0 * np.log10(bar_rms + 1e-6)
    groups = {
        "chroma": _bar_means(chroma, starts, ends),
        "mfcc": _bar_means(cepstrum, starts, ends),
        "contrast": _bar_means(contrast, starts, ends),
        "loudness": loudness[:, None],
    }
    parts = []
    for name, values in groups.items():
        z = _standardise(values)
        # Each group counts by its weight, whatever its number of dimensions.
        parts.append(z * (_WEIGHTS[name] / math.sqrt(values.shape[1])))
    return np.concatenate(parts, axis=1), bar_rms, loudness


def _similarity(features: np.ndarray) -> np.ndarray:
    unit = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-9)
    return unit @ unit.T


def _novelty_parts(
    similarity: np.ndarray, loudness: np.ndarray, half: int
) -> tuple[np.ndarray, np.ndarray]:
    """Checkerboard novelty and loudness step (dB) before each bar, unscaled."""
    n = similarity.shape[0]
    offsets = np.arange(-half, half) + 0.5
    taper = np.exp(-0.5 * (offsets / (0.5 * half + 0.5)) ** 2)
    sign = np.sign(offsets)
    kernel = np.outer(sign, sign) * np.outer(taper, taper)
    padded = np.pad(similarity, half, mode="constant")
    padded_mask = np.pad(np.ones_like(similarity), half, mode="constant")
    novelty = np.zeros(n + 1)
    for i in range(1, n):
        block = padded[i : i + 2 * half, i : i + 2 * half]
        mask = padded_mask[i : i + 2 * half, i : i + 2 * half]
        weight = np.abs(kernel * mask).sum()
        novelty[i] = max(0.0, float((kernel * block).sum()) / max(weight, 1e-9))
    energy = np.zeros(n + 1)
    cumulative = np.concatenate([[0.0], np.cumsum(loudness)])
    for i in range(1, n):
        lo, hi = max(0, i - half), min(n, i + half)
        before = (cumulative[i] - cumulative[lo]) / (i - lo)
        after = (cumulative[hi] - cumulative[i]) / (hi - i)
        energy[i] = abs(after - before)
    return novelty, energy


def _novelty(similarity: np.ndarray, loudness: np.ndarray, half: int) -> np.ndarray:
    """Boundary strength before each bar (index i: between bar i-1 and bar i), 0..1."""
    novelty, energy = _novelty_parts(similarity, loudness, half)
    return _combine(novelty, energy, _scales(novelty, energy))


def _scales(novelty: np.ndarray, energy: np.ndarray) -> tuple[float, float]:
    """The normalisers of :func:`_combine`, from the novelty of the whole song."""
    harmonic = float(novelty.max()) + 1e-9
    combined = novelty / harmonic + _ENERGY_NOVELTY_WEIGHT * np.minimum(energy / 6.0, 1.5)
    return harmonic, float(combined.max()) + 1e-9


def _combine(novelty: np.ndarray, energy: np.ndarray, scales: tuple[float, float]) -> np.ndarray:
    # Loudness steps in dB, scaled so that 6 dB weighs like a clear harmonic change.
    combined = novelty / scales[0] + _ENERGY_NOVELTY_WEIGHT * np.minimum(energy / 6.0, 1.5)
    return combined / scales[1]


def _pick_boundaries(novelty: np.ndarray, n_bars: int, min_bars: int) -> list[int]:
    """Bar indices that start a new section (excluding 0), in increasing order."""
    inner = novelty[1:n_bars]
    if inner.size == 0:
        return []
    threshold = max(float(np.median(inner)), _PEAK_OF_MAX * float(inner.max()))
    # Peaks are looked for among the allowed positions only, so that a boundary a bar
    # too close to the end (a fade-out keeps the loudness falling) yields to its neighbour.
    allowed = np.full(n_bars + 2, -np.inf)
    allowed[min_bars + 1 : n_bars - min_bars + 2] = novelty[min_bars : n_bars - min_bars + 1]
    centre = allowed[1:-1]
    is_peak = (centre >= allowed[:-2]) & (centre >= allowed[2:]) & (centre >= threshold)
    chosen: list[int] = []
    for i in sorted(np.flatnonzero(is_peak).tolist(), key=lambda k: -novelty[k]):
        if all(abs(i - j) >= min_bars for j in chosen):
            chosen.append(i)
    return sorted(chosen)


def _refine_boundaries(
    features: np.ndarray,
    loudness: np.ndarray,
    novelty: np.ndarray,
    *,
    boundaries: list[int],
    min_bars: int,
) -> list[int]:
    """Add the boundaries that the strong ones hid, one at a time, strongest first.

    Inside each section found so far (at least ``2 * min_bars`` bars), the bars are compared
    on their own scale: every feature standardised over the section's bars (then given the
    song's weight again), the self-similarity and the novelty computed on them alone, on
    the 0..1 scale of the whole song's novelty.  The highest peak at least ``min_bars``
    bars from every boundary is added while it reaches a fifth of the song's strongest
    boundary (``_PEAK_OF_MAX``) and the novelty's lower quartile (the insides of sections)
    by ``_REFINE_ABOVE_FLOOR``.  A verse and a chorus differ less than the intro and the
    chorus, but they differ throughout; and the median threshold of
    :func:`_pick_boundaries` supposes boundaries are rare, while with sections as short as
    the kernel (4-bar verses and choruses of a slow song) most bars are near one.
    """
    similarity = _similarity(features)
    n = similarity.shape[0]
    inner = novelty[1:n]
    if inner.size == 0 or not boundaries:
        return boundaries
    floor = float(np.percentile(inner, 25))
    threshold = max(_PEAK_OF_MAX * float(inner.max()), floor + _REFINE_ABOVE_FLOOR)
    scales = _scales(*_novelty_parts(similarity, loudness, min_bars))
    scale = features.std(axis=0)
    chosen = list(boundaries)
    while True:
        fences = [0, *sorted(chosen), n]
        best, best_value = -1, threshold
        for a, b in itertools.pairwise(fences):
            if b - a < 2 * min_bars:
                continue
            # Inside one section, its bars are compared on their own scale: a verse and a
            # chorus differ less than the intro and the chorus, but they differ throughout.
            part = features[a:b]
            spread = part.std(axis=0)
            local = (part - part.mean(axis=0)) / np.where(spread > 1e-9, spread, 1.0) * scale
            novelty_in = _combine(
                *_novelty_parts(_similarity(local), loudness[a:b], min_bars), scales
            )
            for k in range(min_bars, b - a - min_bars + 1):
                value = float(novelty_in[k])
                if (
                    value >= best_value
                    and value >= novelty_in[k - 1]
                    and (k + 1 > b - a or value >= novelty_in[k + 1])
                ):
                    best, best_value = a + k, value
        if best < 0:
            return sorted(chosen)
        log.debug("section boundary at bar %d found inside a section (%.2f)", best, best_value)
        chosen.append(best)


def _section_similarity(similarity: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> float:
    """How well two bar ranges repeat each other: best mean of an aligned bar diagonal."""
    len_a, len_b = a[1] - a[0], b[1] - b[0]
    length = min(len_a, len_b)
    best = -1.0
    # Slide the shorter one along the longer one (bar by bar).
    for shift in range(abs(len_a - len_b) + 1):
        if len_a >= len_b:
            rows = np.arange(a[0] + shift, a[0] + shift + length)
            cols = np.arange(b[0], b[0] + length)
        else:
            rows = np.arange(a[0], a[0] + length)
            cols = np.arange(b[0] + shift, b[0] + shift + length)
        best = max(best, float(similarity[rows, cols].mean()))
    return best


def _pairwise(similarity: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Section-by-section repetition scores (see :func:`_section_similarity`)."""
    n = len(spans)
    pair = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            pair[i, j] = pair[j, i] = _section_similarity(similarity, spans[i], spans[j])
    return pair


def _group(pair: np.ndarray) -> list[int]:
    """Group index of each section: single-link over pairs that repeat each other."""
    n = pair.shape[0]
    group = list(range(n))

    def root(k: int) -> int:
        while group[k] != k:
            group[k] = group[group[k]]
            k = group[k]
        return k

    for i in range(n):
        for j in range(i + 1, n):
            if pair[i, j] >= _REPEAT_SIMILARITY:
                group[root(j)] = root(i)
    roots = [root(k) for k in range(n)]
    order = {r: idx for idx, r in enumerate(dict.fromkeys(roots))}
    return [order[r] for r in roots]


def _labels(groups: list[int], energy: np.ndarray, average: float) -> list[str]:
    n = len(groups)
    labels = [""] * n
    if n >= 2 and energy[0] < average:
        labels[0] = "intro"
    if n >= 2 and energy[-1] < average:
        labels[-1] = "outro"
    middle = [k for k in range(n) if not labels[k]]
    counts: dict[int, int] = {}
    for k in middle:
        counts[groups[k]] = counts.get(groups[k], 0) + 1
    recurring = [g for g, c in counts.items() if c >= 2]
    chorus_group: int | None = None
    if recurring:
        chorus_group = max(
            recurring, key=lambda g: float(np.mean([energy[k] for k in middle if groups[k] == g]))
        )
    elif middle:
        loudest = max(middle, key=lambda k: float(energy[k]))
        if energy[loudest] >= average:
            chorus_group = groups[loudest]
    first_chorus = next((k for k in middle if groups[k] == chorus_group), n)
    for k in middle:
        if groups[k] == chorus_group:
            labels[k] = "chorus"
        elif groups[k] in recurring or k < first_chorus:
            labels[k] = "verse"
        else:
            labels[k] = "bridge"
    _breakdowns_and_drops(labels, groups, energy, middle, first_chorus)
    _pre_choruses(labels, groups, energy)
    return labels


def _is_dip(k: int, energy: np.ndarray) -> bool:
    """A section quieter than ``_DIP`` of both its neighbours."""
    return 0 < k < energy.size - 1 and energy[k] < _DIP * min(energy[k - 1], energy[k + 1])


def _breakdowns_and_drops(
    labels: list[str], groups: list[int], energy: np.ndarray, middle: list[int], first: int
) -> None:
    """Relabel dips as ``breakdown`` and the loud entries after them as ``drop``, in place."""
    for group in dict.fromkeys(groups[k] for k in middle if labels[k] in ("verse", "bridge")):
        members = [k for k in middle if groups[k] == group]
        if all(_is_dip(k, energy) for k in members) and any(k > first for k in members):
            for k in members:
                labels[k] = "breakdown"
    for k in range(1, len(labels)):
        if labels[k - 1] != "breakdown" or energy[k] < _DROP_RISE * energy[k - 1]:
            continue
        if labels[k] == "chorus" and k == first:
            for j in range(len(labels)):
                if labels[j] == "chorus":
                    labels[j] = "drop"
        elif labels[k] == "bridge":
            labels[k] = "drop"


def _pre_choruses(labels: list[str], groups: list[int], energy: np.ndarray) -> None:
    """Relabel as ``pre-chorus`` the build-ups from a verse into a chorus, in place."""
    chorus = {"chorus", "drop"}
    candidates = [
        k
        for k in range(1, len(labels) - 1)
        if labels[k] in ("verse", "bridge")
        and labels[k + 1] in chorus
        and labels[k - 1] == "verse"
        and energy[k] < energy[k + 1]
    ]
    for k in candidates:
        own_material = groups[k] != groups[k - 1]
        louder_continuation = energy[k] > energy[k - 1]
        if own_material or louder_continuation:
            labels[k] = "pre-chorus"


def find_sections(
    y: np.ndarray,
    sr: int,
    *,
    downbeat_times: np.ndarray,
    duration: float,
    beats_per_bar: int,
    min_bars: int = 4,
) -> list[AudioSection]:
    """Split a song into labelled sections whose inner boundaries are downbeats.

    Parameters
    ----------
    y : numpy.ndarray
        Mono samples, float.
    sr : int
        Sample rate of ``y`` in Hz (analysed at 22050 Hz).
    downbeat_times : numpy.ndarray
        Strictly increasing downbeat times in seconds (from
        :func:`engine.audio.beats.track_beats`); may be empty.
    duration : float
        Length of the song in seconds: the sections cover exactly ``[0, duration]``.
    beats_per_bar : int
        The meter, 1..12.  This first version takes the bars from the downbeats alone and
        only checks and logs it.
    min_bars : int, optional
        Shortest section in bars (default 4).  A song of fewer than ``2 * min_bars`` bars
        is one section, labelled ``"song"`` with confidence 0.2.

    Returns
    -------
    list of AudioSection
        Contiguous sections from 0.0 to ``duration``; ``energy`` is the section's mean RMS
        over the loudest section's (0..1) and ``confidence`` (0..1) combines how clearly its
        start stands out and how clearly its label fits.  Without at least two downbeats
        (silence, no beat), one section labelled ``"song"`` with confidence 0.

    Raises
    ------
    ParameterError
        If an argument is malformed or out of range.
    """
    times = _check_args(
        y=y,
        sr=sr,
        downbeat_times=downbeat_times,
        duration=duration,
        beats_per_bar=beats_per_bar,
        min_bars=min_bars,
    )
    duration = float(duration)
    times = times[(times >= 0.0) & (times < duration)]
    if times.size < 2:
        return [AudioSection(start=0.0, end=duration, label="song", confidence=0.0, energy=0.0)]

    mono = np.ascontiguousarray(y, dtype=np.float32)
    if sr != _SR:
        mono = resample(mono, orig_sr=int(sr), target_sr=_SR)
    bar_length = float(np.median(np.diff(times)))
    last_end = min(duration, float(times[-1]) + bar_length)
    bar_edges = np.concatenate([times, [last_end]]) if last_end > times[-1] + 1e-3 else times
    n_bars = bar_edges.size - 1
    features, bar_rms, loudness = _bar_features(mono, bar_edges)

    if n_bars < 2 * min_bars:
        boundaries: list[int] = []
        novelty = np.zeros(n_bars + 1)
        similarity = np.ones((n_bars, n_bars))
    else:
        similarity = _similarity(features)
        novelty = _novelty(similarity, loudness, min_bars)
        boundaries = _pick_boundaries(novelty, n_bars, min_bars)
        boundaries = _refine_boundaries(
            features, loudness, novelty, boundaries=boundaries, min_bars=min_bars
        )
    edges = [0, *boundaries, n_bars]
    spans = list(itertools.pairwise(edges))

    section_rms = np.array([bar_rms[a:b].mean() for a, b in spans])
    energy = section_rms / (section_rms.max() + 1e-12)
    average = float(bar_rms.mean() / (section_rms.max() + 1e-12))
    if len(spans) == 1:
        # Too few bars to compare: one section, with little confidence in anything.
        whole = AudioSection(start=0.0, end=duration, label="song", confidence=0.2, energy=1.0)
        return [whole]
    pair = _pairwise(similarity, spans)
    groups = _group(pair)
    labels = _labels(groups, energy, average)

    sections: list[AudioSection] = []
    for k, (a, b) in enumerate(spans):
        boundary = 1.0 if k == 0 else float(novelty[a])
        others = np.delete(pair[k], k)
        mates = np.delete(np.asarray(groups) == groups[k], k)
        # A repeated section fits its label as well as it matches its best twin; a one-off
        # as well as it differs from everything else.
        fit = float(others[mates].max()) if mates.any() else 1.0 - float(others.max())
        sections.append(
            AudioSection(
                start=0.0 if k == 0 else float(bar_edges[a]),
                end=duration if k == len(spans) - 1 else float(bar_edges[b]),
                label=labels[k],
                confidence=float(np.clip(0.5 * boundary + 0.5 * np.clip(fit, 0.0, 1.0), 0, 1)),
                energy=float(np.clip(energy[k], 0.0, 1.0)),
            )
        )
    log.info(
        "sections (%d bars of %d beats): %s",
        n_bars,
        beats_per_bar,
        ", ".join(f"{s.label} {s.start:.1f}-{s.end:.1f}" for s in sections),
    )
    return sections
