from __future__ import annotations

import asyncio
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import MediaInputError, ParameterError
from engine.generation.characters import CharacterConsistencyManager


def draw_figure(
    kind: str,
    *,
    dx: int = 0,
    dy: int = 0,
    scale: float = 1.0,
    brightness: float = 1.0,
    background: int = 0,
    size: int = 256,
) -> np.ndarray:
    """A synthetic "character" on a noisy gradient background.

    ``"A"``: red coat, fair skin, black hair.  ``"B"``: blue jacket with a white stripe,
    darker skin, blond hair.
    """
    rng = np.random.default_rng(background)
    _, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(60, 140, 3)
    img = base[None, None, :] * (0.7 + 0.3 * x[..., None]) + rng.normal(0, 6, (size, size, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    s = scale * size / 256

    def p(px: float, py: float) -> tuple[int, int]:
        return round(size / 2 + dx + px * s), round(size * 0.55 + dy + py * s)

    if kind == "A":
        coat = np.array([p(-40, -40), p(40, -40), p(60, 90), p(-60, 90)])
        cv2.fillPoly(img, [coat], (200, 30, 40))
        cv2.rectangle(img, p(-35, 90), p(35, 120), (30, 30, 40), -1)
        cv2.circle(img, p(0, -70), int(28 * s), (224, 176, 144), -1)
        cv2.ellipse(img, p(0, -80), (int(30 * s), int(20 * s)), 0, 180, 360, (20, 20, 20), -1)
    else:
        cv2.rectangle(img, p(-55, -45), p(55, 95), (40, 80, 200), -1)
        cv2.rectangle(img, p(-55, 10), p(55, 22), (240, 240, 240), -1)
        cv2.circle(img, p(0, -72), int(26 * s), (141, 85, 36), -1)
        cv2.ellipse(img, p(0, -60), (int(34 * s), int(40 * s)), 0, 180, 360, (240, 210, 80), 8)
    return np.clip(img.astype(np.float32) * brightness, 0, 255).astype(np.uint8)


def _save(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def figures(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    _save(folder / "a.png", draw_figure("A"))
    _save(folder / "a_side.png", draw_figure("A", background=7, dx=6))
    _save(folder / "b.png", draw_figure("B"))
    return folder


def test_profile_is_stored_in_the_project_and_reloaded(tmp_path: Path, figures: Path) -> None:
    project = tmp_path / "project"
    characters = CharacterConsistencyManager(project)
    cid = asyncio.run(
        characters.create_character_profile(
            "Mara Voss", [figures / "a.png", figures / "a_side.png"], "red coat, black hair"
        )
    )
    assert cid == "mara-voss"
    folder = project / "characters" / cid
    assert (folder / "ref_00.png").read_bytes() == (figures / "a.png").read_bytes()
    assert (folder / "ref_01.png").is_file()
    index = json.loads((project / "characters" / "characters.json").read_text())
    assert index["schema_version"] == 1
    assert index["characters"][cid]["reference_images"] == [
        "characters/mara-voss/ref_00.png",
        "characters/mara-voss/ref_01.png",
    ]
    with np.load(folder / "embeddings.npz") as cache:
        assert cache["classical"].shape[0] == 2
    again = CharacterConsistencyManager(project)
    assert again.get_profile("mara voss") == characters.get_profile(cid)
    second = again.create_profile("Mara Voss", [figures / "b.png"], "another Mara")
    assert second == "mara-voss-2"
    # The source images may go away: the project keeps its copies.
    (figures / "a.png").unlink()
    assert again.check_consistency(project / "characters/mara-voss/ref_00.png", cid)["consistent"]


@pytest.mark.parametrize(
    "change",
    [
        {"dx": 13},
        {"dy": -10},
        {"scale": 0.9},
        {"scale": 1.1},
        {"brightness": 0.85},
        {"brightness": 1.15},
        {"background": 3},
        {"dx": -12, "scale": 1.08, "brightness": 0.9, "background": 5},
    ],
)
def test_classical_descriptor_matches_the_same_figure_and_rejects_another(
    tmp_path: Path, figures: Path, change: dict
) -> None:
    characters = CharacterConsistencyManager(tmp_path / "project")
    a = characters.create_profile("A", [figures / "a.png"], "")
    b = characters.create_profile("B", [figures / "b.png"], "")
    shot_a = _save(tmp_path / "shot_a.png", draw_figure("A", **change))
    shot_b = _save(tmp_path / "shot_b.png", draw_figure("B", **change))
    for shot, own, other in ((shot_a, a, b), (shot_b, b, a)):
        ok, confidence = asyncio.run(characters.validate_consistency(shot, own))
        assert ok and confidence >= 0.85
        ok, confidence = asyncio.run(characters.validate_consistency(shot, other))
        assert not ok and confidence <= 0.35
    report = characters.check_consistency(shot_a, a)
    assert report["method"] == "classical" and report["threshold"] == 0.6


def test_find_similar_characters_ranks_lookalikes_first(tmp_path: Path, figures: Path) -> None:
    characters = CharacterConsistencyManager(tmp_path / "project")
    a = characters.create_profile("A", [figures / "a.png"], "")
    twin = characters.create_profile("Twin", [figures / "a_side.png"], "")
    b = characters.create_profile("B", [figures / "b.png"], "")
    found = asyncio.run(characters.find_similar_characters(a))
    assert [f["character_id"] for f in found] == [twin, b]
    assert found[0]["similar"] and not found[1]["similar"]
    assert found[0]["similarity"] > 0.85 > 0.35 > found[1]["similarity"]


def test_bad_input_is_a_typed_error(tmp_path: Path, figures: Path) -> None:
    characters = CharacterConsistencyManager(tmp_path / "project")
    with pytest.raises(ParameterError, match="reference_images"):
        characters.create_profile("X", [], "")
    with pytest.raises(ParameterError, match="name"):
        characters.create_profile(" ", [figures / "a.png"], "")
    with pytest.raises(MediaInputError, match="not found"):
        characters.create_profile("X", [figures / "missing.png"], "")
    with pytest.raises(ParameterError, match="character_id='nobody'"):
        characters.check_consistency(figures / "a.png", "nobody")
    assert not (tmp_path / "project" / "characters" / "x").exists()


def test_conditioning_is_img2img_unless_ip_adapter_weights_exist(
    tmp_path: Path, figures: Path
) -> None:
    models = tmp_path / "models"
    characters = CharacterConsistencyManager(tmp_path / "project", models_dir=models)
    cid = characters.create_profile("A", [figures / "a.png"], "red coat")
    cond = characters.conditioning_for(cid)
    assert cond["method"] == "img2img" and cond["ip_adapter"] is None
    assert cond["init_image"].read_bytes() == (figures / "a.png").read_bytes()
    assert cond["seed"] == characters.get_profile(cid).seed and 0 < cond["strength"] <= 1
    assert characters.conditioning_for(cid)["seed"] == cond["seed"]  # fixed per character
    (models / "ip_adapters").mkdir(parents=True)
    (models / "ip_adapters" / "ip-adapter_sd15.safetensors").write_bytes(b"x")
    cond = characters.conditioning_for(cid)  # weights but no CLIP image encoder: img2img
    assert cond["method"] == "img2img" and "encoder" in cond["fallback_reason"]
    (models / "clip" / "x").mkdir(parents=True)
    (models / "clip" / "x" / "config.json").write_text("{}")
    cond = characters.conditioning_for(cid)
    assert cond["method"] == "ip_adapter"
    assert cond["ip_adapter"].name == "ip-adapter_sd15.safetensors"
    assert cond["init_image"] is not None  # the img2img fallback stays available


def test_clip_embeddings_are_used_when_an_encoder_is_installed(
    tmp_path: Path, figures: Path
) -> None:
    pytest.importorskip("transformers")
    from tests.generation_fixtures import one_torch_thread

    with one_torch_thread():  # tiny models: per-operator overhead dominates
        from tests.clip_fixtures import save_tiny_clip_encoder

        models = tmp_path / "models"
        project = tmp_path / "project"
        cid = CharacterConsistencyManager(project).create_profile("A", [figures / "a.png"], "")
        save_tiny_clip_encoder(models)
        characters = CharacterConsistencyManager(project, models_dir=models)
        assert characters.embedding_method()[0] == "clip:tiny-clip"
        report = characters.check_consistency(figures / "a.png", cid)
        assert report["method"] == "clip:tiny-clip" and report["threshold"] == 0.75
        assert report["confidence"] == pytest.approx(1.0, abs=1e-4) and report["consistent"]
        with np.load(project / "characters" / cid / "embeddings.npz") as cache:
            assert set(cache.files) == {"classical", "clip_tiny_clip"}
            assert cache["clip_tiny_clip"].shape == (1, 16)  # the encoder's projection_dim
