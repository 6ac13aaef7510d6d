"""``apex-director qa MEDIA``: delivery QC of a video, a still or a sound file.

Exit codes: 0 every check passed, 1 a check failed (the report says which, where and by
how much), 2 bad input (missing, truncated or unreadable file; unknown standard).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def register(subparsers: Any) -> None:
    """Add the ``qa`` command."""
    parser = subparsers.add_parser(
        "qa",
        help="check a video, still or sound file for delivery (levels, flashes, loudness...)",
        description="Check MEDIA: for a video its format, colour tags, frame rate, GOP, "
        "audio/video length, luma/chroma levels, black and frozen frames, flashes and "
        "loudness; for a still its resolution, sharpness, noise, exposure, banding, "
        "blocking and colour cast; for a sound file its loudness and true peak.  "
        "Exit 0 when it passes, 1 when a check fails, 2 on bad input.  "
        "See docs/quality-control.md.",
    )
    parser.add_argument("media", type=Path, help="the file to check")
    parser.add_argument(
        "--standard",
        action="append",
        default=None,
        metavar="NAME",
        help="also hold the file to a standard (repeatable): ebu_r128, atsc_a85, ebu_r103, "
        "web; for stills a delivery size: draft, web, hd, broadcast, uhd, cinema or WxH",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the full report as JSON ('-' for standard output)",
    )
    parser.add_argument(
        "--analysis",
        choices=("full", "sampled"),
        default=None,
        help="video levels on every frame (full) or 4 frames per second (sampled); "
        "default: the config's qa.video_analysis",
    )
    parser.set_defaults(handler=run)


def _print_items(compliance: Any) -> None:
    for result in compliance.standards:
        print(f"{result.standard}: {'pass' if result.passed else 'FAIL'} ({result.title})")
        for item in result.items:
            mark = "ok  " if item.passed else "FAIL"
            note = f" — {item.message}" if item.message and not item.passed else ""
            print(f"  {mark} {item.check}: {item.measured}{item.unit} (limit {item.limit}){note}")


def _analysis_mode(args: argparse.Namespace) -> str:
    if args.analysis is not None:
        return str(args.analysis)
    from engine.cli import _load_config

    config = _load_config(args.config)
    return str(config["qa"]["video_analysis"])  # type: ignore[index]


def _kind(path: Path) -> str:
    import av

    from engine.errors import MediaInputError

    if not path.exists():
        raise MediaInputError(path, "file not found; check the path")
    if path.is_dir():
        raise MediaInputError(path, "is a folder; give a media file")
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        return "image"
    try:
        with av.open(str(path)) as container:
            if container.streams.video:
                return "video"
            if container.streams.audio:
                return "audio"
    except av.error.FFmpegError as err:
        raise MediaInputError(
            path,
            f"cannot be opened as media ({err}); the file may be truncated or not a video; "
            "export it again",
        ) from err
    raise MediaInputError(path, "has neither video nor audio; give a media file")


def run(args: argparse.Namespace) -> int:
    """Check ``args.media``; print the verdict and the problems; 0 pass, 1 fail."""
    import json

    from engine.atomic_files import atomic_write_text
    from engine.output_paths import check_output_path
    from engine.qa import QualityValidator, VideoOptions, check_standard_names

    to_stdout = args.json is not None and str(args.json) == "-"
    if args.json is not None and not to_stdout:
        check_output_path(args.json, what="JSON report", extensions=(".json",))
    path = Path(args.media)
    kind = _kind(path)
    compliance: Any = None
    if kind == "image":
        validator = QualityValidator()
        report = validator.validate_image(path, args.standard)
        data = report.to_dict()
        passed = report.passed
        lines = [f"{path.name}: {report.summary()}"]
    else:
        names = check_standard_names(args.standard) if args.standard else None
        validator = QualityValidator(VideoOptions(mode=_analysis_mode(args)))
        if kind == "video":
            report = validator.validate_video(path, standards=names)
            data = report.to_dict()
            compliance = report.compliance
            # Without --standard the technical checks decide; named standards must pass too.
            passed = report.passed and (
                names is None or all(compliance.get(n).passed for n in names)  # type: ignore[union-attr]
            )
            lines = [f"{path.name}: {report.summary()}"]
        else:
            compliance = validator.check_broadcast_standards(path, names or ("ebu_r128",))
            data = compliance.to_dict()
            passed = compliance.compliant
            lines = [f"{path.name}: {compliance.summary()}"]
    if to_stdout:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        if args.json is not None:
            atomic_write_text(args.json, json.dumps(data, indent=2) + "\n")
        for line in lines:
            print(line)
        if kind != "audio":
            for issue in report.issues:
                where = (
                    f" [frame {issue.frame}, {issue.time:.2f} s]"
                    if issue.frame is not None and issue.time is not None
                    else ""
                )
                print(f"  {issue.severity}: {issue.check}: {issue.message}{where}")
            for tip in report.recommendations:
                print(f"  -> {tip}")
        if kind == "audio" or (kind == "video" and args.standard):
            _print_items(compliance)
        elif kind == "video":
            verdict = "yes" if report.broadcast_compliant else "no"
            print(f"  broadcast compliant (EBU R 128 + R 103): {verdict} (--standard for items)")
    return 0 if passed else 1
