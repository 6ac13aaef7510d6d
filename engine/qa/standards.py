"""Delivery standards as lists of pass/fail items, evaluated on measured values.

- ``ebu_r128``: integrated loudness -23 LUFS +/- 0.5 LU, true peak <= -1 dBTP.
- ``atsc_a85``: integrated loudness -24 LKFS +/- 2 LU, true peak <= -2 dBTP.
- ``ebu_r103``: limited-range video; Y and Cb/Cr within the tolerance 5-246 (8-bit; x4
  for 10-bit) except over at most 1 % of a frame's area (the standard's allowance for
  small excursions).  Excursions between nominal (Y 16-235, C 16-240) and tolerance are
  legal; their share is measured and reported (see docs/decisions/ on why this is not
  an item).
- ``web``: integrated loudness -14 LUFS +/- 1 LU, true peak <= -1 dBTP, H.264 High
  profile, yuv420p, BT.709 primaries/transfer/matrix in limited range, constant frame
  rate, MP4/MOV, keyframes at least every 2 s, audio and video of the same length.
"""

from __future__ import annotations

from engine.qa.audio_checks import AudioMeasurement
from engine.qa.report import ComplianceItem, StandardResult
from engine.qa.video_checks import VideoMeasurement

__all__ = ["STANDARDS", "av_limit", "evaluate_standard"]

STANDARDS: dict[str, str] = {
    "ebu_r128": "EBU R 128 loudness (-23 LUFS, -1 dBTP)",
    "atsc_a85": "ATSC A/85 loudness (-24 LKFS, -2 dBTP)",
    "ebu_r103": "EBU R 103 video signal levels",
    "web": "Web delivery (-14 LUFS, H.264 High, yuv420p, BT.709)",
}


def av_limit(video: VideoMeasurement) -> float:
    """Largest accepted audio/video length difference: one video frame plus one AAC frame."""
    return (1.0 / video.fps if video.fps else 0.04) + 1024 / 48000


def _loudness(
    audio: AudioMeasurement | None, *, target: float, tolerance: float, max_tp: float, unit: str
) -> list[ComplianceItem]:
    if audio is None:
        return [
            ComplianceItem(
                check="audio_present",
                passed=False,
                measured="no audio stream",
                limit="an audio stream",
                message="there is no audio to measure",
            )
        ]
    deviation = audio.integrated_lufs - target
    return [
        ComplianceItem(
            check="integrated_loudness",
            passed=abs(deviation) <= tolerance,
            measured=round(audio.integrated_lufs, 2),
            limit=f"{target:g} +/- {tolerance:g} {unit}",
            unit=f" {unit}",
            message=f"{deviation:+.1f} LU from the target"
            + ("" if abs(deviation) <= tolerance else f"; apply {-deviation:+.1f} dB of gain"),
        ),
        ComplianceItem(
            check="true_peak",
            passed=audio.true_peak_dbtp <= max_tp,
            measured=round(audio.true_peak_dbtp, 2),
            limit=f"<= {max_tp:g} dBTP",
            unit=" dBTP",
            message=""
            if audio.true_peak_dbtp <= max_tp
            else "use a true-peak limiter or lower the gain",
        ),
    ]


def _no_video() -> list[ComplianceItem]:
    return [
        ComplianceItem(
            check="video_present",
            passed=False,
            measured="no video stream",
            limit="a video stream",
            message="there is no picture to check",
        )
    ]


def _r103(video: VideoMeasurement | None) -> list[ComplianceItem]:
    if video is None:
        return _no_video()
    scale = 1 << (video.bit_depth - 8)
    lo, hi = 5 * scale, 246 * scale
    return [
        ComplianceItem(
            check="limited_range",
            passed=video.color_range != "pc",
            measured=video.color_range,
            limit="tv (limited) range",
            message="" if video.color_range != "pc" else "re-encode in limited (tv) range",
        ),
        ComplianceItem(
            check="luma_within_tolerance",
            passed=video.y_outside_tolerance_max_pct <= 1.0,
            measured=round(video.y_outside_tolerance_max_pct, 3),
            limit=f"<= 1 % of a frame outside {lo}-{hi}",
            unit=" %",
            message=f"Y {video.y_min}-{video.y_max}; worst frame {video.y_outside_tolerance_frame}",
        ),
        ComplianceItem(
            check="chroma_within_tolerance",
            passed=video.c_outside_tolerance_max_pct <= 1.0,
            measured=round(video.c_outside_tolerance_max_pct, 3),
            limit=f"<= 1 % of a frame outside {lo}-{hi}",
            unit=" %",
            message=f"C {video.c_min}-{video.c_max}; worst frame {video.c_outside_tolerance_frame}",
        ),
    ]


def _web(video: VideoMeasurement | None, audio: AudioMeasurement | None) -> list[ComplianceItem]:
    items = _loudness(audio, target=-14.0, tolerance=1.0, max_tp=-1.0, unit="LUFS")
    if video is None:
        return items + _no_video()
    tags = (video.color_primaries, video.color_transfer, video.color_space)
    items += [
        ComplianceItem(
            check="container",
            passed="mp4" in video.container or "mov" in video.container,
            measured=video.container,
            limit="MP4 or MOV",
        ),
        ComplianceItem(
            check="codec_profile",
            passed=video.codec == "h264" and video.profile == "High",
            measured=f"{video.codec} {video.profile}".strip(),
            limit="h264 High",
        ),
        ComplianceItem(
            check="pixel_format",
            passed=video.pix_fmt == "yuv420p",
            measured=video.pix_fmt,
            limit="yuv420p",
        ),
        ComplianceItem(
            check="colour_tags",
            passed=tags == ("bt709", "bt709", "bt709"),
            measured="/".join(tags),
            limit="bt709/bt709/bt709 (primaries/transfer/matrix)",
            message="" if tags == ("bt709",) * 3 else "tag the stream as BT.709 when encoding",
        ),
        ComplianceItem(
            check="colour_range",
            passed=video.color_range == "tv",
            measured=video.color_range,
            limit="tv",
        ),
        ComplianceItem(
            check="constant_frame_rate",
            passed=video.constant_frame_rate,
            measured=f"{video.frame_interval_min * 1000:.2f}-{video.frame_interval_max * 1000:.2f}",
            limit="one frame interval",
            unit=" ms",
        ),
        ComplianceItem(
            check="keyframe_interval",
            passed=video.gop_max_seconds <= 2.0 + 1e-6,
            measured=round(video.gop_max_seconds, 3),
            limit="<= 2 s",
            unit=" s",
        ),
    ]
    if video.audio_duration is not None:
        difference = video.audio_duration - video.video_duration
        items.append(
            ComplianceItem(
                check="av_duration",
                passed=abs(difference) <= av_limit(video),
                measured=round(difference, 3),
                limit=f"|audio - video| <= {av_limit(video):.3f} s",
                unit=" s",
            )
        )
    return items


def evaluate_standard(
    name: str, video: VideoMeasurement | None, audio: AudioMeasurement | None
) -> StandardResult:
    """The items of standard ``name`` for these measurements.

    Raises
    ------
    KeyError
        ``name`` is not in :data:`STANDARDS` (callers validate names first).
    """
    title = STANDARDS[name]
    if name == "ebu_r128":
        items = _loudness(audio, target=-23.0, tolerance=0.5, max_tp=-1.0, unit="LUFS")
    elif name == "atsc_a85":
        items = _loudness(audio, target=-24.0, tolerance=2.0, max_tp=-2.0, unit="LKFS")
    elif name == "ebu_r103":
        items = _r103(video)
    else:
        items = _web(video, audio)
    return StandardResult(standard=name, title=title, items=items)
