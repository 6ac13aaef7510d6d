"""Render throughput on the reference timeline: our engine against the encode-only floor,
a plain numpy + OpenCV loop, MoviePy and ffmpeg's own filtergraph, in one run.

The reference timeline: 10 stills at 1920x1080 (procedural, written as PNG first; every
contender reads the same files), 2.0 s each, a 1.00 -> 1.10 zoom on each, 0.5 s
crossfades centred on the cuts, 600 frames at 30 fps, x264 ``veryfast`` CRF 18, yuv420p.

Contenders (frames per second, and the ratio to the floor; the target is ours >= 0.85):

- *floor*: every frame composed in advance into memory by our compositor, exactly as
  ours hands it to the encoder (BT.709 I420 planes, see ``engine/assembly/yuv.py``), then
  only ``VideoWriter`` (x264) with the same settings;
- *floor, RGB frames*: the same pictures as RGB arrays, encoded through ``VideoWriter``'s
  RGB input (swscale RGB -> yuv420p, then x264): the floor before issue 4's I420 path,
  for comparison;
- *ours, video*: ``VideoWriter`` fed by ``_ahead(_frames(...))``, as one segment: the
  compositor thread (composing on I420 planes) overlapping the encoder;
- *ours, full*: ``compose_video`` itself: PNG loading, compositing, encoding in 4 s
  segments, the AAC audio track (a 20 s tone) and the join;
- *numpy + OpenCV loop*: a straightforward serial loop (warp, float blend, encode) with
  PyAV and the same x264 options;
- *MoviePy* (``pip install -e .[bench]``): ``ImageClip`` + ``Resize`` zoom +
  ``CrossFadeIn`` in a ``CompositeVideoClip``, written with the same x264 options;
- *ffmpeg filtergraph*: ``zoompan`` + ``xfade`` over the PNGs in the ffmpeg CLI, when
  ``ffmpeg`` is on the PATH.

The floor and ours are run ``--repeat`` times, interleaved, and the median is reported:
these machines are shared, so compare the ratios, not the seconds.  CPU seconds per frame
(user + system, all threads and child processes) are printed beside each figure; on a
machine where the encoder alone keeps every core busy, ours / floor can be no better than
floor CPU / ours CPU.

    .venv/bin/python benchmarks/render_throughput.py
    .venv/bin/python benchmarks/render_throughput.py --frames 120 --width 640 --height 360
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import logging
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import wave
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from engine.assembly.compose import StillCache, _ahead, _frames, compose_video
from engine.assembly.encoder import EncodeSettings, VideoWriter
from engine.assembly.timeline import Timeline
from engine.generation.procedural import ProceduralBackend
from engine.generation.types import StillRequest
from engine.planning.shots import Shot, ShotList

SHOTS = 10
FPS = 30
ZOOM = 0.10
CROSSFADE = 0.5
CRF = 18
SPEED = "veryfast"
TARGET = 0.85
PROMPTS = (
    "neon city at night, rain, reflections",
    "sunset over desert dunes, warm haze",
    "deep space nebula, stars, distant planet",
    "ocean waves at dawn, soft light",
    "misty pine forest, light rays through fog",
    "abstract golden light, flowing ribbons",
    "snowy mountains under the moon, cold blue",
    "fire and embers, dark smoke, glowing sparks",
    "city skyline at dusk, neon signs",
    "galaxy over a calm lake, starry",
)


@dataclass(frozen=True)
class Result:
    name: str
    frames: int
    seconds: float
    cpu: float
    note: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def _clock(box: list[float]) -> Iterator[None]:
    gc.collect()
    wall, cpu = time.perf_counter(), _cpu()
    yield
    box[:] = [time.perf_counter() - wall, _cpu() - cpu]


# -- the reference timeline ----------------------------------------------------------------


def reference_shots(frames: int) -> ShotList:
    """10 shots of equal length (2.0 s at 600 frames), zooming in, crossfading into each."""
    duration = frames / FPS
    length = duration / SHOTS
    shots = tuple(
        Shot(
            index=i,
            start=i * length,
            end=(i + 1) * length,
            start_bar=i + 1,
            start_beat=1,
            section="verse",
            section_index=i,
            energy=0.7,
            prompt=PROMPTS[i % len(PROMPTS)],
            seed=1000 + i,
            transition_in="crossfade" if i > 0 else "cut",
            motion="zoom_in",
        )
        for i in range(SHOTS)
    )
    return ShotList(shots=shots, duration=duration, tempo=120.0)


def write_stills(shots: ShotList, folder: Path, width: int, height: int) -> list[Path]:
    backend = ProceduralBackend()
    paths = []
    for shot in shots:
        rgb = backend.generate(
            StillRequest(prompt=shot.prompt, seed=shot.seed, width=width, height=height, energy=0.7)
        )
        path = folder / f"still_{shot.index:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def read_still(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def write_tone(path: Path, seconds: float, rate: int = 48000) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    mono = 0.2 * np.sin(2 * np.pi * 220.0 * t)
    pcm = (np.stack([mono, mono]) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.T.tobytes())
    return path


# -- contenders ----------------------------------------------------------------------------


def run_floor(
    frames: list[np.ndarray],
    total: int,
    out: Path,
    settings: EncodeSettings,
    name: str = "floor: encode only",
) -> Result:
    box: list[float] = []
    with _clock(box), VideoWriter(out, settings) as writer:
        for i in range(total):
            writer.write(frames[i % len(frames)])
    return Result(name, total, *box)


def run_ours_video(
    shots: ShotList, stills: list[Path], out: Path, settings: EncodeSettings
) -> Result:
    timeline = Timeline(shots, fps=float(settings.fps), crossfade_seconds=CROSSFADE)
    box: list[float] = []
    with _clock(box), VideoWriter(out, settings) as writer:
        cache = StillCache(lambda i: read_still(stills[i]))
        size = (settings.width, settings.height)
        for image in _ahead(_frames(shots, timeline, cache, ZOOM, size=size)):
            writer.write(image)
    return Result("ours, video only", timeline.frame_count, *box)


def run_ours_full(
    shots: ShotList, stills: list[Path], audio: Path, work: Path, settings: EncodeSettings
) -> Result:
    box: list[float] = []
    with _clock(box):
        stats = compose_video(
            shots,
            lambda i: read_still(stills[i]),
            output_path=work / "ours_full.mp4",
            audio_path=audio,
            work_dir=work / "segments",
            settings=settings,
            crossfade_seconds=CROSSFADE,
            motion_amount=ZOOM,
        )
    return Result("ours, compose_video", stats.frames, *box)


def run_plain_loop(stills: list[Path], total: int, out: Path, width: int, height: int) -> Result:
    """What one would write first: warp, blend in float, encode, one frame after another."""
    import av

    length = total / SHOTS
    fade = CROSSFADE * FPS
    box: list[float] = []
    with _clock(box), av.open(str(out), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(CRF), "preset": SPEED}
        images = [read_still(p) for p in stills]
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0

        def zoomed(shot: int, frame: int) -> np.ndarray:
            s = 1.0 + ZOOM * min(1.0, max(0.0, (frame - shot * length) / length))
            m = np.array([[s, 0, cx - s * cx], [0, s, cy - s * cy]])
            return cv2.warpAffine(images[shot], m, (width, height), flags=cv2.INTER_LINEAR)

        for frame in range(total):
            shot = min(SHOTS - 1, int(frame // length))
            picture = zoomed(shot, frame).astype(np.float32)
            for other in (shot - 1, shot + 1):
                cut = max(shot, other) * length
                w = (frame - (cut - fade / 2)) / fade
                if 0 <= other < SHOTS and 0.0 <= w < 1.0:
                    w = w if other > shot else 1.0 - w
                    picture = picture * (1 - w) + zoomed(other, frame).astype(np.float32) * w
            rgb = np.clip(picture + 0.5, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return Result("numpy + OpenCV loop", total, *box)


def run_moviepy(stills: list[Path], total: int, out: Path, width: int, height: int) -> Result:
    """MoviePy 2.x: each clip spans its shot plus half a crossfade on each side."""
    from moviepy import CompositeVideoClip, ImageClip, vfx

    duration = total / FPS
    length = duration / SHOTS
    box: list[float] = []
    with _clock(box):
        clips = []
        for i, path in enumerate(stills):
            start = max(0.0, i * length - CROSSFADE / 2)
            end = min(duration, (i + 1) * length + CROSSFADE / 2)
            shot_start = i * length
            clip = ImageClip(str(path)).with_duration(end - start).with_start(start)
            if i > 0:
                clip = clip.with_effects([vfx.CrossFadeIn(CROSSFADE)])

            def scale(t: float, offset: float = start - shot_start) -> float:
                return 1.0 + ZOOM * min(1.0, max(0.0, (t + offset) / length))

            clips.append(clip.resized(scale).with_position("center"))
        video = CompositeVideoClip(clips, size=(width, height)).with_duration(duration)
        video.write_videofile(
            str(out),
            fps=FPS,
            codec="libx264",
            preset=SPEED,
            audio=False,
            ffmpeg_params=["-crf", str(CRF), "-pix_fmt", "yuv420p"],
            logger=None,
        )
        video.close()
    return Result("MoviePy", _count_frames(out), *box)


def ffmpeg_command(stills: list[Path], total: int, out: Path, width: int, height: int) -> list[str]:
    """``zoompan`` on each looped still, chained ``xfade``s centred on the cuts."""
    duration = total / FPS
    length = duration / SHOTS
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    graph = []
    for i, path in enumerate(stills):
        span = length + (CROSSFADE / 2 if i in (0, SHOTS - 1) else CROSSFADE)
        n = round(span * FPS)
        first = max(0.0, i * length - CROSSFADE / 2)  # clip time 0 in song time
        # zoom = 1 + ZOOM * shot progress, with the clip's frame counter `on`.
        progress = f"clip(({first:.6f}+on/{FPS}-{i * length:.6f})/{length:.6f},0,1)"
        args += ["-loop", "1", "-framerate", str(FPS), "-t", f"{n / FPS:.6f}", "-i", str(path)]
        graph.append(
            f"[{i}:v]zoompan=z='1+{ZOOM}*{progress}':x='iw/2-(iw/zoom/2)':"
            f"y='ih/2-(ih/zoom/2)':d=1:s={width}x{height}:fps={FPS},setsar=1[z{i}]"
        )
    last = "z0"
    for i in range(1, len(stills)):
        offset = i * length - CROSSFADE / 2
        graph.append(
            f"[{last}][z{i}]xfade=transition=fade:duration={CROSSFADE}:offset={offset:.6f}[x{i}]"
        )
        last = f"x{i}"
    args += ["-filter_complex", ";".join(graph), "-map", f"[{last}]"]
    args += ["-c:v", "libx264", "-preset", SPEED, "-crf", str(CRF), "-pix_fmt", "yuv420p"]
    args += ["-r", str(FPS), "-frames:v", str(total), "-an", str(out)]
    return args


def run_ffmpeg(stills: list[Path], total: int, out: Path, width: int, height: int) -> Result:
    command = ffmpeg_command(stills, total, out, width, height)
    box: list[float] = []
    with _clock(box):
        subprocess.run(command, check=True)
    return Result("ffmpeg filtergraph", _count_frames(out), *box)


def _count_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.demux(container.streams.video[0]) if _.dts is not None)


# -- report --------------------------------------------------------------------------------


def _median(name: str, results: list[Result], note: str = "") -> Result:
    seconds = statistics.median(r.seconds for r in results)
    cpu = statistics.median(r.cpu for r in results)
    runs = ", ".join(f"{r.fps:.2f}" for r in results)
    notes = [f"median of {len(results)}: {runs} fps"] if len(results) > 1 else []
    notes += [note] if note else []
    return Result(name, results[0].frames, seconds, cpu, "; ".join(notes))


def _line(result: Result, floor: Result) -> str:
    return (
        f"{result.name:<26}{result.frames:>7}{result.seconds:>9.2f}{result.fps:>8.2f}"
        f"{result.fps / floor.fps:>7.2f}{result.cpu / result.frames * 1000:>10.1f}"
        f"  {result.note}"
    ).rstrip()


def run_compose_only(shots: ShotList, stills: list[Path], size: tuple[int, int]) -> Result:
    timeline = Timeline(shots, fps=FPS, crossfade_seconds=CROSSFADE)
    box: list[float] = []
    with _clock(box):
        cache = StillCache(lambda i: read_still(stills[i]))
        deque(_frames(shots, timeline, cache, ZOOM, size=size), maxlen=0)  # render, discard
    return Result("compose only (no encoder)", timeline.frame_count, *box)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="frames in all (600)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--repeat", type=int, default=3, help="runs of floor and ours (3)")
    parser.add_argument(
        "--floor-frames",
        type=int,
        default=0,
        help="distinct frames the floor holds in memory, cycled (default: all)",
    )
    parser.add_argument("--cv2-threads", type=int, default=None, help="cv2.setNumThreads(N)")
    parser.add_argument(
        "--no-rgb-floor", action="store_true", help="skip the RGB-input floor (saves memory)"
    )
    parser.add_argument(
        "--skip", default="", help="comma-separated: full,plain,moviepy,ffmpeg,compose"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.frames < SHOTS * 4 or args.width % 2 or args.height % 2:
        parser.error("--frames must be >= 40 and the size even")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.cv2_threads is not None:
        cv2.setNumThreads(args.cv2_threads)

    shots = reference_shots(args.frames)
    settings = EncodeSettings(
        width=args.width, height=args.height, fps=Fraction(FPS), crf=CRF, speed=SPEED
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="apex-throughput-") as tmp:
        work = Path(tmp)
        stills = write_stills(shots, work, args.width, args.height)
        audio = write_tone(work / "tone.wav", shots.duration)

        # The floor's frames: exactly ours, composed before the clock starts.
        timeline = Timeline(shots, fps=FPS, crossfade_seconds=CROSSFADE)
        cache = StillCache(lambda i: read_still(stills[i]))
        held = min(args.floor_frames or args.frames, args.frames)
        size = (args.width, args.height)
        frames = list(_frames(shots, timeline, cache, ZOOM, range(held), size=size))
        held_gb = sum(f.nbytes for f in frames) / 1e9
        rgb_frames = (
            [] if args.no_rgb_floor else list(_frames(shots, timeline, cache, ZOOM, range(held)))
        )

        floors: list[Result] = []
        rgb_floors: list[Result] = []
        videos: list[Result] = []
        fulls: list[Result] = []
        for _ in range(args.repeat):
            floors.append(run_floor(frames, args.frames, work / "floor.mp4", settings))
            videos.append(run_ours_video(shots, stills, work / "ours.mp4", settings))
            if rgb_frames:
                rgb_floors.append(
                    run_floor(rgb_frames, args.frames, work / "rgb.mp4", settings, "RGB floor")
                )
            if "full" not in skip:
                fulls.append(run_ours_full(shots, stills, audio, work, settings))
        del frames, rgb_frames, cache
        gc.collect()

        others: list[Result] = []
        runners: list[tuple[str, Callable[[], Result]]] = [
            ("compose", lambda: run_compose_only(shots, stills, size)),
            ("plain", lambda: run_plain_loop(stills, args.frames, work / "plain.mp4",
                                             args.width, args.height)),
            ("moviepy", lambda: run_moviepy(stills, args.frames, work / "moviepy.mp4",
                                            args.width, args.height)),
            ("ffmpeg", lambda: run_ffmpeg(stills, args.frames, work / "ffmpeg.mp4",
                                          args.width, args.height)),
        ]  # fmt: skip
        for key, runner in runners:
            if key in skip:
                continue
            if key == "moviepy" and importlib.util.find_spec("moviepy") is None:
                print("MoviePy: not installed (pip install -e .[bench]); skipped")
                continue
            if key == "ffmpeg" and shutil.which("ffmpeg") is None:
                print("ffmpeg filtergraph: no ffmpeg on the PATH; skipped")
                continue
            others.append(runner())

    floor = _median(
        "floor: encode only",
        floors,
        f"{held} distinct I420 frames held ({held_gb:.1f} GB)",
    )
    video = _median("ours, video only", videos)
    table = [floor, video]
    if rgb_floors:
        table.insert(1, _median("floor, RGB frames", rgb_floors, "swscale RGB -> yuv420p + x264"))
    if fulls:
        table.append(_median("ours, compose_video", fulls, "incl. PNG loads, audio, join"))
    table += others

    print(
        f"reference timeline: {SHOTS} stills {args.width}x{args.height}, zoom 1.00->"
        f"{1 + ZOOM:.2f}, {CROSSFADE} s crossfades, {args.frames} frames at {FPS} fps, "
        f"x264 {SPEED} CRF {CRF}; cv2 threads {cv2.getNumThreads()}, {_cores()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'contender':<26}{'frames':>7}{'wall s':>9}{'fps':>8}{'/floor':>7}{'CPU ms/f':>10}")
    for result in table:
        print(_line(result, floor))
    # Pairs run back to back see the same load; their ratios vary less than the fps.
    pairs = [v.fps / f.fps for f, v in zip(floors, videos, strict=True)]
    ratio = statistics.median(pairs)
    verdict = "meets" if ratio >= TARGET else "misses"
    print(
        f"ours (video only) / floor, median of back-to-back pairs "
        f"({', '.join(f'{r:.2f}' for r in pairs)}) = {ratio:.2f}: "
        f"{verdict} the target of >= {TARGET}"
    )
    if fulls:
        pairs = [v.fps / f.fps for f, v in zip(floors, fulls, strict=True)]
        print(
            f"ours (compose_video) / floor, same pairing "
            f"({', '.join(f'{r:.2f}' for r in pairs)}) = {statistics.median(pairs):.2f}"
        )
    if rgb_floors:
        pairs = [v.fps / f.fps for f, v in zip(rgb_floors, videos, strict=True)]
        print(
            f"ours (video only) / RGB-input floor, same pairing "
            f"({', '.join(f'{r:.2f}' for r in pairs)}) = {statistics.median(pairs):.2f}"
        )
    print(
        f"CPU per frame, floor / ours (video only) = {floor.cpu / video.cpu:.2f}: the ratio "
        f"ours reaches where the encoder alone already keeps every free core busy"
    )
    print(f"benchmark wall time {time.perf_counter() - started:.0f} s")


def _cores() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
