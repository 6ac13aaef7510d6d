"""A real (virtual) audio output for the preview player's tests: PulseAudio with a null sink.

The preview player plays the song through Qt Multimedia, whose Linux audio goes to
PulseAudio (or PipeWire when ``QT_AUDIO_BACKEND=pipewire``).  A CI machine has no sound
card, so :class:`PulseDaemon` runs a private ``pulseaudio`` daemon (its socket, state and
log in a temp folder, never the user's session) and, for the tests that ask for it,
loads a ``module-null-sink``: an output that plays in real time into nothing, with a
*monitor* source that :class:`MonitorRecorder` records, so a test hears what was played.

Two facts about Qt 6.11 shape how the fixtures in ``tests/app/conftest.py`` use this:

* Qt connects to the sound server once per process, the first time anything asks for
  audio devices, and never reconnects: the daemon has to be up (and ``PULSE_SERVER``
  set) before the first Qt Multimedia call of the test session.
* Qt's PulseAudio backend never drops a removed sink from
  ``QMediaDevices.audioOutputs()``; once the null sink is loaded, every later player
  would see an output.  So the daemon starts with *no* sink (every other test sees no
  audio output, as before), and the tests that load the sink run last.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal

SINK_NAME = "apex_null"
SINK_RATE = 48000
INSTALL_HINT = (
    "needs PulseAudio for a virtual audio device: install the `pulseaudio` and "
    "`pulseaudio-utils` packages (apt-get install pulseaudio pulseaudio-utils; CI does)"
)
_TOOLS = ("pulseaudio", "pactl", "parec")


def missing_tools() -> list[str]:
    """The PulseAudio programs this module needs that are not on ``PATH``."""
    return [tool for tool in _TOOLS if shutil.which(tool) is None]


class PulseDaemon:
    """A private PulseAudio daemon with no sink until :meth:`load_null_sink`.

    Parameters
    ----------
    folder : Path
        Where its socket, runtime state and log live (created; removed by :meth:`stop`
        only if this object made it).
    """

    def __init__(self, folder: Path | None = None) -> None:
        self._owns_folder = folder is None
        self.folder = Path(folder or tempfile.mkdtemp(prefix="apex-pulse-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        self.socket = self.folder / "native"
        self.log_path = self.folder / "pulseaudio.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._sink_module: str | None = None

    @property
    def server(self) -> str:
        """The value for ``PULSE_SERVER`` that reaches this daemon."""
        return f"unix:{self.socket}"

    def env(self) -> dict[str, str]:
        """The environment of this daemon's programs (private HOME and runtime folder)."""
        env = dict(os.environ)
        # the daemon's state, cookie and runtime files stay in the private folder
        env.update(
            HOME=str(self.folder),
            XDG_RUNTIME_DIR=str(self.folder),
            XDG_CONFIG_HOME=str(self.folder / "config"),
            XDG_STATE_HOME=str(self.folder / "state"),
            PULSE_SERVER=self.server,
        )
        return env

    def start(self, timeout: float = 10.0) -> None:
        """Run the daemon and wait until it answers.

        Raises
        ------
        RuntimeError
            The daemon did not answer within ``timeout`` (the message holds its log).
        """
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                "pulseaudio",
                "--daemonize=no",
                "--system=false",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=no",
                "--log-target=stderr",
                "-n",  # no default.pa: no sound card, no sink until a test asks for one
                f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
            ],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if self.socket.exists() and self.pactl("info", check=False).returncode == 0:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pulseaudio did not start: {self.log_tail()}")

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``pactl`` against this daemon."""
        return subprocess.run(
            ["pactl", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=10,
        )

    def load_null_sink(self) -> str:
        """Load the null sink :data:`SINK_NAME` (once); return its name."""
        if self._sink_module is None:
            self._sink_module = self.pactl(
                "load-module",
                "module-null-sink",
                f"sink_name={SINK_NAME}",
                f"rate={SINK_RATE}",
                "channels=2",
            ).stdout.strip()
        return SINK_NAME

    def sinks(self) -> list[str]:
        """Names of the daemon's sinks."""
        lines = self.pactl("list", "short", "sinks").stdout.splitlines()
        return [line.split("\t")[1] for line in lines if "\t" in line]

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the daemon (and remove the folder if this object made it)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._process = None
        if self._owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    @contextmanager
    def record(self, rate: int = 16000) -> Iterator[MonitorRecorder]:
        """Record the null sink's monitor (mono, ``rate`` Hz) while the block runs."""
        recorder = MonitorRecorder(self, rate)
        recorder.start()
        try:
            yield recorder
        finally:
            recorder.stop()


@dataclass
class MonitorRecorder:
    """``parec`` on the null sink's monitor, every chunk stamped with ``time.monotonic()``.

    The monitor plays in real time, so a sample's wall time follows from the chunks'
    arrival: a chunk can arrive late, never early, so the lower envelope of
    ``arrival - samples_so_far / rate`` is the wall time of sample 0
    (:meth:`sample_zero_time`).
    """

    daemon: PulseDaemon
    rate: int
    _chunks: list[bytes] = field(default_factory=list)
    _stamps: list[tuple[float, int]] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                "parec",
                f"--device={SINK_NAME}.monitor",
                "--raw",
                "--format=s16le",
                f"--rate={self.rate}",
                "--channels=1",
                "--latency-msec=10",
            ],
            env=self.daemon.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._thread = threading.Thread(target=self._read, name="parec-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        total = 0
        pending = b""
        while True:
            data = os.read(fd, 4096)
            now = time.monotonic()
            if not data:
                return
            data = pending + data
            whole = len(data) - len(data) % 2
            pending = data[whole:]
            total += whole // 2
            self._chunks.append(data[:whole])
            self._stamps.append((now, total))

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def samples(self) -> np.ndarray:
        """Everything recorded so far, float32 in [-1, 1]."""
        data = b"".join(list(self._chunks))
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0

    def sample_zero_time(self) -> float:
        """The ``time.monotonic()`` at which recorded sample 0 played."""
        stamps = list(self._stamps)
        if not stamps:
            raise RuntimeError("nothing recorded yet")
        return min(now - total / self.rate for now, total in stamps)

    def sound_starts(self, after: float, level: float = 0.01) -> float:
        """Wall time of the first recorded sample louder than ``level`` after wall ``after``."""
        samples = self.samples()
        zero = self.sample_zero_time()
        first = max(0, round((after - zero) * self.rate))
        loud = np.flatnonzero(np.abs(samples[first:]) > level)
        if loud.size == 0:
            raise AssertionError(f"no sound recorded after {after:.3f}")
        return zero + (first + int(loud[0])) / self.rate

    def recorded_seconds(self) -> float:
        """How much has been recorded so far."""
        stamps = self._stamps
        return stamps[-1][1] / self.rate if stamps else 0.0


@dataclass(frozen=True)
class Heard:
    """A stretch of the recording found in the song."""

    wall: float
    """``time.monotonic()`` at which the stretch's first sample played."""
    song_seconds: float
    """Where in the song that sample is."""
    match: float
    """Normalized correlation of the stretch with the song there (1: identical)."""


def heard_song_times(
    recorder: MonitorRecorder,
    song: np.ndarray,
    expected: Callable[[float], float],
    *,
    window: float = 0.2,
    step: float = 0.1,
    search: float = 0.2,
    quiet: float = 1e-3,
) -> list[Heard]:
    """Find each ``window`` of the recording in ``song`` (mono, at the recorder's rate).

    ``expected(wall)`` says roughly where in the song the sound playing at ``wall``
    should be; the stretch is looked for within ``search`` seconds of it (the song's
    beats repeat, so an unbounded search could land a beat away).  Silent windows
    and those where the sound starts or stops (a quarter with RMS below ``quiet``) are
    left out.
    """
    samples = recorder.samples()
    zero = recorder.sample_zero_time()
    rate = recorder.rate
    size, hop, reach = round(window * rate), round(step * rate), round(search * rate)
    found = []
    for start in range(0, samples.size - size + 1, hop):
        piece = samples[start : start + size].astype(np.float64)
        quarters = piece[: size - size % 4].reshape(4, -1)
        if np.sqrt(np.mean(quarters**2, axis=1)).min() < quiet:
            continue  # silent, or where the sound starts or stops
        energy = float(np.sqrt(np.sum(piece**2)))
        wall = zero + start / rate
        centre = round(expected(wall) * rate)
        low = max(0, centre - reach)
        reference = song[low : centre + reach + size].astype(np.float64)
        if reference.size < size:
            continue
        scores = signal.correlate(reference, piece, mode="valid", method="fft")
        running = np.concatenate(([0.0], np.cumsum(reference**2)))
        norms = np.sqrt(np.maximum(running[size:] - running[:-size], 0.0)) * energy
        scores = scores / np.maximum(norms, 1e-12)
        best = int(np.argmax(scores))
        found.append(Heard(wall, (low + best) / rate, float(scores[best])))
    return found
