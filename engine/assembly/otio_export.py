"""Export the edit as OpenTimelineIO, to finish it in DaVinci Resolve, Premiere or any
editor that reads ``.otio``: one video track of stills cut on the beat, the song on an
audio track, transitions at section changes, and markers on every downbeat and
section start."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from engine.atomic_files import atomic_write_text
from engine.audio.types import AudioAnalysis
from engine.planning.shots import ShotList

__all__ = ["build_otio_timeline", "export_otio"]


def build_otio_timeline(
    shots: ShotList,
    analysis: AudioAnalysis,
    *,
    still_paths: Sequence[Path],
    audio_path: Path,
    fps: Fraction,
    transition_seconds: float,
    name: str = "APEX Director edit",
) -> Any:
    """The edit as an ``opentimelineio.schema.Timeline`` (frame-exact at ``fps``)."""
    import opentimelineio as otio

    rate = float(fps)
    total = round(shots.duration * fps)
    cuts = [0, *(round(s.start * fps) for s in shots.shots[1:]), total]

    def span(start: int, frames: int) -> Any:
        return otio.opentime.TimeRange(
            otio.opentime.RationalTime(start, rate), otio.opentime.RationalTime(frames, rate)
        )

    timeline = otio.schema.Timeline(name=name)
    timeline.global_start_time = otio.opentime.RationalTime(0, rate)
    video = otio.schema.Track(name="Shots", kind=otio.schema.TrackKind.Video)
    for index, shot in enumerate(shots.shots):
        if index > 0 and shot.transition_in != "cut":
            half = min(
                round(transition_seconds * fps / 2),
                (cuts[index] - cuts[index - 1]) // 2,
                (cuts[index + 1] - cuts[index]) // 2,
            )
            if half > 0:
                video.append(
                    otio.schema.Transition(
                        name=shot.transition_in,
                        transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve
                        if shot.transition_in == "crossfade"
                        else otio.schema.TransitionTypes.Custom,
                        in_offset=otio.opentime.RationalTime(half, rate),
                        out_offset=otio.opentime.RationalTime(half, rate),
                        metadata={"apex": {"kind": shot.transition_in}},
                    )
                )
        frames = cuts[index + 1] - cuts[index]
        clip = otio.schema.Clip(
            name=f"{index + 1:03d} {shot.section} {shot.position}",
            media_reference=otio.schema.ExternalReference(
                target_url=Path(still_paths[index]).resolve().as_uri()
            ),
            source_range=span(0, frames),
            metadata={"apex": {**shot.to_dict(), "still": str(still_paths[index])}},
        )
        video.append(clip)

    audio = otio.schema.Track(name="Song", kind=otio.schema.TrackKind.Audio)
    audio.append(
        otio.schema.Clip(
            name=Path(audio_path).name,
            media_reference=otio.schema.ExternalReference(
                target_url=Path(audio_path).resolve().as_uri(),
                available_range=span(0, total),
            ),
            source_range=span(0, total),
        )
    )
    timeline.tracks.append(video)
    timeline.tracks.append(audio)

    markers = timeline.tracks.markers
    for section in analysis.sections:
        markers.append(
            otio.schema.Marker(
                name=section.label,
                color=otio.schema.MarkerColor.RED,
                marked_range=span(round(section.start * fps), 0),
                metadata={"apex": section.to_dict()},
            )
        )
    for beat in analysis.downbeats:
        markers.append(
            otio.schema.Marker(
                name=f"bar {beat.bar}",
                color=otio.schema.MarkerColor.YELLOW,
                marked_range=span(round(beat.time * fps), 0),
                metadata={"apex": beat.to_dict()},
            )
        )
    timeline.metadata["apex"] = {
        "tempo": analysis.tempo,
        "time_signature": analysis.time_signature,
        "key": analysis.key,
    }
    return timeline


def export_otio(path: Path, timeline: Any) -> Path:
    """Write ``timeline`` as OTIO JSON, atomically."""
    import opentimelineio as otio

    atomic_write_text(path, otio.adapters.write_to_string(timeline, "otio_json"))
    return Path(path)
