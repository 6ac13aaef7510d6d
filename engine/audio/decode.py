"""Decode audio files with PyAV (FFmpeg): wav, flac, ogg/opus, mp3, m4a/aac and more.

Two uses: the analyser wants the whole song as a mono float array at a modest rate;
the encoder wants the song streamed as stereo frames at the output rate.  Both go
through one opener, which turns every way a file can be unusable into an
:class:`~engine.errors.AudioInputError` that says what to do.

A song is an :data:`AudioSource`: a file path, or :class:`AudioBytes`, a song held in
memory (the clear bytes of an encrypted project's sealed asset, docs/security.md).
Bytes are decoded from memory (``av.open(io.BytesIO(...))``) and never written to disk;
:func:`source_digest` keys caches by the song's content either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from engine.errors import AudioInputError

__all__ = [
    "SUPPORTED_AUDIO_EXTENSIONS",
    "AudioBytes",
    "AudioInfo",
    "AudioSource",
    "DecodedAudio",
    "check_audio_path",
    "check_audio_source",
    "decode_audio",
    "file_digest",
    "iter_audio_frames",
    "probe_audio",
    "source_digest",
]

log = logging.getLogger(__name__)

SUPPORTED_AUDIO_EXTENSIONS = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".m4a",
    ".aac",
    ".aif",
    ".aiff",
    # video files: the song is taken from their first audio stream
    ".mp4",
    ".mov",
    ".mkv",
    ".webm",
)
_PREALLOCATE_MAX_SECONDS = 3600.0  # decode_audio grows its array beyond this if it must
_SUPPORTED_TEXT = ", ".join(e.lstrip(".") for e in SUPPORTED_AUDIO_EXTENSIONS)


@dataclass(frozen=True, eq=False, repr=False)
class AudioBytes:
    """A song held in memory, decoded from there: nothing of it is written to disk.

    What an encrypted project's sealed song becomes once opened with the project's key
    (``AssetManager.audio_source``).  Its ``repr`` shows the name, size and hash, never
    the bytes, so it can be logged.

    Attributes
    ----------
    data : bytes
        The file's bytes (any container PyAV reads: wav, flac, mp3, m4a...).
    name : str
        A file name for messages and the extension check (``song.wav``).
    digest : str
        SHA-256 of ``data`` (hex); computed when not given.  Caches are keyed by it.
    """

    data: bytes
    name: str
    digest: str = ""

    def __post_init__(self) -> None:
        if not self.digest:
            object.__setattr__(self, "digest", hashlib.sha256(self.data).hexdigest())

    @property
    def path(self) -> Path:
        """``name`` as a path (what error messages show)."""
        return Path(self.name)

    def __repr__(self) -> str:
        return f"AudioBytes({self.name!r}, {len(self.data)} bytes, sha256 {self.digest[:12]})"


AudioSource: TypeAlias = Path | str | AudioBytes
"""A song: a file's path, or its bytes in memory (:class:`AudioBytes`)."""


def file_digest(path: Path | str, *, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def source_digest(source: AudioSource) -> str:
    """SHA-256 (hex) of the song's bytes: the file's content, or ``AudioBytes.digest``.

    The same song gives the same digest whether it is read from a clear file or held
    in memory, so caches keyed by it are shared.
    """
    return source.digest if isinstance(source, AudioBytes) else file_digest(source)


def _where(source: Path | AudioBytes) -> Path:
    return source.path if isinstance(source, AudioBytes) else source


@dataclass(frozen=True)
class AudioInfo:
    """What the container says about a song, before decoding it."""

    path: Path
    duration: float
    sample_rate: int
    channels: int
    codec: str


@dataclass(frozen=True)
class DecodedAudio:
    """Decoded samples, float32 in -1..1, shape ``(channels, n_samples)``."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / self.sample_rate

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    def mono(self) -> np.ndarray:
        """The channels averaged into one float32 array (a view of ``samples`` when mono)."""
        if self.samples.shape[0] == 1:
            return np.ascontiguousarray(self.samples[0], dtype=np.float32)
        return np.ascontiguousarray(self.samples.mean(axis=0, dtype=np.float32))


def check_audio_path(path: Path | str) -> Path:
    """Check that ``path`` names an existing, non-empty file with a supported extension.

    Raises
    ------
    AudioInputError
        With a message that says what is wrong and what to do.
    """
    path = Path(path)
    if not path.exists():
        raise AudioInputError(path, "file not found; check the path")
    if path.is_dir():
        raise AudioInputError(path, "is a folder; give an audio file")
    if path.suffix.lower() not in SUPPORTED_AUDIO_EXTENSIONS:
        raise AudioInputError(
            path,
            f"unsupported extension {path.suffix or '(none)'!r}; use one of {_SUPPORTED_TEXT}",
        )
    if path.stat().st_size == 0:
        raise AudioInputError(path, "file is empty (0 bytes); export the song again")
    return path


def check_audio_source(source: AudioSource) -> Path | AudioBytes:
    """:func:`check_audio_path` for a path; for :class:`AudioBytes`, the same checks
    on its name's extension and its size.

    Raises
    ------
    AudioInputError
        With a message that says what is wrong and what to do.
    """
    if not isinstance(source, AudioBytes):
        return check_audio_path(source)
    path = source.path
    if path.suffix.lower() not in SUPPORTED_AUDIO_EXTENSIONS:
        raise AudioInputError(
            path,
            f"unsupported extension {path.suffix or '(none)'!r}; use one of {_SUPPORTED_TEXT}",
        )
    if not source.data:
        raise AudioInputError(path, "file is empty (0 bytes); export the song again")
    return source


@contextlib.contextmanager
def _open(source: Path | AudioBytes) -> Iterator[tuple[Any, Any]]:
    import av

    path = _where(source)
    try:
        if isinstance(source, AudioBytes):
            # decoded from memory: the clear bytes never touch the disk
            container = av.open(io.BytesIO(source.data), mode="r")
        else:
            container = av.open(str(source), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise AudioInputError(
            path,
            f"not a readable audio file ({err.__class__.__name__}); "
            f"convert it to wav, flac or mp3 and try again",
        ) from err
    try:
        if not container.streams.audio:
            raise AudioInputError(path, "has no audio stream; give a file that contains sound")
        yield container, container.streams.audio[0]
    finally:
        container.close()


def _stream_duration(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000.0
    return 0.0


def probe_audio(path: AudioSource) -> AudioInfo:
    """Read the container header only (fast): duration, rate, channels, codec."""
    source = check_audio_source(path)
    with _open(source) as (container, stream):
        return AudioInfo(
            path=_where(source),
            duration=_stream_duration(container, stream),
            sample_rate=int(stream.codec_context.sample_rate or 0),
            channels=int(stream.codec_context.channels or 0),
            codec=str(stream.codec_context.name),
        )


def _check_length(path: Path, seconds: float, max_duration: float | None) -> None:
    if max_duration is not None and seconds > max_duration:
        raise AudioInputError(
            path,
            f"is {seconds / 60:.1f} minutes long; the limit is {max_duration / 60:.1f} minutes "
            f"(raise audio.max_duration_minutes in the configuration to allow it)",
        )


def iter_audio_frames(
    path: AudioSource,
    *,
    sample_rate: int,
    layout: str = "stereo",
    frame_size: int | None = None,
    max_duration: float | None = None,
) -> Iterator[np.ndarray]:
    """Stream the song as float32 blocks of shape ``(channels, n)`` at ``sample_rate``.

    Memory stays bounded by one block whatever the song's length.  ``frame_size``
    makes every block but the last exactly that many samples long.

    Raises
    ------
    AudioInputError
        Unreadable, empty, over-long or sample-less input.
    """
    import av

    source = check_audio_source(path)
    path = _where(source)
    with _open(source) as (container, stream):
        _check_length(path, _stream_duration(container, stream), max_duration)
        # FFmpeg's mono-to-stereo upmix lowers the level by 3 dB; copy the channel instead.
        upmix = layout == "stereo" and (stream.codec_context.channels or 0) == 1
        resampler = av.AudioResampler(
            format="fltp",
            layout="mono" if upmix else layout,
            rate=sample_rate,
            frame_size=frame_size,
        )
        limit = None if max_duration is None else int(max_duration * sample_rate) + sample_rate
        produced = 0
        try:
            for frame in container.decode(stream):
                frame.pts = None  # the resampler keeps its own clock; bad input pts can't shift it
                for out in resampler.resample(frame):
                    block = out.to_ndarray()
                    produced += block.shape[1]
                    yield np.repeat(block, 2, axis=0) if upmix else block
                if limit is not None and produced > limit:
                    _check_length(path, produced / sample_rate, max_duration)
        except av.error.FFmpegError as err:
            if produced == 0:
                raise AudioInputError(
                    path,
                    f"cannot be decoded ({err.__class__.__name__}); the file is damaged "
                    "or not audio: export it again",
                ) from err
            log.warning(
                "%s: decoding stopped early (%s); using the first %.2f s",
                path,
                err,
                produced / sample_rate,
            )
        for out in resampler.resample(None):
            produced += out.samples
            block = out.to_ndarray()
            yield np.repeat(block, 2, axis=0) if upmix else block
        if produced == 0:
            raise AudioInputError(path, "contains no audio samples; export the song again")


def decode_audio(
    path: AudioSource,
    *,
    sample_rate: int | None = None,
    mono: bool = False,
    max_duration: float | None = None,
) -> DecodedAudio:
    """Decode a whole song into memory.

    Parameters
    ----------
    path : Path or AudioBytes
        The audio file, or its bytes in memory.
    sample_rate : int, optional
        Resample to this rate (default: the file's own rate).
    mono : bool
        Mix down to one channel.
    max_duration : float, optional
        Refuse songs longer than this many seconds (checked before decoding).

    Returns
    -------
    DecodedAudio

    Raises
    ------
    AudioInputError
        Missing, empty, unsupported, unreadable, over-long or sample-less input.
    """
    source = check_audio_source(path)
    info = probe_audio(source)
    where = info.path
    rate = sample_rate or info.sample_rate or 44100
    # The blocks go straight into one array sized from the header (grown if the header
    # was short), so the song is held once, not as a list of blocks plus their join.
    # (Capped, so that a header claiming days of audio cannot ask for an absurd array; only
    # the pages written become resident.)
    expected = min(
        info.duration, max_duration or _PREALLOCATE_MAX_SECONDS, _PREALLOCATE_MAX_SECONDS
    )
    samples = np.empty((1 if mono else 2, int(expected * rate) + rate), dtype=np.float32)
    used = 0
    for block in iter_audio_frames(
        source, sample_rate=rate, layout="mono" if mono else "stereo", max_duration=max_duration
    ):
        n = block.shape[1]
        if used + n > samples.shape[1]:
            grown = np.empty(
                (samples.shape[0], max(used + n, samples.shape[1] * 3 // 2)), np.float32
            )
            grown[:, :used] = samples[:, :used]
            samples = grown
        samples[:, used : used + n] = block
        used += n
    if used == 0:
        raise AudioInputError(where, "contains no audio samples; export the song again")
    # A header that said far longer: give the unused tail back.
    samples = samples[:, :used].copy() if samples.shape[1] - used > rate else samples[:, :used]
    return DecodedAudio(samples=samples, sample_rate=rate)
