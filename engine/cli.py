"""``apex-director``: the command line.

Exit codes: 0 success, 1 internal or engine failure, 2 bad input (the message
says what to do), 130 cancelled.  A traceback is printed only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from engine import __version__

__all__ = ["main"]

log = logging.getLogger("engine.cli")

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130

# Further commands live in their own modules (engine/cli_commands/NAME.py), each with
# ``register(subparsers)`` that adds its parser and sets ``handler=run`` as a default, and
# ``run(args) -> int``.  They are imported when the parser is built, so keep their
# top-level imports light (heavy libraries inside ``run``).
_COMMAND_MODULES: tuple[str, ...] = (
    "models",
    "project",
    "assets",
    "generate",
    "upscale",
    "jobs",
    "qa",
    "keys",
)


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
        choices=("draft", "web", "high", "broadcast", "cinema"),
        default=None,
        help="draft 640x360 24 fps; web 1920x1080 30 fps (default); high 1920x1080 CRF 16; "
        "broadcast 1920x1080 25 fps, 1 s GOP, -23 LUFS; cinema 3840x2160 24 fps 10-bit HEVC",
    )
    render.add_argument(
        "--aspect",
        choices=("16:9", "9:16", "1:1"),
        default="16:9",
        help="frame shape: landscape, vertical (phones) or square",
    )
    render.add_argument(
        "--backend",
        choices=("procedural", "stills", "diffusers"),
        default=None,
        help="where stills come from (default: the config's render.backend_order, or stills "
        "with --images; diffusers is local Stable Diffusion and needs --model)",
    )
    render.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help="diffusers: a .safetensors checkpoint, a diffusers folder, or a name under "
        "paths.models_dir",
    )
    render.add_argument(
        "--device",
        default=None,
        help="diffusers: auto (CUDA, MPS, CPU), cuda, cuda:N, mps or cpu (default: config)",
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
        "--otio",
        type=Path,
        default=None,
        metavar="FILE.otio",
        help="also export the edit as OpenTimelineIO (for Resolve, Premiere...)",
    )
    render.add_argument(
        "--timeline-json",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="also save the timeline document (tracks, clips, transitions, grades; "
        "every time as bar:beat and seconds) that the video was rendered from",
    )
    render.add_argument(
        "--timeline",
        type=Path,
        default=None,
        metavar="EDIT.json",
        help="render this edit (a timeline document of this song, e.g. a project's "
        "edit.timeline.json) instead of planning one: its cuts, stills, moves, "
        "transitions and grades",
    )
    render.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where generated stills are kept for reuse",
    )
    render.add_argument(
        "--project",
        type=Path,
        default=None,
        metavar="DIR",
        help="run the render as jobs in this project (created if missing; default: a "
        "temporary one in the cache); run the same command again to resume after a crash",
    )
    from engine.cli_commands.project import add_passphrase_option

    add_passphrase_option(render, purpose="of an encrypted --project")

    analyze = sub.add_parser(
        "analyze",
        help="analyse a song: tempo, beats, downbeats, sections, key",
        description="Analyse AUDIO and print a summary; write the full analysis as JSON "
        "and a picture of it (waveform, beats, downbeats, sections) on request.",
    )
    analyze.add_argument("audio", type=Path, help="the song (wav, flac, ogg, mp3, m4a)")
    analyze.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the analysis as JSON ('-' for standard output)",
    )
    analyze.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="draw the waveform with beats, downbeats and section bands",
    )
    analyze.add_argument(
        "--sensitivity",
        type=float,
        default=None,
        help="beat sensitivity 0..1 (default from config: 0.5)",
    )
    analyze.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where analyses are cached (by content hash)",
    )
    for module_name in _COMMAND_MODULES:
        importlib.import_module(f"engine.cli_commands.{module_name}").register(sub)
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
    from engine.orchestrator.render_jobs import run_render
    from engine.orchestrator.render_pipeline import RenderRequest
    from engine.progress import ProgressPrinter

    config = _load_config(args.config)
    order: tuple[str, ...] = ()
    if args.backend is None and args.images is None:
        order = tuple(config["render"]["backend_order"])  # type: ignore[index]
    backend = args.backend or ("stills" if args.images else order[0])
    if args.images is not None and backend != "stills":
        from engine.errors import ParameterError

        raise ParameterError("--images", str(args.images), "only with --backend stills")
    request = RenderRequest(
        audio_path=args.audio,
        output_path=args.output,
        preset=args.preset or config["render"]["preset"],  # type: ignore[index]
        aspect=args.aspect,
        backend=backend,
        images_dir=args.images,
        model=args.model or config["render"]["model"] or None,  # type: ignore[index]
        device=args.device or config["render"]["device"],  # type: ignore[index]
        backend_order=order if len(order) > 1 else (),
        json_report=args.json_report,
        otio_path=args.otio,
        timeline_json=args.timeline_json,
        cache_dir=args.cache_dir,
        timeline_path=args.timeline,
    )
    passphrase = None
    if args.passphrase_file is not None and args.project is None:
        from engine.errors import ParameterError

        raise ParameterError("--passphrase-file", str(args.passphrase_file), "with --project")
    if args.project is not None:
        from engine.cli_commands.project import read_passphrase
        from engine.orchestrator.render_jobs import needs_passphrase

        if needs_passphrase(args.project):
            passphrase = read_passphrase(
                args.passphrase_file, prompt=f"passphrase of {args.project}: "
            )
    printer = ProgressPrinter()
    try:
        report = run_render(
            request,
            config=config,
            project_dir=args.project,
            sink=printer,
            passphrase=passphrase,
        )
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


def _analyze(args: argparse.Namespace) -> int:
    import json

    from engine.atomic_files import atomic_write_text
    from engine.audio.analyzer import AudioAnalyzer
    from engine.audio.decode import check_audio_path
    from engine.errors import ParameterError
    from engine.orchestrator.render_pipeline import default_cache_dir
    from engine.output_paths import check_output_path

    config = _load_config(args.config)
    audio_cfg = config["audio"]  # type: ignore[index]
    check_audio_path(args.audio)
    to_stdout = args.json is not None and str(args.json) == "-"
    if args.json is not None and not to_stdout:
        check_output_path(args.json, what="JSON file", extensions=(".json",))
    if args.plot is not None:
        check_output_path(args.plot, what="plot", extensions=(".png",))
    sensitivity = audio_cfg["beat_sensitivity"] if args.sensitivity is None else args.sensitivity
    if not 0.0 <= sensitivity <= 1.0:
        raise ParameterError("--sensitivity", sensitivity, "a number from 0 to 1")
    max_duration = float(audio_cfg["max_duration_minutes"]) * 60.0
    analyzer = AudioAnalyzer(
        sample_rate=int(audio_cfg["analysis_sample_rate"]),
        max_duration=max_duration,
        sensitivity=float(sensitivity),
        cache_dir=(args.cache_dir or default_cache_dir()) / "analysis",
    )
    analysis = analyzer.analyze(args.audio)
    text = json.dumps(analysis.to_dict(), indent=2) + "\n"
    if to_stdout:
        sys.stdout.write(text)
    elif args.json is not None:
        atomic_write_text(args.json, text)
    if args.plot is not None:
        from engine.audio.decode import decode_audio
        from engine.audio.plot import plot_analysis

        audio = decode_audio(args.audio, sample_rate=8000, mono=True, max_duration=max_duration)
        plot_analysis(args.plot, audio.samples[0], audio.sample_rate, analysis)
    if not to_stdout:
        sections = ", ".join(
            f"{s.label} {int(s.start) // 60}:{int(s.start) % 60:02d}" for s in analysis.sections
        )
        print(
            f"{args.audio.name}: {analysis.duration:.1f} s, {analysis.tempo:.1f} BPM, "
            f"{analysis.time_signature}, {analysis.key} ({analysis.key_confidence:.2f}), "
            f"{len(analysis.beats)} beats, {len(analysis.downbeats)} bars"
        )
        print(f"sections: {sections}")
        for warning in analysis.warnings:
            print(f"warning: {warning}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by the console script)."""
    args = _parser().parse_args(argv)
    _setup_logging(debug=args.debug, quiet=args.quiet)
    from engine.errors import APEXDirectorError, CancelledError, UserInputError

    try:
        if args.command == "render":
            return _render(args)
        if args.command == "analyze":
            return _analyze(args)
        handler = getattr(args, "handler", None)
        if handler is not None:
            return int(handler(args))
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
