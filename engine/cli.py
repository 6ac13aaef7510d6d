"""``apex-director``: the command line.

Exit codes: 0 success, 1 internal or engine failure, 2 bad input (the message
says what to do), 130 cancelled.  A traceback is printed only with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from engine import __version__

__all__ = ["main"]

log = logging.getLogger("engine.cli")

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "apex-director" / "config.toml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apex-director",
        description="Turn a song into a beat-synced music video, on this machine.",
    )
    parser.add_argument("--version", action="version", version=f"apex-director {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"configuration file (TOML; default {default_config_path()} when it exists)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    render = sub.add_parser(
        "render",
        help="render a song to a video",
        description="Analyse AUDIO, plan one shot per phrase, make the stills and encode "
        "a beat-synced H.264/AAC video.",
    )
    render.add_argument("audio", type=Path, help="the song (wav, flac, ogg, mp3, m4a)")
    render.add_argument("-o", "--output", type=Path, required=True, help="output video (.mp4)")
    render.add_argument(
        "--preset",
        choices=("draft", "web", "high"),
        default=None,
        help="output size and quality (default from config: web = 1280x720 30 fps)",
    )
    render.add_argument(
        "--backend",
        choices=("procedural", "stills"),
        default=None,
        help="where stills come from (default procedural, or stills with --images)",
    )
    render.add_argument(
        "--images",
        type=Path,
        default=None,
        metavar="DIR",
        help="a folder of your own stills, used in name order",
    )
    render.add_argument(
        "--json-report",
        type=Path,
        default=None,
        metavar="FILE",
        help="write a JSON report of the render",
    )
    render.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where generated stills are kept for reuse",
    )
    return parser


def _setup_logging(*, debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.set_name("apex-director-cli")
    root = logging.getLogger()
    # Replace our own handler from an earlier call (main() may run more than once in a
    # process), but leave handlers that others installed.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "apex-director-cli"]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("numba", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load_config(path: Path | None) -> dict[str, object]:
    from engine.config import ConfigManager
    from engine.errors import ConfigurationError

    if path is not None and not path.exists():
        raise ConfigurationError(f"configuration file {path} not found; check the --config path")
    manager = ConfigManager(path or default_config_path())
    return manager.load_config()


def _render(args: argparse.Namespace) -> int:
    from engine.context import StageContext
    from engine.orchestrator.render_pipeline import RenderRequest, render_video
    from engine.progress import ProgressPrinter

    config = _load_config(args.config)
    backend = args.backend or ("stills" if args.images else config["render"]["backend_order"][0])  # type: ignore[index]
    if args.images is not None and backend != "stills":
        from engine.errors import ParameterError

        raise ParameterError("--images", str(args.images), "only with --backend stills")
    request = RenderRequest(
        audio_path=args.audio,
        output_path=args.output,
        preset=args.preset or config["render"]["preset"],  # type: ignore[index]
        backend=backend,
        images_dir=args.images,
        json_report=args.json_report,
        cache_dir=args.cache_dir,
    )
    printer = ProgressPrinter()
    try:
        report = render_video(request, config=config, context=StageContext(sink=printer))
    finally:
        printer.finish()
    out = report["output"]
    timings = report["timings"]
    draft = " (procedural DRAFT stills)" if report["backend"]["draft"] else ""
    print(
        f"wrote {out['path']}: {out['width']}x{out['height']} {out['fps']} fps, "
        f"{out['video_duration']:.2f} s, {len(report['shots'])} shots{draft} "
        f"in {timings['total']:.1f} s"
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by the console script)."""
    args = _parser().parse_args(argv)
    _setup_logging(debug=args.debug, quiet=args.quiet)
    from engine.errors import APEXDirectorError, CancelledError, UserInputError

    try:
        if args.command == "render":
            return _render(args)
        raise AssertionError(f"unhandled command {args.command}")  # argparse prevents this
    except CancelledError:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("cancelled (Ctrl-C); nothing was written", file=sys.stderr)
        return EXIT_CANCELLED
    except UserInputError as err:
        if args.debug:
            log.exception("bad input")
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except APEXDirectorError as err:
        if args.debug:
            log.exception("engine failure")
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as err:  # a bug: say so briefly, the traceback is behind --debug
        if args.debug:
            log.exception("internal error")
        print(
            f"error: internal error ({err.__class__.__name__}: {err}); "
            "run again with --debug and report the traceback",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
