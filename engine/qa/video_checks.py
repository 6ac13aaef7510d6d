"""Video QC: format, timing, levels, black/frozen pictures and photosensitive flashes.

The picture is decoded with PyAV (threaded) straight to its Y'CbCr planes: levels are
counted on the decoded code values, with no RGB conversion in between.  Flash, black
and frozen-frame analysis runs on small area-averaged thumbnails of every frame.

Levels (8-bit; 10-bit limits are 4x): BT.709 nominal Y 16-235, Cb/Cr 16-240; EBU R 103
tolerance 5-246, excursions beyond it allowed over at most 1 % of a frame's area.  Both
the share outside nominal and the share outside tolerance are measured per frame.

Flashes (ITU-R BT.1702, Ofcom guidance note): a transition is a change of display
luminance of 20 cd/m² or more (200 cd/m² display, BT.1886 gamma 2.4) where the darker
state is below 160 cd/m²; a flash is a pair of opposing transitions.  A red transition is
a change of 20 or more in (R - G - B) x 320 of a saturated red (R / (R + G + B) >= 0.8,
linear light).  More than 3 flashes within any 1 s, concurrently over more than a quarter
of the screen, fails.
"""

from __future__ import annotations

import itertools
import logging
import math
from array import array
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import MediaInputError, ParameterError

__all__ = [
    "FLASH_AREA",
    "FLASH_LIMIT",
    "VideoMeasurement",
    "VideoOptions",
    "measure_video",
    "probe_container",
]

log = logging.getLogger(__name__)

FLASH_LIMIT = 3.0  # flashes in any 1 s window (more fails)
FLASH_AREA = 0.25  # fraction of the screen the flashes must exceed together
_FLASH_DELTA = 20.0  # cd/m²
_FLASH_DARK = 160.0  # cd/m²
_DISPLAY_PEAK = 200.0  # cd/m², the reference display of BT.1702
_GRID_WIDTH = 64  # flash grid cells across (height follows the aspect ratio)
_THUMB = (160, 90)  # black / frozen thumbnails
_BLACK_LEVEL = 0.10  # of the nominal range above black (ffmpeg blackdetect's pix_th)
_BLACK_RATIO = 0.98
_FROZEN_DIFF = 0.25  # mean absolute difference, 8-bit code values

_MODES = ("full", "sampled")


@dataclass(frozen=True, kw_only=True)
class VideoOptions:
    """How much of the picture to analyse.

    Attributes
    ----------
    mode : str
        ``"full"``: levels counted on every frame; ``"sampled"``: on ``sample_rate``
        frames per second.  Flashes, black and frozen frames always use every frame.
    sample_rate : float
        Frames per second whose levels are counted in sampled mode.
    black_min_seconds, frozen_min_seconds : float
        Shortest run of black / frozen frames that is reported.
    threads : int
        Decoder threads (0 = as many as the decoder likes).
    """

    mode: str = "full"
    sample_rate: float = 4.0
    black_min_seconds: float = 1.0
    frozen_min_seconds: float = 2.0
    threads: int = 0

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ParameterError("mode", self.mode, f"one of {', '.join(_MODES)}")
        if not self.sample_rate > 0:
            raise ParameterError("sample_rate", self.sample_rate, "frames per second > 0")
        if self.black_min_seconds < 0 or self.frozen_min_seconds < 0:
            raise ParameterError(
                "black_min_seconds/frozen_min_seconds",
                (self.black_min_seconds, self.frozen_min_seconds),
                "seconds >= 0",
            )


@dataclass(kw_only=True)
class VideoMeasurement:
    """Everything measured about a file's video (and its audio timing)."""

    container: str = ""
    codec: str = ""
    profile: str = ""
    pix_fmt: str = ""
    bit_depth: int = 8
    width: int = 0
    height: int = 0
    fps: float = 0.0
    fps_exact: str = ""
    color_primaries: str = "unknown"
    color_transfer: str = "unknown"
    color_space: str = "unknown"
    color_range: str = "unknown"
    constant_frame_rate: bool = True
    frame_interval_min: float = 0.0
    frame_interval_max: float = 0.0
    frames: int = 0
    declared_frames: int = 0
    gop_max_frames: int = 0
    gop_max_seconds: float = 0.0
    video_duration: float = 0.0
    audio_duration: float | None = None
    has_audio: bool = False
    frames_level_checked: int = 0
    y_min: int = 0
    y_max: int = 0
    c_min: int = 0
    c_max: int = 0
    y_min_frame: int = 0
    y_max_frame: int = 0
    c_min_frame: int = 0
    c_max_frame: int = 0
    y_outside_nominal_max_pct: float = 0.0
    y_outside_nominal_frame: int = 0
    c_outside_nominal_max_pct: float = 0.0
    c_outside_nominal_frame: int = 0
    y_outside_tolerance_max_pct: float = 0.0
    y_outside_tolerance_frame: int = 0
    c_outside_tolerance_max_pct: float = 0.0
    c_outside_tolerance_frame: int = 0
    frames_outside_tolerance: int = 0
    first_outside_tolerance_frame: int | None = None
    illegal_region: tuple[int, int, int, int] | None = None
    max_flashes_per_second: float = 0.0
    max_flash_frame: int = 0
    first_flash_fail_frame: int | None = None
    max_red_flashes_per_second: float = 0.0
    max_red_flash_frame: int = 0
    first_red_flash_fail_frame: int | None = None
    black_runs: list[tuple[int, int]] = field(default_factory=list)  # (first frame, count)
    frozen_runs: list[tuple[int, int]] = field(default_factory=list)
    # One 8-byte float per frame (the only per-frame data kept): where a frame is in time.
    frame_times: array[float] = field(default_factory=lambda: array("d"), repr=False)

    def time_of(self, frame: int | None) -> float | None:
        if frame is None:
            return None
        if 0 <= frame < len(self.frame_times):
            return self.frame_times[frame]
        return frame / self.fps if self.fps else None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "frame_times"}
        out["black_runs"] = [
            {"frame": f, "time": self.time_of(f), "seconds": n / self.fps if self.fps else None}
            for f, n in self.black_runs
        ]
        out["frozen_runs"] = [
            {"frame": f, "time": self.time_of(f), "seconds": n / self.fps if self.fps else None}
            for f, n in self.frozen_runs
        ]
        return out


def _levels(bit_depth: int) -> dict[str, int]:
    scale = 1 << (bit_depth - 8)
    return {
        "y_lo": 16 * scale,
        "y_hi": 235 * scale,
        "c_lo": 16 * scale,
        "c_hi": 240 * scale,
        "tol_lo": 5 * scale,
        "tol_hi": 246 * scale,
        "max": (256 * scale) - 1,
    }


def _open(path: Path) -> Any:
    import av

    if not path.exists():
        raise MediaInputError(path, "file not found; check the path")
    if path.is_dir():
        raise MediaInputError(path, "is a folder; give a video file")
    if path.stat().st_size == 0:
        raise MediaInputError(path, "file is empty (0 bytes); export it again")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise MediaInputError(
            path,
            f"cannot be opened as media ({err.__class__.__name__}: {err}); the file may be "
            "truncated (an interrupted copy or export) or not a video; export it again",
        ) from err


def _tag(value: Any) -> str:
    name = getattr(value, "name", None)
    if name is not None:
        return str(name).lower()
    return {1: "bt709", 2: "unknown"}.get(int(value or 2), str(int(value)))


_PRIMARIES = {1: "bt709", 2: "unknown", 5: "bt470bg", 6: "smpte170m", 9: "bt2020"}
_TRC = {
    1: "bt709",
    2: "unknown",
    6: "smpte170m",
    13: "iec61966-2-1",
    14: "bt2020-10",
    16: "smpte2084",
    18: "arib-std-b67",
}
_MATRIX = {0: "rgb", 1: "bt709", 2: "unknown", 5: "bt470bg", 6: "smpte170m", 9: "bt2020nc"}
_RANGE = {0: "unknown", 1: "tv", 2: "pc"}


def probe_container(path: Path | str) -> VideoMeasurement:
    """Format, tags, frame timing, GOP and A/V durations, from the packets only (no decode).

    Raises
    ------
    MediaInputError
        Missing, empty, unreadable or truncated file, or one without a video stream.
    """
    import av

    path = Path(path)
    m = VideoMeasurement()
    with _open(path) as container:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise MediaInputError(
                path, f"has no video stream ({kinds}); give a video file (MP4, MOV, MKV)"
            )
        video = container.streams.video[0]
        cc = video.codec_context
        m.container = container.format.name
        m.codec = cc.name
        m.profile = str(cc.profile or "")
        m.pix_fmt = str(cc.pix_fmt or video.format.name if video.format else cc.pix_fmt)
        m.bit_depth = 10 if "10" in (m.pix_fmt or "") else 12 if "12" in (m.pix_fmt or "") else 8
        m.width, m.height = int(cc.width), int(cc.height)
        rate = video.average_rate or video.guessed_rate or video.base_rate
        if rate:
            m.fps = float(rate)
            m.fps_exact = f"{Fraction(rate).numerator}/{Fraction(rate).denominator}"
        m.color_primaries = _PRIMARIES.get(int(cc.color_primaries or 2), str(cc.color_primaries))
        m.color_transfer = _TRC.get(int(cc.color_trc or 2), str(cc.color_trc))
        m.color_space = _MATRIX.get(int(cc.colorspace or 2), str(cc.colorspace))
        m.color_range = _RANGE.get(int(cc.color_range or 0), str(cc.color_range))
        if m.pix_fmt.startswith("yuvj") and m.color_range == "unknown":
            m.color_range = "pc"
        m.declared_frames = int(video.frames or 0)
        m.has_audio = bool(container.streams.audio)
        streams = [video, *container.streams.audio[:1]]
        pts = array("q")  # 8 bytes a frame
        keyframes: list[int] = []
        video_end = audio_start = audio_end = None
        try:
            for packet in container.demux(streams):
                if packet.pts is None or packet.size == 0:
                    continue
                end = packet.pts + (packet.duration or 0)
                if packet.stream.type == "video":
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keyframes.append(packet.pts)
                    video_end = end if video_end is None else max(video_end, end)
                else:
                    t0 = float(packet.pts * packet.time_base)
                    t1 = float(end * packet.time_base)
                    audio_start = t0 if audio_start is None else min(audio_start, t0)
                    audio_end = t1 if audio_end is None else max(audio_end, t1)
        except av.error.FFmpegError as err:
            raise MediaInputError(
                path, f"is damaged or truncated ({err}); export or copy it again"
            ) from err
        if not pts:
            raise MediaInputError(path, "its video stream holds no frames; export it again")
        tb = video.time_base
        ordered = np.sort(np.frombuffer(pts, dtype=np.int64))
        del pts
        deltas = np.diff(ordered)
        if deltas.size:
            m.frame_interval_min = float(deltas.min() * tb)
            m.frame_interval_max = float(deltas.max() * tb)
            # One tick of jitter is rounding of the timestamps, not a variable rate.
            m.constant_frame_rate = bool(deltas.max() - deltas.min() <= 1)
        else:
            m.frame_interval_min = m.frame_interval_max = 1 / m.fps if m.fps else 0.0
        # The frame number of each keyframe (the last of equal timestamps, as a dict would).
        keys = np.asarray(keyframes, dtype=np.int64)
        at = np.searchsorted(ordered, keys, side="right") - 1
        found = (at >= 0) & (ordered[np.maximum(at, 0)] == keys)
        key_index = sorted(int(i) for i in at[found])
        count = int(ordered.size)
        bounds = [*key_index, count]
        m.gop_max_frames = max((b - a for a, b in itertools.pairwise(bounds)), default=count)
        if key_index and key_index[0] > 0:  # frames before the first keyframe
            m.gop_max_frames = max(m.gop_max_frames, key_index[0])
        m.gop_max_seconds = m.gop_max_frames / m.fps if m.fps else 0.0
        start = float(int(ordered[0]) * tb)
        m.video_duration = float(video_end * tb) - start if video_end is not None else 0.0
        if m.video_duration <= 0 and m.fps:
            m.video_duration = count / m.fps
        if audio_end is not None and audio_start is not None:
            m.audio_duration = audio_end - max(audio_start, 0.0)
        m.frames = count
    return m


class _TransitionCounter:
    """Per-cell opposing luminance transitions with hysteresis, counted over 1 s windows.

    Each cell remembers the lowest and highest value since its last transition; a rise of
    the threshold above that low (or a fall below that high) is a transition, whether it
    happens in one frame or over several.  After a rise only a fall counts next, and the
    reverse, so a slow drift in one direction is never more than one transition.
    """

    def __init__(self, cells: int, window: int, *, dark_limit: float) -> None:
        self.lo = np.zeros(cells)
        self.hi = np.zeros(cells)
        self.direction = np.zeros(cells, dtype=np.int8)
        self.window = max(1, window)
        self.recent: deque[np.ndarray] = deque()
        self.counts = np.zeros(cells, dtype=np.int32)
        self.dark_limit = dark_limit
        self.started = False
        self.k = math.floor(FLASH_AREA * cells) + 1  # cells needed for > 1/4 of screen

    def update(self, value: np.ndarray) -> float:
        """Feed one frame's cell values; returns flashes in the last 1 s over > 1/4 screen."""
        if not self.started:
            self.lo = value.astype(np.float64).copy()
            self.hi = self.lo.copy()
            self.started = True
            transitions = np.zeros(value.shape, dtype=bool)
        else:
            up = (
                (self.direction <= 0)
                & (value - self.lo >= _FLASH_DELTA)
                & (self.lo < self.dark_limit)
            )
            down = (
                (self.direction >= 0)
                & (self.hi - value >= _FLASH_DELTA)
                & (value < self.dark_limit)
                & ~up
            )
            transitions = up | down
            self.direction[up] = 1
            self.direction[down] = -1
            np.minimum(self.lo, value, out=self.lo)
            np.maximum(self.hi, value, out=self.hi)
            self.lo[transitions] = value[transitions]
            self.hi[transitions] = value[transitions]
        step = transitions.astype(np.int32)
        self.recent.append(step)
        self.counts += step
        if len(self.recent) > self.window:
            self.counts -= self.recent.popleft()
        if self.k > self.counts.size:
            return 0.0
        kth = np.partition(self.counts, self.counts.size - self.k)[self.counts.size - self.k]
        return float(kth) / 2.0


def _planes(frame: Any, bit_depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
    item = np.dtype(dtype).itemsize
    out = []
    for plane in frame.planes[:3]:
        rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // item)
        out.append(rows[:, : plane.width])
    return out[0], out[1], out[2]


def _plane_stats(
    plane: np.ndarray, nominal: tuple[int, int], tolerance: tuple[int, int]
) -> tuple[int, int, int, int]:
    """(min, max, samples outside nominal, samples outside tolerance) of one plane.

    Min and max are one fast pass each; the counting passes run only when an extreme is
    outside the nominal range, which a legal frame never is.
    """
    low, high = int(plane.min()), int(plane.max())
    out_nominal = out_tolerance = 0
    if low < nominal[0]:
        out_nominal += int(np.count_nonzero(plane < nominal[0]))
        if low < tolerance[0]:
            out_tolerance += int(np.count_nonzero(plane < tolerance[0]))
    if high > nominal[1]:
        out_nominal += int(np.count_nonzero(plane > nominal[1]))
        if high > tolerance[1]:
            out_tolerance += int(np.count_nonzero(plane > tolerance[1]))
    return low, high, out_nominal, out_tolerance


def _cells_rgb(
    y: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    *,
    grid: tuple[int, int],
    lv: dict[str, int],
    full: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Display luminance (cd/m²) and red-flash value of every grid cell.

    ``y`` is the luma thumbnail, ``u`` and ``v`` the full chroma planes.
    """
    import cv2

    ys = cv2.resize(y, grid, interpolation=cv2.INTER_AREA).astype(np.float32)
    us = cv2.resize(u, grid, interpolation=cv2.INTER_AREA).astype(np.float32)
    vs = cv2.resize(v, grid, interpolation=cv2.INTER_AREA).astype(np.float32)
    top = lv["max"]
    if full:
        yn, cb, cr = ys / top, (us - (top + 1) / 2) / top, (vs - (top + 1) / 2) / top
    else:
        span_y, span_c = lv["y_hi"] - lv["y_lo"], lv["c_hi"] - lv["c_lo"]
        mid = (top + 1) / 2
        yn, cb, cr = (ys - lv["y_lo"]) / span_y, (us - mid) / span_c, (vs - mid) / span_c
    # BT.709 Y'CbCr -> R'G'B', then BT.1886 (gamma 2.4) to linear light.
    r = np.clip(yn + 1.5748 * cr, 0, 1) ** 2.4
    g = np.clip(yn - 0.1873 * cb - 0.4681 * cr, 0, 1) ** 2.4
    b = np.clip(yn + 1.8556 * cb, 0, 1) ** 2.4
    luminance = _DISPLAY_PEAK * (0.2126 * r + 0.7152 * g + 0.0722 * b)
    total = r + g + b
    with np.errstate(invalid="ignore", divide="ignore"):
        saturated = (r / np.where(total > 0, total, 1)) >= 0.8
    red = np.where(saturated, np.clip((r - g - b) * 320.0, 0, None), 0.0)
    return luminance.ravel().astype(np.float64), red.ravel().astype(np.float64)


class _Runs:
    """Runs of at least ``minimum`` consecutive flagged frames, found as the frames come."""

    def __init__(self, minimum: int) -> None:
        self.minimum = minimum
        self.index = 0
        self.start: int | None = None
        self.runs: list[tuple[int, int]] = []  # (first frame, count)

    def add(self, flag: bool) -> None:
        if flag and self.start is None:
            self.start = self.index
        elif not flag and self.start is not None:
            if self.index - self.start >= self.minimum:
                self.runs.append((self.start, self.index - self.start))
            self.start = None
        self.index += 1

    def close(self) -> list[tuple[int, int]]:
        """The runs, one still open at the end included."""
        self.add(False)
        return self.runs


def measure_video(
    path: Path | str,
    options: VideoOptions | None = None,
    *,
    check_cancelled: Any = None,
) -> VideoMeasurement:
    """Probe and decode ``path``'s first video stream and measure everything QC needs.

    Parameters
    ----------
    path : Path
        The video file.
    options : VideoOptions, optional
        Full or sampled level analysis and run lengths.
    check_cancelled : callable, optional
        Called every 25 frames (raises :class:`~engine.errors.CancelledError` to stop).

    Returns
    -------
    VideoMeasurement

    Raises
    ------
    MediaInputError
        Missing, unreadable, truncated file, or no video stream.
    """
    import av
    import cv2

    path = Path(path)
    options = options or VideoOptions()
    m = probe_container(path)
    fps = m.fps or 25.0
    full_range = m.color_range == "pc"
    lv = _levels(m.bit_depth)
    if full_range:
        nominal_y, nominal_c = (0, lv["max"]), (0, lv["max"])
    else:
        nominal_y, nominal_c = (lv["y_lo"], lv["y_hi"]), (lv["c_lo"], lv["c_hi"])
    tolerance = (lv["tol_lo"], lv["tol_hi"]) if not full_range else (0, lv["max"])
    every = 1 if options.mode == "full" else max(1, round(fps / options.sample_rate))

    grid = (_GRID_WIDTH, max(1, round(_GRID_WIDTH * m.height / max(m.width, 1))))
    window = max(1, round(fps))
    flashes = _TransitionCounter(grid[0] * grid[1], window, dark_limit=_FLASH_DARK)
    red_flashes = _TransitionCounter(grid[0] * grid[1], window, dark_limit=math.inf)
    black_level = nominal_y[0] + _BLACK_LEVEL * (nominal_y[1] - nominal_y[0])
    black = _Runs(max(1, math.ceil(options.black_min_seconds * fps)))
    # A frozen run of n repeated frames shows one picture for n + 1 frames.
    frozen = _Runs(max(1, math.ceil(options.frozen_min_seconds * fps) - 1))
    previous_thumb: np.ndarray | None = None
    scale8 = 1 << (m.bit_depth - 8)

    y_min, y_max, c_min, c_max = lv["max"] + 1, -1, lv["max"] + 1, -1
    worst_y = worst_c = -1.0
    index = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        if m.width * m.height >= 1280 * 720:  # threads cost more than they give on small frames
            stream.thread_type = "AUTO"
        if options.threads:
            stream.thread_count = options.threads
        try:
            for frame in container.decode(stream):
                if frame.format.name not in (
                    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                    "yuv420p10le", "yuv422p10le", "yuv444p10le",
                ):  # fmt: skip
                    picture = frame.reformat(
                        format="yuv444p" if m.bit_depth == 8 else "yuv444p10le"
                    )
                else:
                    picture = frame
                m.frame_times.append(float(frame.time) if frame.time is not None else index / fps)
                y, u, v = _planes(picture, m.bit_depth)
                if index % every == 0:
                    ylo, yhi, out_y, tol_y = _plane_stats(y, nominal_y, tolerance)
                    ulo, uhi, out_u, tol_u = _plane_stats(u, nominal_c, tolerance)
                    vlo, vhi, out_v, tol_v = _plane_stats(v, nominal_c, tolerance)
                    if ylo < y_min:
                        y_min, m.y_min_frame = ylo, index
                    if yhi > y_max:
                        y_max, m.y_max_frame = yhi, index
                    if min(ulo, vlo) < c_min:
                        c_min, m.c_min_frame = min(ulo, vlo), index
                    if max(uhi, vhi) > c_max:
                        c_max, m.c_max_frame = max(uhi, vhi), index
                    out_c, tol_c = out_u + out_v, tol_u + tol_v
                    pct_y = 100.0 * out_y / y.size
                    pct_c = 100.0 * out_c / (u.size + v.size)
                    if pct_y > worst_y:
                        worst_y, m.y_outside_nominal_frame = pct_y, index
                    if pct_c > worst_c:
                        worst_c, m.c_outside_nominal_frame = pct_c, index
                    share_y = 100.0 * tol_y / y.size
                    share_c = 100.0 * tol_c / (u.size + v.size)
                    if share_y > m.y_outside_tolerance_max_pct:
                        m.y_outside_tolerance_max_pct, m.y_outside_tolerance_frame = share_y, index
                    if share_c > m.c_outside_tolerance_max_pct:
                        m.c_outside_tolerance_max_pct, m.c_outside_tolerance_frame = share_c, index
                    m.frames_level_checked += 1
                    if tol_y or tol_c:
                        m.frames_outside_tolerance += 1
                        if m.first_outside_tolerance_frame is None:
                            m.first_outside_tolerance_frame = index
                            mask = (y < tolerance[0]) | (y > tolerance[1])
                            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
                            if rows.size:
                                m.illegal_region = (
                                    int(cols[0]),
                                    int(rows[0]),
                                    int(cols[-1] - cols[0] + 1),
                                    int(rows[-1] - rows[0] + 1),
                                )
                thumb = cv2.resize(y, _THUMB, interpolation=cv2.INTER_AREA)
                luminance, red = _cells_rgb(thumb, u, v, grid=grid, lv=lv, full=full_range)
                rate = flashes.update(luminance)
                if rate > m.max_flashes_per_second:
                    m.max_flashes_per_second, m.max_flash_frame = rate, index
                if rate > FLASH_LIMIT and m.first_flash_fail_frame is None:
                    m.first_flash_fail_frame = index
                rate = red_flashes.update(red)
                if rate > m.max_red_flashes_per_second:
                    m.max_red_flashes_per_second, m.max_red_flash_frame = rate, index
                if rate > FLASH_LIMIT and m.first_red_flash_fail_frame is None:
                    m.first_red_flash_fail_frame = index
                black.add(
                    float(np.count_nonzero(thumb <= black_level)) / thumb.size >= _BLACK_RATIO
                )
                if previous_thumb is not None:
                    diff = cv2.absdiff(thumb, previous_thumb)
                    frozen.add(float(diff.mean()) / scale8 < _FROZEN_DIFF)
                else:
                    frozen.add(False)
                previous_thumb = thumb
                index += 1
                if check_cancelled is not None and index % 25 == 0:
                    check_cancelled()
        except av.error.FFmpegError as err:
            raise MediaInputError(
                path,
                f"decoding stopped at frame {index} ({err}); the file is damaged or truncated: "
                "export or copy it again",
            ) from err
    if index == 0:
        raise MediaInputError(path, "no video frame could be decoded; the file is damaged")
    m.frames = index
    m.y_min, m.y_max, m.c_min, m.c_max = y_min, y_max, c_min, c_max
    m.y_outside_nominal_max_pct = max(worst_y, 0.0)
    m.c_outside_nominal_max_pct = max(worst_c, 0.0)
    m.black_runs = black.close()
    m.frozen_runs = [(start - 1, count + 1) for start, count in frozen.close()]
    log.debug("measured %s: %d frames", path, index)
    return m
