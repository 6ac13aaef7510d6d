"""``AudioAnalyzer``: decode a song and find tempo, beats, downbeats, sections, key, curves.

This is the first version behind the API reference's names; the analysers it
composes live one topic per module (``beats``, ``sections``, ``key``, ``spectral``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.audio.cache import AnalysisCache
from engine.audio.decode import (
    AudioSource,
    DecodedAudio,
    check_audio_source,
    decode_audio,
    probe_audio,
)
from engine.audio.types import AudioAnalysis, AudioSection, BeatMarker, SpectralFeatures
from engine.errors import ParameterError

__all__ = ["ANALYZER_VERSION", "AudioAnalyzer"]

log = logging.getLogger(__name__)

# 0.2.0: numpy features (no librosa), key from a tuned semitone-grid chroma.
ANALYZER_VERSION = "0.2.4"

ProgressCallback = Callable[[int, int, str], None]


class AudioAnalyzer:
    """Analyse songs for video synchronisation.

    Parameters
    ----------
    sample_rate : int
        Rate the analysis runs at (the song is resampled to it, mono).
    max_duration : float
        Longest song accepted, in seconds.
    sensitivity : float
        Default beat sensitivity 0..1 (see :meth:`detect_beats`).
    fps : float
        Frame rate of the spectral curves.
    cache_dir : Path, optional
        Folder for cached results (by content hash, analyser version and parameters).
    """

    def __init__(
        self,
        *,
        sample_rate: int = 22050,
        max_duration: float = 20 * 60.0,
        sensitivity: float = 0.5,
        fps: float = 30.0,
        cache_dir: Path | None = None,
    ) -> None:
        if not 0.0 <= sensitivity <= 1.0:
            raise ParameterError("sensitivity", sensitivity, "0.0..1.0")
        if fps <= 0:
            raise ParameterError("fps", fps, "a positive number")
        self.sample_rate = sample_rate
        self.max_duration = max_duration
        self.sensitivity = sensitivity
        self.fps = fps
        self.cache = AnalysisCache(cache_dir) if cache_dir is not None else None

    # -- decoding -----------------------------------------------------------------
    def _decode(self, audio_path: AudioSource) -> DecodedAudio:
        return decode_audio(
            audio_path, sample_rate=self.sample_rate, mono=True, max_duration=self.max_duration
        )

    # -- the API reference's methods ---------------------------------------------
    async def analyze_audio(self, audio_path: AudioSource) -> AudioAnalysis:
        """Full analysis, run in a worker thread so the event loop stays responsive."""
        return await asyncio.to_thread(self.analyze, audio_path)

    def detect_beats(self, audio_path: AudioSource, sensitivity: float = 0.5) -> list[BeatMarker]:
        """Beat markers of a song.

        ``sensitivity`` (0..1) sets how weak the onsets may be and still count as
        music rather than silence or noise, and how tightly beats follow local
        timing rather than the global tempo; see :func:`engine.audio.beats.track_beats`.
        """
        from engine.audio.beats import track_beats

        audio = self._decode(audio_path)
        with _one_blas_thread():
            track = track_beats(audio.mono(), audio.sample_rate, sensitivity=sensitivity)
        return _markers(track.times, track.strengths, track.beat_in_bar)

    def analyze_sections(self, audio_path: AudioSource) -> list[AudioSection]:
        """Musical sections (intro, verse, chorus...) with boundaries on downbeats."""
        return self.analyze(audio_path).sections

    def generate_spectral_analysis(self, audio_path: AudioSource) -> SpectralFeatures:
        """Per-frame curves (RMS, onset, bands, centroid) at ``fps``."""
        from engine.audio.spectral import spectral_curves

        audio = self._decode(audio_path)
        with _one_blas_thread():
            return spectral_curves(
                audio.mono(), audio.sample_rate, fps=self.fps, duration=audio.duration
            )

    # -- the whole analysis -------------------------------------------------------
    def analyze(
        self, audio_path: AudioSource, *, progress: ProgressCallback | None = None
    ) -> AudioAnalysis:
        """Decode and analyse ``audio_path`` (synchronous).

        ``audio_path`` may be a file or :class:`~engine.audio.decode.AudioBytes` (a song
        in memory); the cache is keyed by the song's content either way.

        Raises
        ------
        AudioInputError
            Missing, empty, unreadable or over-long input.
        """

        def tick(step: int, message: str) -> None:
            if progress is not None:
                progress(step, 5, message)

        path = check_audio_source(audio_path)
        key = None
        if self.cache is not None:
            probe_audio(path)  # unreadable input fails here, before hashing
            key = self.cache.key(path, version=ANALYZER_VERSION, params=self._params())
            cached = self.cache.load(key)
            if cached is not None:
                log.info("analysis of %s from the cache", path)
                tick(5, "from cache")
                return cached
        with _one_blas_thread():
            analysis = self._analyze_path(path, tick)
        if self.cache is not None and key is not None:
            self.cache.store(key, analysis)
        return analysis

    def _analyze_path(self, path: AudioSource, tick: Callable[[int, str], None]) -> AudioAnalysis:
        from engine.audio.beats import track_beats
        from engine.audio.key import estimate_key
        from engine.audio.sections import find_sections
        from engine.audio.spectral import spectral_curves

        tick(0, "decoding")
        audio = self._decode(path)
        y, sr, duration = audio.mono(), audio.sample_rate, audio.duration
        warnings: list[str] = []
        tick(1, "beats")
        track = track_beats(y, sr, sensitivity=self.sensitivity)
        warnings.extend(track.warnings)
        beats = _markers(track.times, track.strengths, track.beat_in_bar)
        tick(2, "sections")
        downbeats = np.array([b.time for b in beats if b.is_downbeat], dtype=np.float64)
        sections = find_sections(
            y,
            sr,
            downbeat_times=downbeats,
            duration=duration,
            beats_per_bar=track.beats_per_bar,
        )
        tick(3, "key")
        key_name, key_confidence = estimate_key(y, sr)
        tick(4, "spectral curves")
        curves = spectral_curves(y, sr, fps=self.fps, duration=duration)
        tick(5, "done")
        analysis = AudioAnalysis(
            duration=duration,
            tempo=float(track.tempo),
            key=key_name,
            key_confidence=key_confidence,
            time_signature=f"{track.beats_per_bar}/4",
            sections=sections,
            beats=beats,
            spectral_features=curves,
            sample_rate=sr,
            analyzer_version=ANALYZER_VERSION,
            warnings=warnings,
        )
        log.info(
            "analysed %s: %.1f s, %.1f BPM, %s, %d beats, %d sections, key %s",
            path,
            duration,
            analysis.tempo,
            analysis.time_signature,
            len(beats),
            len(sections),
            key_name,
        )
        return analysis

    def _params(self) -> dict[str, float]:
        return {"sample_rate": self.sample_rate, "sensitivity": self.sensitivity, "fps": self.fps}


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    """One BLAS thread while the analysis runs.

    The analysis multiplies filter banks with blocks of 64 to 512 STFT frames: products
    far too small for BLAS threads to help.  On a busy 2-core machine OpenBLAS's threads
    spinning for work made it several times slower (measured on a 2-minute song: 0.8 to
    3.5 s of CPU from run to run; with one thread a steady 0.4 s).  Process-wide while
    active.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _markers(times: np.ndarray, strengths: np.ndarray, beat_in_bar: np.ndarray) -> list[BeatMarker]:
    markers: list[BeatMarker] = []
    bar = 0
    for time, strength, position in zip(times, strengths, beat_in_bar, strict=True):
        if int(position) == 1:
            bar += 1
        markers.append(
            BeatMarker(
                time=float(time),
                strength=float(strength),
                is_downbeat=int(position) == 1,
                bar=bar,
                beat=int(position),
            )
        )
    return markers
