from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.context import StageContext
from engine.errors import BackendError, CancelledError, MediaInputError, ParameterError
from engine.generation.generator import CinematicImageGenerator, exposure, score_image, sharpness
from engine.generation.procedural import ProceduralBackend
from engine.generation.prompting import (
    GenerationRequest,
    approximate_token_counter,
    get_preset,
)
from engine.generation.types import StillRequest
from tests.engine.test_characters import draw_figure

# The real CLIP tokenizer is tested in test_prompting; the estimate keeps these fast.
COUNT = approximate_token_counter


def _read(path: str | Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _save(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def _request(prompt: str = "misty pine forest", **kw: object) -> GenerationRequest:
    return GenerationRequest(prompt, width=320, height=176, **kw)  # type: ignore[arg-type]


def test_single_still_is_written_atomically_with_its_result(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    generator = CinematicImageGenerator(tmp_path)  # the real, shipped CLIP tokenizer
    generator.style.load_style_bible({"seed_family": 77, "prompt_template": "teal grade"})
    result = asyncio.run(
        generator.generate_single_image(_request(scene_id="shot 1", director_style="ridley_scott"))
    )
    path = Path(result["path"])
    assert path.parent == tmp_path / "images" and path.name.startswith("shot-1-77-")
    image = _read(path)
    assert image.shape == (176, 320, 3)
    expected = ProceduralBackend().generate(
        StillRequest(
            prompt="misty pine forest",
            seed=77,
            width=320,
            height=176,
            palette=get_preset("directors", "ridley_scott").palette,
        )
    )
    np.testing.assert_array_equal(image, expected)  # the draft backend's own pixels, lossless
    assert result["backend"] == "procedural" and result["draft"] is True
    assert result["model"] is None
    assert result["seed"] == 77 and result["failover"] == []
    assert result["prompt"].startswith("misty pine forest, volumetric light shafts")
    assert "teal grade" in result["prompt"] and result["prompts"]["tokens_used"] <= 77
    from engine.generation.prompting import clip_token_counter

    assert result["prompts"]["tokens_used"] == clip_token_counter("sd15")(result["prompt"]) + 2
    assert set(result["timings"]) >= {"compose_s", "generate_s", "write_s", "total_s"}
    assert 0 <= result["score"]["total"] <= 1
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["path"] == str(path) and sidecar["score"] == result["score"]
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name]


def test_the_same_request_is_reused_from_disk_and_a_new_seed_is_not(tmp_path: Path) -> None:
    generator = CinematicImageGenerator(tmp_path, tokenizer=COUNT)
    first = generator.generate_single(_request(seed=5))
    again = CinematicImageGenerator(tmp_path, tokenizer=COUNT).generate_single(_request(seed=5))
    assert again["cached"] is True and again["path"] == first["path"]
    other = generator.generate_single(_request(seed=6))
    assert other["path"] != first["path"] and not other["cached"]
    assert not np.array_equal(_read(other["path"]), _read(first["path"]))


def test_failover_skips_a_backend_that_cannot_load_and_names_it(tmp_path: Path) -> None:
    config = {"backend_order": ["diffusers", "procedural"], "model": str(tmp_path / "nope")}
    generator = CinematicImageGenerator(tmp_path, config, tokenizer=COUNT)
    result = generator.generate_single(_request())
    assert result["backend"] == "procedural" and result["draft"]
    assert [f["backend"] for f in result["failover"]] == ["diffusers"]
    only = CinematicImageGenerator(
        tmp_path, {"backend_order": ["diffusers"], "model": str(tmp_path / "nope")}, tokenizer=COUNT
    )
    with pytest.raises(BackendError, match="no image backend could make the still: diffusers"):
        only.generate_single(_request())


def test_bad_configuration_and_unknown_characters_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"config\.colour"):
        CinematicImageGenerator(tmp_path, {"colour": "red"})
    with pytest.raises(ParameterError, match=r"config\.variants"):
        CinematicImageGenerator(tmp_path, {"variants": 0})
    generator = CinematicImageGenerator(tmp_path, tokenizer=COUNT)
    with pytest.raises(ParameterError, match="character_id='Nobody'"):
        generator.generate_single(_request(character_name="Nobody"))


def test_cancellation_stops_before_generating(tmp_path: Path) -> None:
    context = StageContext(cancel_event=threading.Event())
    context.cancel_event.set()
    generator = CinematicImageGenerator(tmp_path, context=context, tokenizer=COUNT)
    with pytest.raises(CancelledError):
        generator.generate_single(_request())
    assert not (tmp_path / "images").exists() or not list((tmp_path / "images").iterdir())


def test_sequence_keeps_the_seed_family_and_reports_style_and_character(tmp_path: Path) -> None:
    ref = ProceduralBackend().generate(
        StillRequest(prompt="city at night", seed=1, width=320, height=176)
    )
    _save(tmp_path / "ref.png", ref)
    _save(tmp_path / "mara.png", draw_figure("A"))
    generator = CinematicImageGenerator(tmp_path, tokenizer=COUNT)
    generator.style.load_style_bible({"reference_images": ["ref.png"], "seed_family": 9})
    mara = generator.characters.create_profile("Mara", [tmp_path / "mara.png"], "red coat")
    requests = [
        _request("city at night", scene_id="a"),
        _request("neon street in the rain", scene_id="b"),
        _request("skyline", scene_id="c", character_name="Mara", maintain_character=True),
    ]
    summary = asyncio.run(generator.generate_image_sequence(requests))
    images = summary["images"]
    assert summary["count"] == 3 and summary["seed_family"] == 9
    assert [r["seed"] for r in images[:2]] == [9, 9]
    assert images[2]["seed"] == generator.characters.get_profile(mara).seed  # the character's
    assert "red coat" in images[2]["prompt"]
    assert images[2]["character_conditioning"]["method"] == "not applied"  # procedural: no input
    assert images[2]["character_consistency"]["method"] == "classical"
    assert all(r["style_drift"]["methods"] == ["palette", "histogram"] for r in images)
    consistency = summary["style_consistency"]
    assert 0 <= consistency["mean_drift"] <= consistency["max_drift"] <= 1
    # A procedural skyline cannot show Mara, and the check says so.
    assert summary["character_consistency"]["inconsistent_shots"] == [2]


def test_variants_use_consecutive_seeds_and_the_best_score_wins(tmp_path: Path) -> None:
    generator = CinematicImageGenerator(tmp_path, {"variants": 3}, tokenizer=COUNT)
    result = asyncio.run(generator.generate_with_variants(_request("ocean waves", seed=100)))
    assert result["count"] == 3
    assert [v["seed"] for v in result["variants"]] == [100, 101, 102]
    totals = [v["score"]["total"] for v in result["variants"]]
    assert result["best"]["score"]["total"] == max(totals) == totals[result["best_index"]]
    assert set(result["variants"][0]["score"]) == {"sharpness", "exposure", "total"}
    five = generator.generate_variants(_request("ocean waves", seed=100, variants=5))
    assert five["count"] == 5 and five["variants"][0]["cached"]  # seeds 100..102 reused


def test_score_prefers_sharp_well_exposed_images() -> None:
    sharp = ProceduralBackend().generate(
        StillRequest(prompt="misty pine forest", seed=3, width=320, height=180)
    )
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4)
    washed = np.clip(sharp.astype(int) + 130, 0, 255).astype(np.uint8)
    dark = (sharp * 0.15).astype(np.uint8)
    assert sharpness(sharp)[1] > sharpness(blurred)[1] + 0.2
    assert exposure(washed)["clipped_highlights"] > 0.3 > exposure(sharp)["clipped_highlights"]
    assert exposure(dark)["clipped_shadows"] > 0.1 > exposure(sharp)["clipped_shadows"]
    best = score_image(sharp)["total"]
    for worse in (blurred, washed, dark):
        assert score_image(worse)["total"] < best - 0.2
    with_style = score_image(sharp, style_drift=0.9, character_confidence=0.1)
    assert set(with_style) == {"sharpness", "exposure", "style", "character", "total"}
    assert with_style["total"] < best


def test_batch_keeps_request_order(tmp_path: Path) -> None:
    generator = CinematicImageGenerator(tmp_path, {"batch_size": 2}, tokenizer=COUNT)
    prompts = ["forest", "desert dunes", "space nebula", "city"]
    results = asyncio.run(generator.generate_batch([_request(p, seed=1) for p in prompts]))
    assert [r["request"]["prompt"] for r in results] == prompts
    assert len({r["path"] for r in results}) == 4


def test_quality_check(tmp_path: Path) -> None:
    generator = CinematicImageGenerator(tmp_path, tokenizer=COUNT)
    big = ProceduralBackend().generate(
        StillRequest(prompt="city at night", seed=3, width=1920, height=1080)
    )
    good = asyncio.run(generator.validate_image_quality(_save(tmp_path / "big.png", big)))
    assert good["width"] == 1920 and good["is_16_9"]
    assert not any("resolution" in i for i in good["issues"])
    small = generator.check_quality(_save(tmp_path / "small.png", big[::4, ::4]))
    assert not small["passed"] and "upscale" in small["issues"][0]
    blank = generator.check_quality(_save(tmp_path / "blank.png", np.full_like(big, 128)))
    assert any("uniform" in i for i in blank["issues"])
    with pytest.raises(MediaInputError):
        generator.check_quality(tmp_path / "missing.png")


def test_upscale_delegates_to_the_upscaler(tmp_path: Path) -> None:
    generator = CinematicImageGenerator(tmp_path, {"models_dir": str(tmp_path / "m")})
    source = _save(tmp_path / "wide.png", np.full((1350, 2400, 3), 90, np.uint8))
    # "broadcast" of a frame already larger than 1920x1080 is a downscale: no network run.
    info = asyncio.run(generator.upscale_image(source, "broadcast"))
    assert info["output_size"] == (1920, 1080) and info["backend"] == "resize"
    assert _read(info["output_path"]).shape == (1080, 1920, 3)
    with pytest.raises(ParameterError, match="preset"):
        asyncio.run(generator.upscale_image(source, "ultra"))


@pytest.fixture(scope="module")
def tiny_sd15(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from tests.generation_fixtures import one_torch_thread, save_tiny_sd15_folder

    with one_torch_thread():
        return save_tiny_sd15_folder(tmp_path_factory.mktemp("sd") / "tiny-sd15")


def test_diffusers_batch_seeds_and_character_img2img(tiny_sd15: Path, tmp_path: Path) -> None:
    from tests.generation_fixtures import one_torch_thread

    with one_torch_thread():  # the tiny model is all per-operator overhead
        _diffusers_batch_seeds_and_character_img2img(tiny_sd15, tmp_path)


def _diffusers_batch_seeds_and_character_img2img(tiny_sd15: Path, tmp_path: Path) -> None:
    config = {"backend_order": ["diffusers"], "model": str(tiny_sd15), "device": "cpu"}
    generator = CinematicImageGenerator(tmp_path / "p1", config, tokenizer=COUNT)
    mara_png = _save(tmp_path / "mara.png", draw_figure("A", size=64))
    generator.characters.create_profile("Mara", [mara_png], "red coat")

    def req(prompt: str, **kw: object) -> GenerationRequest:
        return GenerationRequest(prompt, width=64, height=64, steps=1, seed=3, **kw)  # type: ignore[arg-type]

    results = generator.generate_many([req("a fox"), req("a lighthouse")])
    backend = generator._backends["diffusers"]
    assert backend.stats()["batches"] == 1 and backend.stats()["images"] == 2  # one GPU batch
    assert {r["backend"] for r in results} == {"diffusers"}
    assert {r["model"] for r in results} == {str(tiny_sd15)}
    assert not any(r["draft"] for r in results)
    assert _read(results[0]["path"]).shape == (64, 64, 3)
    # The same seed alone gives the same picture (batching may move float rounding by 1/255).
    alone = generator.generate_single(req("a fox", scene_id="alone"))
    assert alone["path"] != results[0]["path"]
    difference = np.abs(_read(alone["path"]).astype(int) - _read(results[0]["path"]))
    assert difference.max() <= 2
    conditioned = generator.generate_single(
        req("portrait", character_name="Mara", maintain_character=True)
    )
    assert conditioned["character_conditioning"]["method"] == "img2img"
    assert conditioned["character_consistency"]["character_id"] == "mara"
    assert backend.stats()["batches"] == 3


def test_sequence_on_the_stills_backend_takes_the_users_images_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    for i, colour in enumerate(colours):
        _save(folder / f"shot{i + 1}.png", np.full((176, 320, 3), colour, np.uint8))
    config = {"backend_order": ["stills"], "images_dir": str(folder)}
    generator = CinematicImageGenerator(tmp_path / "project", config, tokenizer=COUNT)
    summary = generator.generate_sequence([_request(f"shot {i}") for i in range(3)])
    for result, colour in zip(summary["images"], colours, strict=True):
        assert result["backend"] == "stills" and not result["draft"]
        assert tuple(_read(result["path"])[88, 160]) == colour
