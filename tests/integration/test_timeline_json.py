"""``apex-director render --timeline-json``: the saved document is the edit the video shows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.assembly.timeline_document import load_timeline
from engine.cli import main


def test_render_saves_the_timeline_document_it_rendered(tiny_song: Path, tmp_path: Path) -> None:
    import av

    config = tmp_path / "look.toml"
    config.write_text('[grade]\nlook = "teal-orange"\nvignette = 0.3\n')
    out, doc_path = tmp_path / "out.mp4", tmp_path / "edit.timeline.json"
    code = main(
        [
            "--config",
            str(config),
            "render",
            str(tiny_song),
            "-o",
            str(out),
            "--preset",
            "draft",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json-report",
            str(tmp_path / "report.json"),
            "--timeline-json",
            str(doc_path),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    document = load_timeline(doc_path)
    assert report["output"]["timeline"] == str(doc_path)
    assert document.fps == 24 and document.frame_count == report["output"]["frames"]
    clips = document.video_clips
    assert len(clips) == len(report["shots"]) >= 3
    for clip, shot in zip(clips, report["shots"], strict=True):
        assert abs(clip.start.seconds - shot["start"]) < 1e-4  # the report rounds to 0.1 ms
    # the cuts sit on the analysed downbeats: positions bar:1, on the tempo map's beats
    for clip in clips[1:]:
        assert str(clip.start.position).endswith(":1")
        assert clip.start.seconds in document.tempo_map.beat_times
    grade = document.track("effects").items[0].parameters  # type: ignore[union-attr]
    assert "look" in grade and "finishing" in grade
    # every still the document names is a file, and the video shows it after its cut
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    cuts = document.cut_frames()
    assert len(frames) == document.frame_count
    diffs = [float(np.abs(frames[c].astype(int) - frames[c - 1]).mean()) for c in cuts[1:]]
    steady = [float(np.abs(frames[c + 3].astype(int) - frames[c + 2]).mean()) for c in cuts[1:]]
    assert all(d > 3 * s for d, s in zip(diffs, steady, strict=True))  # a cut on each frame
    assert all(Path(c.source.paths[0]).is_file() for c in clips)
