from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from engine.errors import MediaInputError, ParameterError
from engine.generation.procedural import ProceduralBackend
from engine.generation.style_bible import StyleBible, StylePersistenceManager
from engine.generation.types import StillRequest

TEAL_AMBER = ((11, 61, 79), (23, 127, 150), (242, 165, 65), (250, 220, 170), (20, 30, 40))
PURPLE_GREEN = ((60, 10, 80), (120, 30, 160), (40, 200, 60), (200, 255, 120), (10, 40, 10))


def _still(folder: Path, name: str, prompt: str, palette: tuple, seed: int) -> Path:
    image = ProceduralBackend().generate(
        StillRequest(prompt=prompt, seed=seed, width=320, height=180, palette=palette)
    )
    path = folder / name
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    _still(tmp_path, "ref1.png", "mountains at dusk", TEAL_AMBER, 1)
    _still(tmp_path, "ref2.png", "city at night", TEAL_AMBER, 2)
    _still(tmp_path, "same.png", "ocean waves", TEAL_AMBER, 3)
    _still(tmp_path, "other.png", "ocean waves", PURPLE_GREEN, 3)
    (tmp_path / "look.cube").write_text("LUT_3D_SIZE 2\n" + "0 0 0\n" * 8)
    return tmp_path


BIBLE = {
    "name": "teal night",
    "prompt_template": "{prompt}, teal and amber grade, anamorphic",
    "negative_prompt": ["lowres", "watermark"],
    "palette": ["#0b3d4f", "#177f96", [242, 165, 65]],
    "lut_path": "look.cube",
    "reference_images": ["ref1.png", "ref2.png"],
    "seed_family": 1234,
    "director_style": "Denis Villeneuve",
}


def test_bible_is_validated_saved_atomically_and_reloaded(project: Path) -> None:
    styles = StylePersistenceManager(project)
    styles.load_style_bible(BIBLE)
    bible = styles.style_bible
    assert isinstance(bible, StyleBible)
    assert bible.palette[2] == (242, 165, 65) and bible.director_style == "denis_villeneuve"
    assert bible.negative_prompt == "lowres, watermark"
    assert bible.seed_for(0) == 1234 and bible.seed_for(2) == 1236
    document = json.loads((project / "style_bible.json").read_text())
    assert document["schema_version"] == 1
    assert document["style_bible"]["palette"] == ["#0b3d4f", "#177f96", "#f2a541"]
    assert not [p for p in project.iterdir() if p.name.startswith(".style_bible")]  # no temp left
    assert StylePersistenceManager(project).style_bible == bible  # a new session reads it


def test_update_style_changes_fields_and_keeps_the_old_bible_on_error(project: Path) -> None:
    styles = StylePersistenceManager(project)
    styles.load_style_bible(BIBLE)
    styles.update_style({"seed_family": 99, "prompt_template": "bleach bypass"})
    assert styles.style_bible is not None and styles.style_bible.seed_family == 99
    assert StylePersistenceManager(project).style_bible.prompt_template == "bleach bypass"  # type: ignore[union-attr]
    before = (project / "style_bible.json").read_text()
    with pytest.raises(ParameterError, match=r"palette\[0\]"):
        styles.update_style({"palette": ["teal"]})
    assert styles.style_bible.seed_family == 99
    assert (project / "style_bible.json").read_text() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"palette": ["#0b3d4f", "#12"]}, r"palette\[1\]"),
        ({"reference_images": ["missing.png"]}, r"reference_images\[0\]"),
        ({"reference_images": "ref1.png"}, "reference_images"),
        ({"lut_path": "look.png"}, "lut_path"),
        ({"lut_path": "gone.cube"}, "lut_path"),
        ({"seed_family": -5}, "seed_family"),
        ({"drift_threshold": 2}, "drift_threshold"),
        ({"genre": "polka"}, "genre"),
    ],
)
def test_invalid_fields_are_named(project: Path, change: dict, field: str) -> None:
    with pytest.raises(ParameterError, match=field):
        StylePersistenceManager(project).load_style_bible({**BIBLE, **change})


def test_a_bible_from_a_newer_version_is_refused(project: Path) -> None:
    (project / "style_bible.json").write_text('{"schema_version": 7, "style_bible": {}}')
    with pytest.raises(MediaInputError, match="schema_version 7"):
        StylePersistenceManager(project)


def test_drift_is_low_for_the_look_and_high_for_another_palette(project: Path) -> None:
    styles = StylePersistenceManager(project, models_dir=project / "models")
    styles.load_style_bible(BIBLE)
    same = styles.detect_style_drift(project / "same.png")
    other = styles.detect_style_drift(project / "other.png")
    assert same["methods"] == other["methods"] == ["palette", "histogram"]
    assert same["clip_distance"] is None and "no CLIP image encoder" in same["clip_note"]
    assert not same["drift_detected"] and other["drift_detected"]
    assert same["drift_score"] < 0.45 < 0.6 < other["drift_score"]
    assert same["palette_distance"] < other["palette_distance"]
    assert same["histogram_distance"] < other["histogram_distance"]
    assert len(same["image_palette"]) == 5 and same["image_palette"][0].startswith("#")


def test_drift_against_a_palette_alone_uses_the_palette_measure_only(project: Path) -> None:
    styles = StylePersistenceManager()  # in memory: no project folder
    styles.load_style_bible({"palette": ["#0b3d4f", "#177f96", "#f2a541"]})
    same = styles.detect_style_drift(project / "same.png")
    other = styles.detect_style_drift(project / "other.png")
    assert same["methods"] == ["palette"] and "no reference images" in same["clip_note"]
    assert same["drift_score"] < 0.5 < other["drift_score"]
    empty = StylePersistenceManager()
    empty.load_style_bible({"prompt_template": "grainy"})
    with pytest.raises(ParameterError, match="palette or reference images"):
        empty.detect_style_drift(project / "same.png")


def test_drift_needs_a_bible_and_a_readable_image(project: Path) -> None:
    styles = StylePersistenceManager(project)
    with pytest.raises(ParameterError, match="style_bible"):
        styles.detect_style_drift(project / "same.png")
    styles.load_style_bible(BIBLE)
    (project / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(MediaInputError):
        styles.detect_style_drift(project / "broken.png")


def test_drift_adds_clip_distance_when_a_clip_encoder_is_installed(project: Path) -> None:
    pytest.importorskip("transformers")
    from tests.generation_fixtures import one_torch_thread

    with one_torch_thread():  # tiny models: per-operator overhead dominates
        from tests.clip_fixtures import save_tiny_clip_encoder

        save_tiny_clip_encoder(project / "models")
        styles = StylePersistenceManager(project, models_dir=project / "models")
        styles.load_style_bible(BIBLE)
        report = styles.detect_style_drift(project / "same.png")
        assert report["methods"] == ["palette", "histogram", "clip"]
        assert report["clip_model"] == "clip:tiny-clip"
        assert 0.0 <= report["clip_distance"] <= 1.0
        # A reference image is at CLIP distance ~0 from a mean of itself and one other.
        ref = styles.detect_style_drift(project / "ref1.png")
        assert ref["clip_distance"] < 0.5


def test_style_similarity(project: Path) -> None:
    styles = StylePersistenceManager(project)
    teal = {"palette": ["#0b3d4f", "#177f96", "#f2a541"], "prompt_template": "teal amber grade"}
    teal2 = {"palette": ["#0c3e52", "#1a8098", "#f0a040"], "prompt_template": "teal amber look"}
    purple = {"palette": ["#3c0a50", "#781ea0", "#28c83c"], "prompt_template": "purple haze"}
    assert styles.calculate_style_similarity(teal, teal) == pytest.approx(1.0)
    near = styles.calculate_style_similarity(teal, teal2)
    far = styles.calculate_style_similarity(teal, purple)
    assert 0.0 <= far < 0.5 < near < 1.0
    assert near == pytest.approx(styles.calculate_style_similarity(teal2, teal))
    assert styles.calculate_style_similarity({"name": "a"}, {"name": "b"}) == 0.0
    with pytest.raises(ParameterError, match="palette"):
        styles.calculate_style_similarity({"palette": 5}, teal)
