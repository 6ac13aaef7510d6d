"""Beat, downbeat and meter tracking on a mono signal.

The tracker is built to avoid the two classic failures of a stock onset-autocorrelation
tracker such as :func:`librosa.beat.beat_track`:

* **off-beat lock**: on songs with loud off-beat hi-hats, the beat grid lands between the
  kicks and snares;
* **octave errors**: the tempo comes out doubled (eighth notes) or halved.

How it works, in order:

1. The signal is resampled to 22050 Hz and turned into onset envelopes (spectral flux, hop
   256 = 11.6 ms): the flux below 5 kHz, where beats are placed (above it live the
   hi-hats); a kick-band flux (20..150 Hz); a snare-band flux (1..5 kHz); and their maximum,
   each with its local floor removed, the *accent* envelope, which hi-hats hardly reach.
2. Silence and noise end the analysis early with an empty track and a warning: silence by a
   loudness gate, noise by the *pulse clarity* (see ``sensitivity``).
3. Tempo: peaks of the onset autocorrelation (averaged over 8 s windows) weighted by a
   log-normal prior around 120 BPM.
4. Beats: dynamic programming (:func:`librosa.beat.beat_track` with that tempo).
5. Metrical level, on medians of the accent envelope: if a grid tracked at twice the tempo
   has every other beat nearly as accented as the rest, the tempo doubles; if every other
   beat is clearly weaker, it halves (the strong ones stay); if the half-beat points carry
   more accent than the beats, the grid sat on the off-beats and is re-tracked on the
   accents alone.  How even is even enough rises with the tempo (the prior again), so a
   100 BPM song with busy eighths stays at 100 while a 170 BPM backbeat is not halved.
   The grid at twice the tempo must hold the slower grid's beats (a faster metrical level
   contains the slower one): where it drifted onto the off-beats for a stretch (off-beat
   hats outweighing kicks on 1 and 3), the slow beats are kept there and the gaps halved.
   A half-time groove (kick on 1, snare on 3) whose eighths are played through stays at
   the faster level when the prior prefers it clearly (the slower one at most 76 BPM):
   at the slower level its steady texture would be sixteenths.
6. Drumless stretches (intro, breakdown, outro) inherit the grid of the grooves around them
   (beats with kicks), since what is left there (off-beat hats, a pad) can pull the grid
   off the beat.
   The last 32 beats are then tracked again by a DP whose state holds the last interval,
   so that the tempo may drift (a few per cent a beat cost little, a jump of phase a lot);
   that grid replaces the steady one when it is clearly slower by the end, on onsets, and
   on more kick/bass than the steady beats: a ritardando ending.
7. Each beat moves to the strongest onset within +-30 ms (sub-frame, by parabolic
   interpolation), plus 10 ms for the lead of the flux peak over the heard onset.  Beats
   more than a quarter beat before the song's first event (an onset, or a pad swelling in)
   or after its last are dropped.
8. Meter and downbeats: for 3 and 4 beats per bar and every phase, the mean at candidate
   downbeats of the chord change from the bar before to the bar after (beat-synchronous
   chroma), the change from the previous beat, the kick, and minus the snare (z-scores);
   the best meter and phase win, 3/4 needing a 25 % better score.

Examples
--------
>>> import numpy as np
>>> from engine.audio.beats import track_beats
>>> track = track_beats(np.zeros(4 * 22050, dtype=np.float32), 22050)
>>> track.times.size, track.warnings
(0, ('no beat found: the audio is silent (or quieter than the sensitivity allows)',))
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import maximum_filter1d, median_filter

from engine.audio.dsp import dp_beats, stft_reduce
from engine.audio.features import (
    chroma_stft,
    fft_frequencies,
    mel_filterbank,
    mel_frequencies,
    power_to_db,
    resample,
)
from engine.errors import ParameterError

__all__ = ["BeatTrack", "track_beats"]

log = logging.getLogger(__name__)

ANALYSIS_SAMPLE_RATE = 22050
_HOP = 256
_N_FFT = 1024
_FPS = ANALYSIS_SAMPLE_RATE / _HOP
_CHROMA_N_FFT = 4096
_CHROMA_HOP = 1024
_N_MELS = 80
_LOW_HZ = (20.0, 150.0)
_SNARE_HZ = (1000.0, 5000.0)
_HIHAT_HZ = 5000.0
_MIN_BPM = 40.0
_MAX_BPM = 240.0
# Halving stops here and doubling stops at the second bound: beyond them a "beat" is a bar
# or an eighth note for nearly every listener.
_MIN_HALVED_BPM = 45.0
_MAX_DOUBLED_BPM = 200.0
_PRIOR_BPM = 120.0
_PRIOR_OCTAVES = 1.0
# Doubling threshold on (accent at half-beats / accent at beats) at 120 BPM after doubling,
# and how fast it grows per octave of the doubled tempo, faster above 180 BPM: the tempo
# prior in another form.  Tuned on synthetic songs (50..200 BPM) and the real excerpts in
# ../shared/eval/beats/, whose 100 BPM beat has eighths at 0.85 of its strength.
_DOUBLE_AT_120 = 0.58
_DOUBLE_PER_OCTAVE = 0.25
_DOUBLE_FAST_BPM = 180.0
_DOUBLE_PER_FAST_OCTAVE = 0.9
_SHIFT_ABOVE = 1.1  # half-beats this much stronger than the beats: the grid is off-beat
# A backbeat: every other beat differs from its neighbours in its balance of snare band to
# kick band by this much (median log ratio; measured 0.9..1.4 on synthetic pop at the true
# tempo and 1.2 on the real Hainsworth excerpt; 0.2 and less where only kicks play).  The
# level whose beats carry a backbeat is the beat, unless the tempo prior says otherwise.
_BACKBEAT = 0.6
# Without a backbeat, a kick on every other beat (1 and 3) does not halve the tempo while
# something (hats, bass, keys) plays between the kicks and the tempo stays under this: the
# prior favours the faster level there (it crosses at twice 85 BPM).
_KEEP_FAST_BPM = 170.0
_FILLED = 0.3  # the weak beats' onsets (all bands) at least this fraction of the strong ones'
# Twice a tempo this slow is favoured by the prior over it by so much that no backbeat
# vetoes the doubling: 56.6 BPM, where the log prior's difference reaches 0.6.
_BACKBEAT_VETO_MIN_BPM = 56.6
# A faster level stands for a half-time groove when the prior prefers it by this much (in
# octaves of distance from 120 BPM): the slower level is then at most 76.5 BPM.
_PRIOR_MARGIN_OCTAVES = 0.3
_CLEAR_HIT = 0.7  # of the median accent at the beats: a clear kick or snare hit
_KICK_PULSE = 0.5  # the weaker of the two alternate beats' median kicks, over the stronger's
_MIN_GRID_BEATS = 8  # fewer beats than this say nothing about the metrical level
_SNAP_SECONDS = 0.030
# A kick this fraction of the song's upper-quartile kick at the beats counts as a hit;
# four beats in a row with a hit at or right after each are a groove, whose grid the
# drumless stretches (intro, breakdown, outro) inherit.
_WEAK_BEAT = 0.3
_GROOVE_BEATS = 4
# The end of the song is tracked again from this many beats before the last, letting the
# tempo drift (a ritardando): each interval may differ from the one before at this cost
# per log ratio squared, and from the song's tempo at the second.
_END_BEATS = 32
_FOLLOWED_ONSETS = 0.5
_SLOWER = 1.08
_DRIFT_COST = 100.0
_TEMPO_PULL = 2.0
# Tracked beats this close (in beats) to the continued grid stay where they are.
_AGREE = 0.1
# Onsets above this (normalised, detrended all-band flux) mark where the music starts
# and ends, and beats go at most a quarter beat beyond them ...
_PRESENCE_ONSET = 0.15
# ... or where the loudness rises by 3 dB within 46 ms, within 30 dB of the loud parts.
_RISE_DB = 3.0
_RISE_FRAMES = 4
_LOUD_RANGE_DB = 30.0
# The flux peak sits a little before the onset a listener hears: the analysis window
# reaches the attack early, and soft attacks peak in flux before they peak in loudness.
# Measured: -3..-8 ms on synthetic drums, -5 and -30 ms on the two real excerpts.
_ONSET_DELAY_SECONDS = 0.010
# Downbeat evidence (z-scores, see _meter_and_phase); tuned on 100 synthetic songs and the
# two real excerpts.  4/4 is far more common, so 3/4 must score 25 % better.
_DOWNBEAT_WEIGHTS = {"bar_change": 1.0, "beat_change": 0.5, "kick": 1.0, "snare": 0.6}
_THREE_FOUR_HANDICAP = 0.8
_MIN_SECONDS = 3.0
_PULSE_WINDOW_SECONDS = 8.0

_SILENT = "no beat found: the audio is silent (or quieter than the sensitivity allows)"
_NO_PULSE = "no beat found: no steady pulse (noise, speech or free-time music?)"
_TOO_SHORT = "no beat found: the audio is shorter than 3 s"
_WEAK_PULSE = "weak pulse: the beats may be unreliable"
_WEAK_PULSE_MARGIN = 0.1


@dataclass(frozen=True)
class BeatTrack:
    """The beats of a song.

    Attributes
    ----------
    tempo : float
        Tempo in beats per minute (0.0 when no beat was found).
    times : numpy.ndarray
        Beat times in seconds, float64, strictly increasing.
    strengths : numpy.ndarray
        Onset strength at each beat, 0..1 over the song.
    beat_in_bar : numpy.ndarray
        1-based position of each beat in its bar (int); 1 is a downbeat.
    beats_per_bar : int
        3 or 4.
    warnings : tuple of str
        Why the track is empty or doubtful, for the user; empty when all went well.
    """

    tempo: float
    times: np.ndarray
    strengths: np.ndarray
    beat_in_bar: np.ndarray
    beats_per_bar: int
    warnings: tuple[str, ...] = ()

    @property
    def downbeat_times(self) -> np.ndarray:
        """Times of the beats that start a bar."""
        return self.times[self.beat_in_bar == 1]

    def __len__(self) -> int:
        return int(self.times.size)


@dataclass(frozen=True)
class _Envelopes:
    full: np.ndarray  # spectral flux below the hi-hats: beats are placed on it
    accent: np.ndarray  # max of kick-band and snare-band flux, detrended: no hi-hats
    low: np.ndarray  # kick band, detrended, normalised
    snare: np.ndarray  # snare band, detrended, normalised
    presence: np.ndarray  # all-band flux, detrended, normalised: where onsets are at all
    rms_db: np.ndarray  # frame loudness, dBFS
    chroma: np.ndarray  # (12, n_chroma_frames), one frame per _CHROMA_HOP samples


def _empty(beats_per_bar: int, warning: str) -> BeatTrack:
    log.info("beat tracking: %s", warning)
    return BeatTrack(
        tempo=0.0,
        times=np.zeros(0, dtype=np.float64),
        strengths=np.zeros(0, dtype=np.float64),
        beat_in_bar=np.zeros(0, dtype=np.int64),
        beats_per_bar=beats_per_bar,
        warnings=(warning,),
    )


def _check_args(y: object, sr: object, sensitivity: object, beats_per_bar: object) -> None:
    if not isinstance(y, np.ndarray) or y.ndim != 1:
        shape = getattr(y, "shape", type(y).__name__)
        raise ParameterError("y", shape, "a mono 1-D numpy array (mix the channels first)")
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError("y.dtype", y.dtype, "a floating-point array in -1..1")
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or not 4000 <= sr <= 384000:
        raise ParameterError("sr", sr, "an integer sample rate in 4000..384000 Hz")
    if (
        isinstance(sensitivity, bool)
        or not isinstance(sensitivity, int | float | np.integer | np.floating)
        or not 0.0 <= float(sensitivity) <= 1.0
    ):
        raise ParameterError("sensitivity", sensitivity, "a number in 0..1")
    if beats_per_bar is not None and (
        isinstance(beats_per_bar, bool) or beats_per_bar not in (3, 4)
    ):
        raise ParameterError("beats_per_bar", beats_per_bar, "None (detect), 3 or 4")


def _normalise(x: np.ndarray) -> np.ndarray:
    """Scale so that the loud onsets sit near 1 (99th percentile, or the maximum)."""
    scale = float(np.percentile(x, 99)) if x.size else 0.0
    if scale <= 1e-9:
        scale = float(x.max()) if x.size else 0.0
    return x / scale if scale > 1e-9 else np.zeros_like(x)


def _detrend(x: np.ndarray) -> np.ndarray:
    """Remove the local floor (1 s running median): dense textures then stop looking like onsets."""
    floor = median_filter(x, size=int(_FPS) | 1, mode="nearest")
    return np.maximum(0.0, x - floor)


def _rise(x: np.ndarray) -> np.ndarray:
    """Half-wave rectified frame-to-frame increase along the last axis, first frame 0."""
    return np.maximum(0.0, np.diff(x, axis=-1, prepend=x[..., :1]))


def _envelopes(y: np.ndarray) -> _Envelopes:
    sr = ANALYSIS_SAMPLE_RATE
    mel_fb = mel_filterbank(sr=sr, n_fft=_N_FFT, n_mels=_N_MELS, fmin=20.0, fmax=sr / 2)
    freqs = fft_frequencies(sr=sr, n_fft=_N_FFT)
    in_low = (freqs >= _LOW_HZ[0]) & (freqs < _LOW_HZ[1])
    mel_freqs = mel_frequencies(n_mels=_N_MELS, fmin=20.0, fmax=sr / 2)
    # Beats are placed on the flux below 5 kHz: above it live the hi-hats, which mark
    # eighths and off-beats as loudly as beats.  Onsets anywhere still mark where music is.
    below_hats = mel_freqs < _HIHAT_HZ
    in_snare = (mel_freqs >= _SNARE_HZ[0]) & (mel_freqs < _SNARE_HZ[1])
    last_frame: list[np.ndarray] = []

    def reduce(block: np.ndarray) -> np.ndarray:
        # Only per-frame reductions are kept (band fluxes, the kick-band bins, the total),
        # block by block: a long song's spectrogram and log-mel flux are never held whole.
        # The flux carries the previous block's last frame over the join.
        log_mel = power_to_db(mel_fb @ block, ref=1.0, amin=1e-10, top_db=None)
        before = last_frame[0] if last_frame else log_mel[:, :1]
        rises = np.maximum(0.0, np.diff(log_mel, axis=1, prepend=before))
        last_frame[:] = [log_mel[:, -1:]]
        return np.vstack(
            [
                rises[below_hats].mean(axis=0),
                rises.mean(axis=0),
                rises[in_snare].mean(axis=0),
                block[in_low],
                block.sum(axis=0),
            ]
        )

    reduced = stft_reduce(y, n_fft=_N_FFT, hop_length=_HOP, reduce=reduce)
    full, snare = reduced[0], reduced[2]
    presence = _normalise(_detrend(reduced[1]))
    low_power = reduced[3:-1]
    total_power = reduced[-1]
    # The kick band is a handful of FFT bins (mel filters are too wide there).  A gentle
    # log keeps a kick over a sustained bass line visible, which a log of the band energy
    # (or a dB scale) would flatten.
    low_mag = np.sqrt(low_power)
    peak = float(low_mag.max()) if low_mag.size else 0.0
    low = _rise(np.log1p(100.0 * low_mag / peak)).sum(axis=0) if peak > 0 else full * 0.0
    low_d = _normalise(_detrend(low))
    snare_d = _normalise(_detrend(snare))
    accent = np.maximum(low_d, snare_d)
    # Window power sum -> mean square of the signal (Parseval, Hann window).
    window_energy = float(np.sum(np.hanning(_N_FFT) ** 2))
    rms = np.sqrt(2.0 * total_power / (_N_FFT * window_energy))
    rms_db = 20.0 * np.log10(rms + 1e-12)
    chroma = stft_reduce(
        y,
        n_fft=_CHROMA_N_FFT,
        hop_length=_CHROMA_HOP,
        reduce=lambda block: chroma_stft(block, sr=sr, n_fft=_CHROMA_N_FFT, norm=None),
    )
    return _Envelopes(
        full=full,
        accent=accent,
        low=low_d,
        snare=snare_d,
        presence=presence,
        rms_db=rms_db,
        chroma=chroma,
    )


def _local_autocorrelation(
    x: np.ndarray, active: np.ndarray, max_lag: int
) -> tuple[np.ndarray, float, int]:
    """Autocorrelation of ``x`` in 8 s windows (half overlapping) where the song plays.

    Returns the mean normalised autocorrelation (lags 0..max_lag), the pulse clarity (median
    over windows of the highest autocorrelation between 40 and 240 BPM) and the window
    length in frames.  Local windows keep a drifting tempo from smearing the peaks.
    """
    width = min(x.size, round(_PULSE_WINDOW_SECONDS * _FPS))
    starts = np.arange(0, x.size - width + 1, max(1, width // 2))
    windows = sliding_window_view(x, width)[starts]
    playing = sliding_window_view(active, width)[starts].mean(axis=1) > 0.5
    if playing.any():
        windows = windows[playing]
    windows = windows - windows.mean(axis=1, keepdims=True)
    size = 1 << math.ceil(math.log2(2 * width))
    power = np.abs(np.fft.rfft(windows, size, axis=1)) ** 2
    ac = np.fft.irfft(power, size, axis=1)[:, : max_lag + 1]
    zero = ac[:, :1]
    ac = np.where(zero > 1e-12, ac / np.maximum(zero, 1e-12), 0.0)
    clarity = float(np.median(ac[:, int(60.0 * _FPS / _MAX_BPM) :].max(axis=1)))
    return ac.mean(axis=0), clarity, width


def _tempo_candidates(ac: np.ndarray) -> list[tuple[float, float]]:
    """(bpm, prior-weighted score) of autocorrelation peaks, best first."""
    lo = math.floor(60.0 * _FPS / _MAX_BPM)
    hi = min(math.ceil(60.0 * _FPS / _MIN_BPM), ac.size - 2)
    lags = np.arange(max(lo, 1), hi + 1)
    centre = ac[lags]
    peaks = lags[(centre > ac[lags - 1]) & (centre >= ac[lags + 1]) & (centre > 0)]
    out: list[tuple[float, float]] = []
    for lag in peaks:
        a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom < 0 else 0.0
        bpm = 60.0 * _FPS / (lag + offset)
        prior = math.exp(-0.5 * (math.log2(bpm / _PRIOR_BPM) / _PRIOR_OCTAVES) ** 2)
        out.append((bpm, float(b) * prior))
    out.sort(key=lambda item: -item[1])
    return out


def _dp_beats(envelope: np.ndarray, bpm: float, tightness: float) -> np.ndarray:
    frames = dp_beats(
        envelope, bpm=bpm, frame_rate=ANALYSIS_SAMPLE_RATE / _HOP, tightness=tightness
    )
    return np.asarray(frames, dtype=np.float64)


def _values_at(envelope: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Envelope maxima within +-2 frames (+-23 ms) of each (rounded) frame position."""
    if frames.size == 0:
        return np.zeros(0)
    idx = np.clip(np.rint(frames).astype(np.int64), 0, envelope.size - 1)
    return maximum_filter1d(envelope, size=5, mode="nearest")[idx]


def _midpoints(frames: np.ndarray) -> np.ndarray:
    return 0.5 * (frames[:-1] + frames[1:])


def _nest(slow: np.ndarray, fast: np.ndarray, accent: np.ndarray) -> np.ndarray:
    """The grid tracked at twice the tempo, made to hold the beats of the slower grid.

    A faster metrical level holds every beat of the slower one.  Where the grid tracked at
    the faster tempo (``fast``) misses a run of slow beats (none within a tenth of its
    beat) and those slow beats carry more accent (``accent``) than the fast ones beside
    them, the fast grid had drifted onto the off-beats there (off-beat hi-hats outweighing
    kicks on 1 and 3, say): in that stretch the slow beats are kept and each gap gets the
    tracked beat nearest its middle when that lies in the middle third of the gap (a pushed
    or laid-back rhythm), else the midpoint.
    """
    if slow.size < 3 or fast.size < 2:
        return fast
    _, off = _merge_grid(slow, fast, 0.5 * float(np.median(np.diff(slow))))
    if not off.any():
        return fast
    # Only stretches whose slow beats are clear hits (kicks, snares) are nested: in a quiet
    # pad-only outro neither grid has much to go on.
    hits = _values_at(accent, slow)
    clear = _CLEAR_HIT * float(np.median(hits))
    runs = np.flatnonzero(np.diff(np.concatenate([[0], off.astype(np.int8), [0]])))
    parts, cursor = [], -np.inf
    for first, stop in zip(runs[0::2], runs[1::2], strict=True):
        lo, hi = max(0, int(first) - 1), min(slow.size - 1, int(stop))
        segment = slow[lo : hi + 1]
        inside = (fast > segment[0]) & (fast < segment[-1])
        run_hits = hits[first:stop]
        if (
            not inside.any()
            or cursor >= segment[0]
            or float(np.median(run_hits)) < clear
            or float(np.mean(run_hits)) <= float(np.mean(_values_at(accent, fast[inside])))
        ):
            continue
        middle = _midpoints(segment)
        pos = np.clip(np.searchsorted(fast, middle), 1, fast.size - 1)
        left, right = fast[pos - 1], fast[pos]
        nearest = np.where(np.abs(left - middle) <= np.abs(right - middle), left, right)
        centred = np.abs(nearest - middle) <= np.diff(segment) / 6.0
        nested = np.empty(2 * segment.size - 1)
        nested[0::2], nested[1::2] = segment, np.where(centred, nearest, middle)
        # The ends of the stretch are slow beats the fast grid agrees with (kept as tracked),
        # unless the run reaches the end of the song.
        margin = 0.25 * float(np.median(np.diff(nested)))
        start = segment[0] - margin if off[lo] else segment[0] + margin
        end = segment[-1] + margin if off[hi] else segment[-1] - margin
        parts.append(fast[(fast > cursor) & (fast < start)])
        parts.append(nested[(nested > start) & (nested < end)])
        cursor = end
        log.debug("grid at double tempo off the slow beats %d..%d: nested", first, stop - 1)
    if not parts:
        return fast
    parts.append(fast[fast > cursor])
    return np.concatenate(parts)


def _interleave_ratio(first: np.ndarray, second: np.ndarray) -> float:
    """How evenly two interleaved grids share the accents: weaker / stronger, 0..1.

    Medians over the whole song, or over its busier half (the pairs whose louder member is
    above the median), whichever is more even: a half-time verse must not hide that the
    chorus plays on every beat.
    """
    n = min(first.size, second.size)
    a, b = first[:n], second[:n]

    def evenness(x: np.ndarray, y: np.ndarray) -> float:
        mx, my = float(np.median(x)), float(np.median(y))
        return min(mx, my) / (max(mx, my) + 1e-9)

    louder = np.maximum(a, b)
    busy = louder >= np.median(louder)
    return max(evenness(a, b), evenness(a[busy], b[busy]))


def _double_threshold(fast_bpm: float) -> float:
    """How strong half-beats must be (relative to beats) for ``fast_bpm`` to be the beat."""
    threshold = _DOUBLE_AT_120 + _DOUBLE_PER_OCTAVE * math.log2(fast_bpm / _PRIOR_BPM)
    if fast_bpm > _DOUBLE_FAST_BPM:
        threshold += _DOUBLE_PER_FAST_OCTAVE * math.log2(fast_bpm / _DOUBLE_FAST_BPM)
    return float(np.clip(threshold, 0.4, 0.97))


def _backbeat(env: _Envelopes, frames: np.ndarray, groups: tuple[int, ...] = (2,)) -> float:
    """How much the beats differ in their snare-to-kick balance by position (0: not at all).

    The balance is ``log((snare + 0.05) / (kick + 0.05))`` at each beat; its median at each
    position in groups of ``groups`` beats, and the largest spread of those medians: large
    where kick and snare take turns on the beats (every other beat with ``(2,)``; 2 and 3 of
    3/4 too with ``(2, 3, 4)``), small where the kick alone plays every beat.
    """
    if frames.size < _MIN_GRID_BEATS:
        return 0.0
    balance = np.log((_values_at(env.snare, frames) + 0.05) / (_values_at(env.low, frames) + 0.05))
    spread = 0.0
    for group in groups:
        n = balance.size - balance.size % group
        medians = np.median(balance[:n].reshape(-1, group), axis=0)
        spread = max(spread, float(medians.max() - medians.min()))
    return spread


def _kick_pulse(env: _Envelopes, frames: np.ndarray) -> bool:
    """Whether the kick plays on every one of these beats (alternate beats alike)."""
    kick = _values_at(env.low, frames)
    a, b = float(np.median(kick[0::2])), float(np.median(kick[1::2]))
    return max(a, b) >= 0.3 and min(a, b) >= _KICK_PULSE * max(a, b)


def _gaps_filled(env: _Envelopes, strong: np.ndarray) -> bool:
    """Whether something (hats included) plays between beats: the middle half of each gap.

    Compared with the onsets at the beats themselves, all bands (the presence envelope).
    """
    if strong.size < 3:
        return False
    lo = np.rint(strong[:-1] + 0.25 * np.diff(strong)).astype(np.int64)
    hi = np.rint(strong[1:] - 0.25 * np.diff(strong)).astype(np.int64)
    peak = maximum_filter1d(env.presence, size=5, mode="nearest")
    between = np.array([peak[a : max(a, b) + 1].max() for a, b in zip(lo, hi, strict=True)])
    at_beats = float(np.median(_values_at(env.presence, strong)))
    return float(np.median(between)) >= _FILLED * max(at_beats, 1e-6)


def _between(slow: np.ndarray, fast: np.ndarray) -> np.ndarray:
    """The beats of ``fast`` that are not (within a quarter of its beat) beats of ``slow``."""
    if slow.size == 0 or fast.size < 2:
        return fast
    pos = np.clip(np.searchsorted(slow, fast), 1, max(1, slow.size - 1))
    left = slow[np.minimum(pos - 1, slow.size - 1)]
    right = slow[np.minimum(pos, slow.size - 1)]
    distance = np.minimum(np.abs(fast - left), np.abs(fast - right))
    return fast[distance > 0.25 * float(np.median(np.diff(fast)))]


def _subdivided_fast_level(
    env: _Envelopes, slow: np.ndarray, fast: np.ndarray, slow_bpm: float
) -> bool:
    """Whether the faster of two nested levels is the beat of a half-time groove.

    True when the prior clearly prefers the faster level (it is nearer 120 BPM by
    :data:`_PRIOR_MARGIN_OCTAVES`, so the slower one is at most 76 BPM), the faster level's
    beats between the slow ones are played (onsets, all bands, at least :data:`_FILLED` of
    those at the slow beats: a swung eighth misses them) and the faster level is itself
    played through (:func:`_gaps_filled`): at the slower level the steady texture would be
    sixteenth notes, at the faster one eighths.  Kick on 1 and snare on 3 at 140 BPM is
    then 140 BPM, although kick and snare alternate on the beats at 70; a slow song whose
    subdivisions stop at the eighths (a 72 BPM ballad, half-time or not) keeps its tempo.
    """
    margin = abs(math.log2(slow_bpm / _PRIOR_BPM)) - abs(math.log2(2.0 * slow_bpm / _PRIOR_BPM))
    return bool(
        margin >= _PRIOR_MARGIN_OCTAVES
        and fast.size >= _MIN_GRID_BEATS
        and float(np.median(_values_at(env.presence, _between(slow, fast))))
        >= _FILLED * float(np.median(_values_at(env.presence, slow)))
        and _gaps_filled(env, fast)
    )


def _alternation(env: _Envelopes, frames: np.ndarray) -> tuple[float, bool]:
    """Evenness of every other beat's accents, and whether the even beats are stronger."""
    on_beat = _values_at(env.accent, frames)
    even, odd = on_beat[0::2], on_beat[1::2]
    return _interleave_ratio(even, odd), bool(np.median(even) >= np.median(odd))


def _track_grid(
    env: _Envelopes, dp_env: np.ndarray, accent_env: np.ndarray, bpm: float, tightness: float
) -> tuple[float, np.ndarray]:
    """Dynamic-programming beats at the metrical level the accents support.

    The tempo is doubled while a grid tracked at twice the tempo has accents on every other
    beat nearly as strong as on the rest, and halved while every other beat is clearly
    weaker; :func:`_double_threshold` says how even is even enough, at the faster tempo of
    the two, so the two tests agree.  Both look at grids placed by the tracker itself,
    never at midpoints, which a swung or pushed rhythm would miss.  Last, a grid whose
    half-beats carry more accent than its beats sat on the off-beats: it is re-tracked on
    the accents alone, which off-beat hi-hats do not reach.
    """
    frames = _dp_beats(dp_env, bpm, tightness)
    log.debug("tempo candidate %.1f BPM", bpm)
    while 2.0 * bpm <= _MAX_DOUBLED_BPM:
        fast = _nest(frames, _dp_beats(dp_env, 2.0 * bpm, tightness), env.accent)
        if fast.size < _MIN_GRID_BEATS:
            break
        evenness, _ = _alternation(env, fast)
        backbeat = _backbeat(env, frames)
        log.debug(
            "%.1f BPM: accent evenness at double tempo %.2f, backbeat %.2f", bpm, evenness, backbeat
        )
        half_time = _subdivided_fast_level(env, frames, fast, bpm)
        if half_time:
            log.debug("%.1f BPM: both levels played through, the faster preferred: doubling", bpm)
            bpm, frames = 2.0 * bpm, fast
            continue
        if evenness <= _double_threshold(2.0 * bpm) and not (
            # The mirror image of the halving test below: a kick on every beat, no backbeat,
            # something between the kicks, the faster level's own off-beats played too (a
            # level whose subdivision is silent is itself the subdivision), and a faster
            # level the prior prefers.
            2.0 * bpm <= _KEEP_FAST_BPM
            and _backbeat(env, frames, (2, 3, 4)) < _BACKBEAT
            and _kick_pulse(env, frames)
            and _gaps_filled(env, frames)
            and _gaps_filled(env, fast)
        ):
            break
        # Busy eighths (a bass line, say) are even enough, but kick and snare alternating on
        # these beats say that they are the beats, in all but the slowest songs.
        if backbeat >= _BACKBEAT and bpm >= _BACKBEAT_VETO_MIN_BPM:
            log.debug("%.1f BPM: backbeat at this tempo: not doubling", bpm)
            break
        log.debug("%.1f BPM: doubling", bpm)
        bpm, frames = 2.0 * bpm, fast
    while bpm / 2.0 >= _MIN_HALVED_BPM and frames.size >= _MIN_GRID_BEATS:
        evenness, even_stronger = _alternation(env, frames)
        if evenness >= _double_threshold(bpm):
            break
        strong = frames[0::2] if even_stronger else frames[1::2]
        if _subdivided_fast_level(env, strong, frames, bpm / 2.0):
            log.debug("%.1f BPM: a half-time groove played through: not halving", bpm)
            break
        backbeat = _backbeat(env, strong)
        if (
            backbeat < _BACKBEAT
            and bpm <= _KEEP_FAST_BPM
            and _kick_pulse(env, strong)
            and _gaps_filled(env, strong)
            and _gaps_filled(env, frames)
        ):
            # A kick on every other beat with no backbeat and the gaps played through at both
            # levels (kicks on 1 and 3 under running hats): the faster level stands, as the
            # prior says.
            log.debug("%.1f BPM: weak beats, no backbeat, gaps filled: not halving", bpm)
            break
        log.debug(
            "%.1f BPM: every other beat weaker (%.2f), backbeat %.2f: halving",
            bpm,
            evenness,
            backbeat,
        )
        bpm, frames = bpm / 2.0, strong
    for envelope in (accent_env, None):
        if frames.size < _MIN_GRID_BEATS:
            break
        beat = float(np.median(_values_at(env.accent, frames)))
        half = float(np.median(_values_at(env.accent, _midpoints(frames))))
        if half <= _SHIFT_ABOVE * beat:
            break
        log.debug("%.1f BPM: half-beats stronger (%.2f): off-beat grid", bpm, half / beat)
        # First re-track on the accents; if even that sits off-beat, take the midpoints.
        frames = _midpoints(frames) if envelope is None else _dp_beats(envelope, bpm, tightness)
    log.debug("metrical level: %.1f BPM", bpm)
    return bpm, frames


def _merge_grid(
    grid: np.ndarray, tracked: np.ndarray, period: float
) -> tuple[np.ndarray, np.ndarray]:
    """Grid positions, each replaced by a tracked beat within a tenth of a beat of it.

    Returns the positions and a mask of those that kept the grid's value.
    """
    if grid.size == 0 or tracked.size == 0:
        return grid, np.ones(grid.size, dtype=bool)
    pos = np.clip(np.searchsorted(tracked, grid), 1, max(1, tracked.size - 1))
    left = tracked[np.minimum(pos - 1, tracked.size - 1)]
    right = tracked[np.minimum(pos, tracked.size - 1)]
    closest = np.where(np.abs(grid - left) <= np.abs(grid - right), left, right)
    agree = np.abs(closest - grid) <= _AGREE * period
    return np.where(agree, closest, grid), ~agree


def _tempo_following(envelope: np.ndarray, anchor: int, period: float) -> np.ndarray:
    """Beats from ``anchor`` (a beat) to the end by a DP that lets the tempo drift.

    The state is a beat and the interval back to the one before it; moving from one
    interval to the next costs ``_DRIFT_COST * log(ratio) ** 2`` (a few per cent per beat,
    as in a ritardando, costs little; half a beat, a jump of phase, costs a lot), and
    intervals away from ``period`` cost ``_TEMPO_PULL * log(ratio) ** 2``.
    """
    seg = np.asarray(envelope[anchor:], dtype=np.float64)
    n = seg.size
    lags = np.arange(max(2, int(0.9 * period)), int(1.7 * period) + 1)
    if n <= lags[0]:
        return np.array([float(anchor)])
    seg = seg / (seg.std() + 1e-9)
    log_lags = np.log(lags)
    drift = _DRIFT_COST * (log_lags[:, None] - log_lags[None, :]) ** 2
    pull = _TEMPO_PULL * (log_lags - math.log(period)) ** 2
    score = np.full((n, lags.size), -np.inf)
    back = np.full((n, lags.size), -1, dtype=np.int64)
    score[0] = seg[0] - _DRIFT_COST * (log_lags - math.log(period)) ** 2
    for t in range(int(lags[0]), n):
        src = t - lags
        ok = src >= 0
        cand = score[src[ok]] - drift[ok]
        best = cand.argmax(axis=1)
        score[t, ok] = seg[t] + cand[np.arange(best.size), best] - pull[ok]
        back[t, ok] = best
    tail = max(0, n - int(lags[-1]))
    t, j = np.unravel_index(int(np.argmax(score[tail:])), score[tail:].shape)
    t += tail
    beats = [int(t)]
    while t > 0:
        k = int(back[t, j])
        t, j = int(t - lags[j]), k
        beats.append(t)
        if k < 0:
            break
    return anchor + np.asarray(beats[::-1], dtype=np.float64)


def _ritardando(
    frames: np.ndarray,
    continued: np.ndarray,
    onsets: np.ndarray,
    anchors: np.ndarray,
    period: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Let the last beats follow a slowing end of the song (a ritardando).

    From the beat ``_END_BEATS`` before the last one (or the first), the beats are tracked
    again by :func:`_tempo_following` on ``onsets``.  That grid is taken from there to the
    end when it leaves the steady one (a fifth of its beats a tenth of a beat away or
    more), its last beats are clearly slower than the song (``_SLOWER``), most of its beats
    land on onsets (a fading pad gives nothing to follow) and its beats carry more of
    ``anchors`` (the kick/bass band) than the steady grid's: a slowing band, not hi-hats
    between the beats.  Returns the frames and the mask of those continued by
    :func:`_regularise` (the followed beats are tracked ones).
    """
    if frames.size < _MIN_GRID_BEATS:
        return frames, continued
    start = max(0, frames.size - _END_BEATS)
    anchor = int(np.rint(frames[start]))
    follow = _tempo_following(onsets, anchor, period)
    after = frames > anchor + 0.5 * period
    theirs = follow[follow > anchor + 0.5 * period]
    if theirs.size == 0 or not after.any():
        return frames, continued
    _, apart = _merge_grid(theirs, frames[after], period)
    if (
        apart.mean() < 0.2
        # A ritardando: by the end the beats are clearly slower than the song's.
        or theirs.size < _END_BEATS // 4
        or float(np.median(np.diff(theirs[-_END_BEATS // 4 :]))) < _SLOWER * period
        # Most followed beats land on onsets (a pad fading out gives nothing to follow) ...
        or float(np.median(_values_at(onsets, theirs)))
        < _FOLLOWED_ONSETS * float(np.median(_values_at(onsets, frames)))
        # ... and on more of the kick/bass band than the steady grid's beats (not on hats).
        or float(np.mean(_values_at(anchors, theirs)))
        <= float(np.mean(_values_at(anchors, frames[after])))
    ):
        return frames, continued
    log.debug("the last %d beats follow a change of tempo", theirs.size)
    return (
        np.concatenate([frames[~after], theirs]),
        np.concatenate([continued[~after], np.zeros(theirs.size, dtype=bool)]),
    )


def _regularise(frames: np.ndarray, env: _Envelopes) -> tuple[np.ndarray, np.ndarray]:
    """Carry the grooves' grid through the drumless stretches of the song.

    Where no kick plays (an intro, a breakdown, an outro), the tracker follows whatever
    onsets remain (off-beat hi-hats, a pad) and can slip off the beat.  A *groove* is a
    run of at least four beats with a kick at or right after each.  Before the first
    groove and after the last, the grid is continued at the groove's own period (least
    squares over its first or last four bars); between two grooves, the span from the
    last kick of one to the first kick of the next is divided evenly.  Tracked beats within
    a tenth of a beat of the grid stay (they follow real onsets); the others are replaced.
    Returns the frames and a mask of the replaced ones.
    """
    untouched = (frames, np.zeros(frames.size, dtype=bool))
    if frames.size < 2 * _GROOVE_BEATS:
        return untouched
    kick = _values_at(env.low, frames)
    hit = kick >= _WEAK_BEAT * float(np.percentile(kick, 75))
    near = hit | np.concatenate([hit[1:], [False]])
    window = np.ones(_GROOVE_BEATS, dtype=np.int64)
    full_windows = np.convolve(near.astype(np.int64), window, "valid") == _GROOVE_BEATS
    in_groove = np.convolve(full_windows.astype(np.int64), window, "full") > 0
    # Grooves are anchored on kicks: their first and last hits.
    anchors = np.flatnonzero(in_groove & hit)
    if anchors.size < 2:
        return untouched
    breaks = np.flatnonzero(~in_groove[anchors[0] : anchors[-1] + 1]) + anchors[0]
    first, last = int(anchors[0]), int(anchors[-1])
    period = float(np.median(np.diff(frames)))

    parts: list[np.ndarray] = []
    replaced: list[np.ndarray] = []
    span = 4 * _GROOVE_BEATS
    head_index = np.arange(first, min(last + 1, first + span))
    head_period, head_anchor = np.polyfit(head_index - first, frames[head_index], 1)
    tail_index = np.arange(max(first, last - span + 1), last + 1)
    tail_period, tail_anchor = np.polyfit(tail_index - last, frames[tail_index], 1)
    if not (0.5 * period < head_period < 2 * period and 0.5 * period < tail_period < 2 * period):
        return untouched
    # Down to a quarter beat before frame 0: a beat at 0.0 s may be tracked a hair early.
    n_head = int((head_anchor + 0.25 * head_period) // head_period)
    head = head_anchor - head_period * np.arange(n_head, 0, -1)
    grid, new = _merge_grid(head, frames[:first], head_period)
    parts.append(grid)
    replaced.append(new)

    # Inside: every drumless gap between two anchors is divided evenly.
    cursor = first
    gap_starts = [int(anchors[anchors < b].max()) for b in breaks if (anchors < b).any()]
    gap_ends = [int(anchors[anchors > b].min()) for b in breaks if (anchors > b).any()]
    for start, end in sorted(set(zip(gap_starts, gap_ends, strict=False))):
        if start < cursor or end <= start + 1:
            continue
        parts.append(frames[cursor : start + 1])
        replaced.append(np.zeros(start + 1 - cursor, dtype=bool))
        count = max(1, round((frames[end] - frames[start]) / period))
        inner = frames[start] + (frames[end] - frames[start]) * np.arange(1, count) / count
        grid, new = _merge_grid(inner, frames[start + 1 : end], period)
        parts.append(grid)
        replaced.append(new)
        cursor = end
    parts.append(frames[cursor : last + 1])
    replaced.append(np.zeros(last + 1 - cursor, dtype=bool))

    n_tail = int((env.accent.size - 1 - tail_anchor) // tail_period)
    tail = tail_anchor + tail_period * np.arange(1, n_tail + 1)
    grid, new = _merge_grid(tail, frames[last + 1 :], tail_period)
    parts.append(grid)
    replaced.append(new)
    return np.concatenate(parts), np.concatenate(replaced)


def _events(env: _Envelopes, active: np.ndarray) -> np.ndarray:
    """Frames where something starts: a clear onset, or a loudness rise (a pad fading in).

    The second kind needs the sound to be within 30 dB of the song's loud parts, so that
    quiet ambience before the song is no event; a decaying tail has neither kind.
    """
    onset = active & (env.presence > _PRESENCE_ONSET)
    loud = env.rms_db >= np.percentile(env.rms_db, 95) - _LOUD_RANGE_DB
    lag = _RISE_FRAMES
    rise = np.zeros(env.rms_db.size, dtype=bool)
    rise[lag:] = env.rms_db[lag:] - env.rms_db[:-lag] >= _RISE_DB
    return onset | (rise & loud & active)


def _snap(frames: np.ndarray, envelope: np.ndarray) -> np.ndarray:
    """Move each beat to the strongest onset within +-30 ms, with sub-frame precision."""
    radius = max(1, round(_SNAP_SECONDS * _FPS))
    base = np.rint(frames).astype(np.int64)
    offsets = np.arange(-radius, radius + 1)
    idx = np.clip(base[:, None] + offsets[None, :], 0, envelope.size - 1)
    window = envelope[idx]
    best = window.argmax(axis=1)
    peak = window[np.arange(base.size), best]
    # Only snap where there is an onset; otherwise trust the grid.
    has_onset = peak > 0.5 * np.median(envelope[base]) + 1e-9
    centre = np.clip(base + offsets[best], 1, envelope.size - 2)
    a, b, c = envelope[centre - 1], envelope[centre], envelope[centre + 1]
    denom = a - 2.0 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(denom < 0, 0.5 * (a - c) / denom, 0.0)
    refined = centre + np.clip(frac, -0.5, 0.5)
    return np.where(has_onset, refined, frames)


def _beat_chroma(env: _Envelopes, frames: np.ndarray) -> np.ndarray:
    """Mean chroma from each beat to the next (the last to the end): (12, n_beats)."""
    per_chroma_frame = _CHROMA_HOP / _HOP
    n_chroma = env.chroma.shape[1]
    starts = np.clip(np.rint(frames / per_chroma_frame).astype(np.int64), 0, n_chroma - 1)
    bounds = np.maximum.accumulate(np.concatenate([starts, [n_chroma]]))
    cumulative = np.concatenate(
        [np.zeros((12, 1)), np.cumsum(env.chroma, axis=1, dtype=np.float64)], axis=1
    )
    widths = np.maximum(1, bounds[1:] - bounds[:-1])
    return (cumulative[:, bounds[1:]] - cumulative[:, bounds[:-1]]) / widths


def _chord_change(beat_chroma: np.ndarray, width: int) -> np.ndarray:
    """Cosine distance between the ``width`` beats before each beat and the ``width`` after."""
    n = beat_chroma.shape[1]
    cumulative = np.concatenate([np.zeros((12, 1)), np.cumsum(beat_chroma, axis=1)], axis=1)
    index = np.arange(n)
    before = cumulative[:, index] - cumulative[:, np.clip(index - width, 0, n)]
    after = cumulative[:, np.clip(index + width, 0, n)] - cumulative[:, index]
    before /= np.linalg.norm(before, axis=0) + 1e-9
    after /= np.linalg.norm(after, axis=0) + 1e-9
    change = 1.0 - np.sum(before * after, axis=0)
    change[0] = 0.0
    return change


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)


def _meter_and_phase(
    env: _Envelopes, frames: np.ndarray, beats_per_bar: int | None
) -> tuple[int, int]:
    """Beats per bar and the index (0..m-1) of the first downbeat.

    For each meter m and phase, the mean at the candidate downbeats of: the chord change
    between the bar before and the bar after (chroma over m beats each side, which peaks
    only where bars really start), the change from the previous beat, the kick, and minus
    the snare (backbeats are not downbeats), all as z-scores over the song.
    """
    n = frames.size
    beat_chroma = _beat_chroma(env, frames)
    common = (
        _DOWNBEAT_WEIGHTS["beat_change"] * _zscore(_chord_change(beat_chroma, 1))
        + _DOWNBEAT_WEIGHTS["kick"] * _zscore(_values_at(env.low, frames))
        - _DOWNBEAT_WEIGHTS["snare"] * _zscore(_values_at(env.snare, frames))
    )
    best: tuple[float, int, int] = (-math.inf, 4, 0)
    for meter in (4, 3) if beats_per_bar is None else (beats_per_bar,):
        usable = n - n % meter
        if usable < meter:
            continue
        bar_change = _zscore(_chord_change(beat_chroma, meter))
        feature = _DOWNBEAT_WEIGHTS["bar_change"] * bar_change + common
        profile = feature[:usable].reshape(-1, meter).mean(axis=0)
        phase = int(profile.argmax())
        score = float(profile[phase] - profile.mean())
        if meter == 3:
            score *= _THREE_FOUR_HANDICAP
        log.debug("meter %d: profile %s, score %.3f", meter, np.round(profile, 2), score)
        if score > best[0]:
            best = (score, meter, phase)
    return best[1], best[2]


def track_beats(
    y: np.ndarray,
    sr: int,
    *,
    sensitivity: float = 0.5,
    beats_per_bar: int | None = None,
) -> BeatTrack:
    """Find the beats, the tempo, the meter and the downbeats of a song.

    Parameters
    ----------
    y : numpy.ndarray
        Mono samples, float, nominally in -1..1.
    sr : int
        Sample rate of ``y`` in Hz; the analysis itself runs at 22050 Hz.
    sensitivity : float, optional
        0..1, default 0.5.  Higher means "find beats in more material, and follow the
        performer more closely":

        * loudness gate: the song must peak above ``-50 - 30 * sensitivity`` dBFS (RMS over
          46 ms), so -65 dBFS by default, -80 dBFS at 1.0, -50 dBFS at 0.0;
        * pulse gate: the *pulse clarity* (the highest normalised autocorrelation of the
          onset envelope between 40 and 240 BPM, median over 8 s windows) must reach
          ``0.14 - 0.12 * sensitivity`` plus a noise margin of 0.11, so 0.19 by default
          (white noise measures about 0.1, the real excerpts in ``../shared/eval`` 0.35,
          synthetic pop 0.65..0.85);
        * tightness of the beat grid to the global tempo: ``400 * 16 ** -sensitivity`` (400 at
          0.0: an unbending grid; 100 by default, librosa's value; 25 at 1.0: beats follow
          local timing such as rubato or a drifting drummer).
    beats_per_bar : int or None, optional
        3 or 4 to impose the meter; None (default) detects it.

    Returns
    -------
    BeatTrack
        Empty (no times, tempo 0.0) with a warning when the audio is silent, too short or
        has no steady pulse; this function never raises on such input.

    Raises
    ------
    ParameterError
        If ``y`` is not a 1-D float array, or ``sr``, ``sensitivity`` or ``beats_per_bar``
        is out of range.
    """
    _check_args(y, sr, sensitivity, beats_per_bar)
    meter_default = beats_per_bar or 4
    if y.size < _MIN_SECONDS * sr:
        return _empty(meter_default, _TOO_SHORT)
    if not np.all(np.isfinite(y)):
        raise ParameterError("y", "non-finite samples", "finite samples (no NaN or inf)")
    sensitivity = float(sensitivity)
    mono = np.ascontiguousarray(y, dtype=np.float32)
    if sr != ANALYSIS_SAMPLE_RATE:
        mono = resample(mono, orig_sr=int(sr), target_sr=ANALYSIS_SAMPLE_RATE)

    env = _envelopes(mono)
    gate_db = -50.0 - 30.0 * sensitivity
    if env.rms_db.size == 0 or float(env.rms_db.max()) < gate_db:
        return _empty(meter_default, _SILENT)

    # Silent stretches must not look like a pulse: only frames above the gate count.
    active = env.rms_db > gate_db
    dp_env = np.where(active, 0.5 * _normalise(env.full) + env.accent, 0.0)
    max_lag = math.ceil(60.0 * _FPS / _MIN_BPM) + 2
    ac, clarity, width = _local_autocorrelation(dp_env, active, max_lag)
    # The autocorrelation of noise wanders by about 1/sqrt(n): a margin above the gate.
    min_clarity = 0.14 - 0.12 * sensitivity + 3.0 / math.sqrt(width)
    log.debug("pulse clarity %.3f (gate %.3f)", clarity, min_clarity)
    candidates = _tempo_candidates(ac)
    if clarity < min_clarity or not candidates:
        return _empty(meter_default, _NO_PULSE)

    tightness = 400.0 * 16.0 ** (-sensitivity)
    accent_env = np.where(active, env.accent, 0.0)
    bpm, frames = _track_grid(env, dp_env, accent_env, candidates[0][0], tightness)
    frames, continued = _regularise(frames, env)
    frames, continued = _ritardando(frames, continued, dp_env, env.low, 60.0 * _FPS / bpm)
    frames = np.where(continued, frames, _snap(frames, dp_env))
    # Keep beats from a quarter beat before the first event of the song to a quarter beat
    # after its last (no beats in a silent lead-in or in a release tail).
    events = np.flatnonzero(_events(env, active))
    if frames.size < 2 or events.size == 0:
        return _empty(meter_default, _NO_PULSE)
    period = 60.0 * _FPS / bpm
    keep = (frames >= events[0] - 0.25 * period) & (frames <= events[-1] + 0.25 * period)
    frames = np.unique(frames[keep])
    if frames.size < 2:
        return _empty(meter_default, _NO_PULSE)

    times = np.maximum(frames / _FPS + _ONSET_DELAY_SECONDS, 0.0)
    increasing = np.concatenate([[True], np.diff(times) > 1e-6])
    times, frames = times[increasing], frames[increasing]
    tempo = 60.0 / float(np.median(np.diff(times)))
    strengths = np.clip(_values_at(_normalise(env.full), frames), 0.0, 1.0)
    meter, phase = _meter_and_phase(env, frames, beats_per_bar)
    beat_in_bar = ((np.arange(frames.size) - phase) % meter + 1).astype(np.int64)
    warnings: tuple[str, ...] = ()
    if clarity < min_clarity + _WEAK_PULSE_MARGIN:
        warnings = (_WEAK_PULSE,)
    log.info(
        "beat tracking: %.1f BPM, %d beats, %d/4, clarity %.2f",
        tempo,
        frames.size,
        meter,
        clarity,
    )
    return BeatTrack(
        tempo=tempo,
        times=times.astype(np.float64),
        strengths=strengths.astype(np.float64),
        beat_in_bar=beat_in_bar,
        beats_per_bar=meter,
        warnings=warnings,
    )
