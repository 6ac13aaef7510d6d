"""``QualityValidator``: delivery QC of stills and videos, and broadcast compliance.

One pass measures a file (:func:`engine.qa.video_checks.measure_video` for the picture,
:func:`engine.qa.audio_checks.measure_audio` for the sound); the issues, scores and the
per-standard items are all derived from those measurements, so a render is decoded
once however many standards it is held to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import MediaInputError, ParameterError
from engine.qa.audio_checks import AudioMeasurement, measure_audio
from engine.qa.image_checks import detect_image_artifacts, validate_image
from engine.qa.report import (
    Artifact,
    BroadcastComplianceReport,
    QualityIssue,
    QualityReport,
)
from engine.qa.standards import STANDARDS, av_limit, evaluate_standard
from engine.qa.video_checks import (
    FLASH_LIMIT,
    VideoMeasurement,
    VideoOptions,
    measure_video,
    probe_container,
)

__all__ = ["QualityValidator", "check_standard_names"]

log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
_AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus"}
BROADCAST_STANDARDS = ("ebu_r128", "ebu_r103")


def check_standard_names(names: Sequence[str] | None) -> tuple[str, ...]:
    """Validate standard names; ``None`` means all of them.

    Raises
    ------
    ParameterError
        An unknown name.
    """
    if names is None:
        return tuple(STANDARDS)
    out = []
    for name in names:
        key = str(name).lower().replace("-", "_").replace(" ", "_")
        if key not in STANDARDS:
            raise ParameterError("standard", name, f"one of {', '.join(STANDARDS)}")
        if key not in out:
            out.append(key)
    return tuple(out)


def _has_audio(path: Path) -> bool:
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except av.error.FFmpegError:
        return False


class QualityValidator:
    """Quality validation and broadcast compliance checking.

    Parameters
    ----------
    video_options : VideoOptions, optional
        Full or sampled level analysis, black/frozen run lengths, decoder threads.
    check_cancelled : callable, optional
        Called during long decodes; raise :class:`~engine.errors.CancelledError` to stop.

    Examples
    --------
    >>> validator = QualityValidator()
    >>> report = validator.validate_video(Path("render.mp4"))  # doctest: +SKIP
    >>> report.passed, report.summary()  # doctest: +SKIP
    """

    def __init__(
        self,
        video_options: VideoOptions | None = None,
        *,
        check_cancelled: Callable[[], None] | None = None,
    ) -> None:
        self.video_options = video_options or VideoOptions()
        self.check_cancelled = check_cancelled

    # -- stills --------------------------------------------------------------------
    def validate_image(
        self, image_path: Path | str | np.ndarray, standards: list[str] | None = None
    ) -> QualityReport:
        """Validate a still against delivery targets (see :func:`validate_image`)."""
        return validate_image(image_path, standards)

    def detect_artifacts(
        self, image_path: Path | str | np.ndarray, *, samples: int = 8
    ) -> list[Artifact]:
        """Located artifacts of a still, or of ``samples`` evenly spaced frames of a video.

        Video artifacts carry their frame index and time.

        Raises
        ------
        MediaInputError
            Unreadable or empty input.
        """
        if isinstance(image_path, np.ndarray) or Path(image_path).suffix.lower() in (
            _IMAGE_SUFFIXES
        ):
            return detect_image_artifacts(image_path)
        return self._video_artifacts(Path(image_path), samples)

    def _video_artifacts(self, path: Path, samples: int) -> list[Artifact]:
        import av

        probe = probe_container(path)
        wanted = set(np.linspace(0, max(probe.frames - 1, 0), max(1, samples)).round().astype(int))
        found: list[Artifact] = []
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            try:
                for index, frame in enumerate(container.decode(stream)):
                    if index in wanted:
                        rgb = frame.to_ndarray(format="rgb24")
                        found += detect_image_artifacts(
                            rgb, frame=index, time=float(frame.time or 0.0)
                        )
            except av.error.FFmpegError as err:
                raise MediaInputError(path, f"decoding failed ({err}); export it again") from err
        return found

    # -- video -----------------------------------------------------------------------
    def measure(self, path: Path | str) -> tuple[VideoMeasurement | None, AudioMeasurement | None]:
        """Measure the picture (if any) and the sound (if any) of ``path``.

        Raises
        ------
        MediaInputError
            Missing or unreadable file, or one with neither video nor audio.
        """
        path = Path(path)
        video: VideoMeasurement | None = None
        try:
            video = measure_video(path, self.video_options, check_cancelled=self.check_cancelled)
        except MediaInputError as err:
            if "no video stream" not in str(err):
                raise
            video = None
        audio = None
        if (video is not None and video.has_audio) or (video is None and _has_audio(path)):
            audio = measure_audio(path)
        if video is None and audio is None:
            raise MediaInputError(path, "has neither video nor audio; give a media file")
        return video, audio

    def validate_video(
        self, video_path: Path | str, *, standards: Sequence[str] | None = None
    ) -> QualityReport:
        """Validate a video's format, timing, levels, flashes, black/frozen frames and sound.

        Parameters
        ----------
        video_path : Path
            The video file.
        standards : list of str, optional
            Standards whose items are reported in ``report.compliance`` (default: EBU R 128
            and EBU R 103, which also decide ``broadcast_compliant``).

        Returns
        -------
        QualityReport
            ``passed`` is False when a check failed; ``issues`` say what, where and by how
            much.

        Raises
        ------
        MediaInputError
            Missing, truncated or unreadable file; a file without a video stream (an
            audio-only file included).
        """
        path = Path(video_path)
        started = time.perf_counter()
        names = check_standard_names(standards or BROADCAST_STANDARDS)
        video = measure_video(path, self.video_options, check_cancelled=self.check_cancelled)
        audio = measure_audio(path) if video.has_audio else None
        report = build_video_report(path, video, audio, names)
        log.info("QC of %s in %.2f s: %s", path, time.perf_counter() - started, report.summary())
        return report

    def check_broadcast_standards(
        self, content_path: Path | str, standards: Sequence[str] | None = None
    ) -> BroadcastComplianceReport:
        """Hold a file to broadcast and delivery standards, item by item.

        Parameters
        ----------
        content_path : Path
            A video, or an audio file (video items then fail with "no video stream").
        standards : list of str, optional
            Any of ``ebu_r128``, ``atsc_a85``, ``ebu_r103``, ``web`` (default: all).

        Raises
        ------
        MediaInputError
            Missing or unreadable file.
        ParameterError
            Unknown standard name.
        """
        names = check_standard_names(standards)
        video, audio = self.measure(content_path)
        return BroadcastComplianceReport(
            path=Path(content_path), standards=[evaluate_standard(n, video, audio) for n in names]
        )


def _issue(
    issues: list[QualityIssue],
    check: str,
    severity: str,
    message: str,
    **extra: Any,
) -> None:
    issues.append(QualityIssue(check=check, severity=severity, message=message, **extra))


def build_video_report(
    path: Path,
    video: VideoMeasurement,
    audio: AudioMeasurement | None,
    standards: Sequence[str] = BROADCAST_STANDARDS,
) -> QualityReport:
    """Issues, scores, artifacts and recommendations from the measurements."""
    issues: list[QualityIssue] = []
    advice: list[str] = []
    scores: dict[str, float] = {}
    artifacts: list[Artifact] = []
    t = video.time_of
    frame_box = (0, 0, video.width, video.height)

    # format
    if video.width % 2 or video.height % 2:
        _issue(
            issues,
            "resolution",
            "fail",
            f"{video.width}x{video.height} has an odd side; 4:2:0 delivery needs even sizes",
            measured=f"{video.width}x{video.height}",
            limit="even width and height",
        )
        advice.append("render at an even frame size (the presets always are)")
    if video.codec not in ("h264", "hevc", "prores", "dnxhd"):
        _issue(
            issues,
            "codec",
            "warning",
            f"codec {video.codec} is not a usual delivery codec",
            measured=video.codec,
            limit="h264, hevc, prores or dnxhd",
        )
    scores["format"] = 0.0 if video.width % 2 or video.height % 2 else 1.0

    # timing
    if not video.constant_frame_rate:
        _issue(
            issues,
            "frame_rate",
            "fail",
            f"variable frame rate: frame intervals {video.frame_interval_min * 1000:.1f}-"
            f"{video.frame_interval_max * 1000:.1f} ms",
            measured=f"{video.frame_interval_min:.4f}-{video.frame_interval_max:.4f} s",
            limit="constant",
        )
        advice.append("re-encode at a constant frame rate (e.g. ffmpeg -fps_mode cfr)")
    scores["frame_rate"] = 1.0 if video.constant_frame_rate else 0.0
    if video.declared_frames and video.frames < video.declared_frames:
        # A decoder that stops quietly on missing data, or an edit list that hides frames.
        _issue(
            issues,
            "frame_count",
            "fail",
            f"only {video.frames} of the {video.declared_frames} frames the header declares "
            "could be decoded: the file is probably truncated",
            measured=video.frames,
            limit=f"{video.declared_frames} frames",
            frame=video.frames,
        )
        advice.append("export or copy the file again")
    if video.gop_max_seconds > 5.0:
        _issue(
            issues,
            "gop",
            "warning",
            f"keyframes only every {video.gop_max_seconds:.1f} s; seeking and streaming suffer",
            measured=round(video.gop_max_seconds, 3),
            limit="<= 5 s",
        )
    scores["gop"] = 1.0 if video.gop_max_seconds <= 5.0 else 0.5
    if video.audio_duration is not None:
        difference = video.audio_duration - video.video_duration
        limit = av_limit(video)
        ok = abs(difference) <= limit
        scores["av_duration"] = 1.0 if ok else max(0.0, 1.0 - abs(difference) / (10 * limit))
        if not ok:
            longer = "audio" if difference > 0 else "video"
            _issue(
                issues,
                "av_duration",
                "fail",
                f"the {longer} is {abs(difference) * 1000:.0f} ms longer than the "
                f"{'video' if longer == 'audio' else 'audio'} "
                f"({video.audio_duration:.3f} s audio, {video.video_duration:.3f} s video)",
                measured=round(difference, 4),
                limit=f"|audio - video| <= {limit:.3f} s",
            )
            advice.append("trim the longer track or re-render so audio and video end together")
    else:
        _issue(issues, "audio", "info", "the file has no audio stream")

    # colour tags
    tags = {
        "primaries": video.color_primaries,
        "transfer": video.color_transfer,
        "matrix": video.color_space,
        "range": video.color_range,
    }
    missing = [k for k, v in tags.items() if v == "unknown"]
    not709 = [k for k in ("primaries", "transfer", "matrix") if tags[k] not in ("bt709", "unknown")]
    scores["colour_tags"] = 1.0 - len(missing) / 4.0
    if missing:
        _issue(
            issues,
            "colour_tags",
            "warning",
            f"colour tag(s) missing: {', '.join(missing)}; players will guess the colours",
            measured=tags,
            limit="bt709 primaries/transfer/matrix, tv range",
        )
        advice.append("tag the video as BT.709 when encoding (ffmpeg: -color_primaries bt709 "
                      "-color_trc bt709 -colorspace bt709 -color_range tv)")  # fmt: skip
    if not709:
        _issue(
            issues,
            "colour_tags",
            "info",
            f"not BT.709: {', '.join(f'{k}={tags[k]}' for k in not709)}",
            measured=tags,
            limit="bt709 for HD delivery",
        )

    # levels
    scale = 1 << (video.bit_depth - 8)
    full = video.color_range == "pc"
    if full:
        _issue(
            issues,
            "levels",
            "warning",
            "full-range (pc) video; broadcast and most web players expect limited (tv) range",
            measured="pc",
            limit="tv",
        )
        advice.append("re-encode in limited range (the presets always are)")
        scores["levels"] = 0.5
    else:
        lo, hi = 5 * scale, 246 * scale
        worst = max(video.y_outside_tolerance_max_pct, video.c_outside_tolerance_max_pct)
        scores["levels"] = float(np.clip(1.0 - worst / 5.0, 0.0, 1.0))
        ranges = f"Y {video.y_min}-{video.y_max}, C {video.c_min}-{video.c_max}"
        for name, pct, frame in (
            ("luma", video.y_outside_tolerance_max_pct, video.y_outside_tolerance_frame),
            ("chroma", video.c_outside_tolerance_max_pct, video.c_outside_tolerance_frame),
        ):
            if pct > 1.0:
                _issue(
                    issues,
                    f"{name}_range",
                    "fail",
                    f"illegal {name} levels: {pct:.2f} % of frame {frame} ({t(frame):.2f} s) "
                    f"lies outside {lo}-{hi} ({ranges})",
                    measured=round(pct, 3),
                    limit=f"<= 1 % of a frame outside {lo}-{hi} (EBU R 103)",
                    frame=frame,
                    time=t(frame),
                )
        first = video.first_outside_tolerance_frame
        if worst > 1.0:
            frame = (
                video.y_outside_tolerance_frame
                if video.y_outside_tolerance_max_pct >= video.c_outside_tolerance_max_pct
                else video.c_outside_tolerance_frame
            )
            artifacts.append(
                Artifact(
                    kind="illegal_level",
                    severity=float(np.clip(worst / 10.0, 0.1, 1.0)),
                    region=video.illegal_region or frame_box,
                    frame=first,
                    time=t(first),
                    description=f"{ranges}; worst frame {frame}: {worst:.2f} % outside {lo}-{hi}",
                )
            )
            advice.append(
                "legalise the levels: keep RGB within 0-255 before the limited-range "
                "conversion, or apply a broadcast-safe filter"
            )
        elif first is not None:
            _issue(
                issues,
                "levels",
                "info",
                f"small excursions outside {lo}-{hi} ({ranges}) in "
                f"{video.frames_outside_tolerance} frame(s), under R 103's 1 % area allowance",
                measured=round(worst, 3),
                limit=f"<= 1 % of a frame outside {lo}-{hi}",
                frame=first,
                time=t(first),
            )
        nominal = max(video.y_outside_nominal_max_pct, video.c_outside_nominal_max_pct)
        if nominal > 1.0:
            _issue(
                issues,
                "levels",
                "info",
                f"up to {nominal:.1f} % of a frame lies between the nominal range (Y "
                f"{16 * scale}-{235 * scale}, C {16 * scale}-{240 * scale}) and the tolerance "
                "(legal; typical of compressed near-black areas)",
                measured=round(nominal, 3),
                limit="reported only",
            )

    # flashes
    v = video
    for kind, rate, frame, first in (
        ("flash", v.max_flashes_per_second, v.max_flash_frame, v.first_flash_fail_frame),
        ("red_flash", v.max_red_flashes_per_second, v.max_red_flash_frame,
         v.first_red_flash_fail_frame),
    ):  # fmt: skip
        scores[f"{kind}es"] = float(np.clip(1.0 - max(0.0, rate - FLASH_LIMIT) / FLASH_LIMIT, 0, 1))
        if first is not None:
            word = "red flashes" if kind == "red_flash" else "flashes"
            _issue(
                issues,
                f"{kind}es",
                "fail",
                f"{word} from {t(first):.2f} s (frame {first}), up to {rate:g} within 1 s "
                f"(at {t(frame):.2f} s); more than {FLASH_LIMIT:g} per second can trigger "
                "seizures (ITU-R BT.1702, Ofcom)",
                measured=rate,
                limit=f"<= {FLASH_LIMIT:g} per second over > 1/4 of the screen",
                frame=first,
                time=t(first),
            )
            artifacts.append(
                Artifact(
                    kind=kind,
                    severity=float(min(1.0, rate / (2 * FLASH_LIMIT))),
                    region=frame_box,
                    frame=first,
                    time=t(first),
                    description=f"{rate:g} {word} per second",
                )
            )
            advice.append(
                "slow the flashing to at most 3 per second, or reduce its contrast/area "
                "(avoid dip_to_white transitions or strobing cuts on fast beats)"
            )

    # black and frozen pictures
    for kind, runs in (("black", video.black_runs), ("frozen", video.frozen_runs)):
        total = sum(n for _, n in runs)
        scores[kind] = float(np.clip(1.0 - total / max(video.frames, 1), 0.0, 1.0))
        for start, count in runs:
            seconds = count / video.fps if video.fps else 0.0
            _issue(
                issues,
                kind,
                "warning",
                f"{seconds:.2f} s of {kind} picture from {t(start) or 0.0:.2f} s (frame {start})",
                measured=round(seconds, 3),
                limit="none that long",
                frame=start,
                time=t(start),
            )
            artifacts.append(
                Artifact(
                    kind=kind,
                    severity=float(min(1.0, seconds / 5.0)),
                    region=frame_box,
                    frame=start,
                    time=t(start),
                    description=f"{seconds:.2f} s",
                )
            )
        if runs:
            advice.append(
                f"check the {kind} stretch(es): a missing still, a long fade or a stalled render"
            )

    # sound
    if audio is not None:
        scores["audio_peak"] = 1.0 if audio.true_peak_dbtp <= -1.0 else 0.5
        if audio.true_peak_dbtp > 0.0:
            _issue(
                issues,
                "true_peak",
                "warning",
                f"the audio clips: true peak {audio.true_peak_dbtp:+.1f} dBTP",
                measured=round(audio.true_peak_dbtp, 2),
                limit="<= 0 dBTP",
            )
            advice.append("lower the audio gain or use a true-peak limiter")

    compliance = BroadcastComplianceReport(
        path=path, standards=[evaluate_standard(n, video, audio) for n in standards]
    )
    weights = {"levels": 2.0, "flashes": 2.0, "red_flashes": 1.0, "av_duration": 1.5,
               "frame_rate": 1.5, "colour_tags": 1.0, "format": 1.0}  # fmt: skip
    overall = sum(scores.get(k, 1.0) * w for k, w in weights.items()) / sum(weights.values())
    others = [v for k, v in scores.items() if k not in weights]
    if others:
        overall = 0.85 * overall + 0.15 * float(np.mean(others))
    failed = any(i.severity == "fail" for i in issues)
    if failed:
        overall = min(overall, 0.5)
    broadcast = not failed and all(
        r.passed for r in compliance.standards if r.standard in BROADCAST_STANDARDS
    )
    if set(BROADCAST_STANDARDS) - set(standards):
        broadcast = broadcast and all(
            evaluate_standard(n, video, audio).passed for n in BROADCAST_STANDARDS
        )
    order = {"fail": 0, "warning": 1, "info": 2}
    issues.sort(key=lambda i: order[i.severity])
    measurements: dict[str, Any] = {"video": video.to_dict()}
    if audio is not None:
        measurements["audio"] = audio.to_dict()
    return QualityReport(
        path=path,
        media_type="video",
        overall_score=float(overall),
        broadcast_compliant=broadcast,
        issues=issues,
        recommendations=list(dict.fromkeys(advice)),
        detailed_scores=scores,
        measurements=measurements,
        artifacts=artifacts,
        compliance=compliance,
    )
