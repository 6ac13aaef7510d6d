"""Make the shipped demo song: ``demo_song.mp3`` and its ground truth ``demo_song.truth.json``.

Usage::

    python resources/demo/make_demo_song.py [--out-dir DIR]

The song is :func:`engine.audio.synth.demo_song_spec` rendered by
:func:`engine.audio.synth.synthesize_song`, so it is the same on every run.

Why MP3 and not Ogg/Opus: MP3 is what users will feed the app, and the encoder delay is
handled.  FFmpeg's MP3 muxer writes a Xing/LAME info frame that records the encoder
delay and end padding; FFmpeg's MP3 demuxer reads it and asks the decoder to drop those
samples, so decoding with PyAV gives audio aligned with the synthesized signal to the
sample (``tests/engine/test_synth.py`` checks this).  The info frame is written only
when the output is seekable, which a regular file is.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import av
import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.atomic_files import atomic_path
from engine.audio.synth import demo_song_spec, synthesize_song, write_truth_json

log = logging.getLogger("make_demo_song")

MP3_NAME = "demo_song.mp3"
TRUTH_NAME = "demo_song.truth.json"
BIT_RATE = 160_000


def encode_mp3(
    path: Path, audio: np.ndarray, sample_rate: int, *, bit_rate: int = BIT_RATE
) -> None:
    """Encode stereo float audio to an MP3 file with libmp3lame, atomically.

    Parameters
    ----------
    path : Path
        Target ``.mp3`` file; its folder must exist.
    audio : numpy.ndarray
        float32, shape ``(2, n_samples)``, in -1..1.
    sample_rate : int
        Samples per second (44100 for the demo).
    bit_rate : int
        Constant bit rate in bit/s.
    """
    planar = np.ascontiguousarray(audio, dtype=np.float32)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=sample_rate, layout="stereo")
        stream.bit_rate = bit_rate
        stream.format = "fltp"
        chunk_size = 4096  # PyAV re-chunks frames to the codec's frame size (1152 or 576)
        for start in range(0, planar.shape[1], chunk_size):
            chunk = np.ascontiguousarray(planar[:, start : start + chunk_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def main(argv: list[str] | None = None) -> int:
    """Write the demo song and its truth into ``--out-dir``; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder to write into (default: this script's folder)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    song = synthesize_song(demo_song_spec())
    encode_mp3(out_dir / MP3_NAME, song.audio, song.sample_rate)
    write_truth_json(out_dir / TRUTH_NAME, song.truth)
    log.info(
        "wrote %s (%.1f s, %d kB) and %s",
        out_dir / MP3_NAME,
        song.duration,
        (out_dir / MP3_NAME).stat().st_size // 1024,
        out_dir / TRUTH_NAME,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
