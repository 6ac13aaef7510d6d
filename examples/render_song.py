"""Render a song to a video with the engine's API, headless.

    .venv/bin/python examples/render_song.py SONG OUT.mp4 [--preset draft]

Shows the three things a script needs: a configuration, a request, and a context
whose sink receives progress events.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.api import (
    ConfigManager,
    JobEvent,
    JobProgress,
    RenderRequest,
    StageContext,
    render_video,
)


def main() -> None:
    parser = argparse.ArgumentParser(description="Render a song headless via engine.api")
    parser.add_argument("song", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--preset", default="draft", choices=("draft", "web", "high"))
    args = parser.parse_args()

    config = ConfigManager(default_config={"style": {"prompt": "ocean waves at dawn"}}).config
    stages_seen: list[str] = []

    def on_event(event: JobEvent) -> None:
        if isinstance(event, JobProgress) and event.stage not in stages_seen:
            stages_seen.append(event.stage)

    report = render_video(
        RenderRequest(audio_path=args.song, output_path=args.output, preset=args.preset),
        config=config,
        context=StageContext(sink=on_event),
    )
    print(f"stages: {' -> '.join(stages_seen)}")
    print(f"tempo {report['analysis']['tempo']:.1f} BPM, {len(report['shots'])} shots")
    for shot in report["shots"]:
        print(
            f"  {shot['position']:>6}  {shot['start']:7.2f}s  {shot['section']:<9} {shot['prompt']}"
        )


if __name__ == "__main__":
    main()
