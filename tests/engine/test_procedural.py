"""Tests of the procedural draft backend and the prompt palettes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import ParameterError
from engine.generation.palette import THEMES, palette_from_prompt, parse_palette
from engine.generation.procedural import (
    COMPOSITIONS,
    ProceduralBackend,
    composition_for_prompt,
)
from engine.generation.types import StillRequest

REPO_ROOT = Path(__file__).resolve().parents[2]

# One prompt per composition family, so that every painter is exercised.
FAMILY_PROMPTS = {
    "city": "neon city at night, rain",
    "landscape": "sunset over the desert dunes",
    "space": "deep space nebula",
    "ocean": "ocean waves at dawn",
    "forest": "misty pine forest",
    "abstract": "abstract golden light",
}


def _render(prompt: str, *, seed: int = 3, width: int = 320, height: int = 180, **kw: object):
    request = StillRequest(prompt=prompt, seed=seed, width=width, height=height, **kw)
    return ProceduralBackend().generate(request)


def _luma(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _chroma(img: np.ndarray) -> float:
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    return float((hsv[..., 1] * hsv[..., 2]).mean() / 255.0)


def test_backend_is_a_draft_named_procedural() -> None:
    backend = ProceduralBackend()
    assert backend.name == "procedural"
    assert backend.is_draft is True


def test_family_prompts_choose_their_family() -> None:
    for family, prompt in FAMILY_PROMPTS.items():
        assert composition_for_prompt(prompt, 0) == family
    assert set(FAMILY_PROMPTS) == set(COMPOSITIONS)


def test_prompt_without_keywords_gets_a_stable_family_from_the_seed() -> None:
    chosen = {composition_for_prompt("untitled track", seed) for seed in range(40)}
    assert chosen <= set(COMPOSITIONS)
    assert len(chosen) > 2
    assert composition_for_prompt("untitled track", 5) == composition_for_prompt(
        "untitled track", 5
    )


@pytest.mark.parametrize(
    ("width", "height"),
    [(16, 16), (641, 359), (720, 1280), (320, 180), (1280, 720)],
)
def test_shape_and_dtype(width: int, height: int) -> None:
    img = _render("misty pine forest", width=width, height=height)
    assert img.shape == (height, width, 3)
    assert img.dtype == np.uint8


@pytest.mark.parametrize("family", sorted(FAMILY_PROMPTS))
def test_every_family_paints_odd_sizes(family: str) -> None:
    img = _render(FAMILY_PROMPTS[family], width=641, height=359)
    assert img.shape == (359, 641, 3)
    assert img.dtype == np.uint8


@pytest.mark.parametrize("family", sorted(FAMILY_PROMPTS))
def test_equal_requests_give_identical_bytes(family: str) -> None:
    request = StillRequest(
        prompt=FAMILY_PROMPTS[family], seed=11, width=256, height=144, energy=0.7
    )
    first = ProceduralBackend().generate(request)
    second = ProceduralBackend().generate(request)
    assert first.tobytes() == second.tobytes()


def test_different_prompts_give_clearly_different_images() -> None:
    images = [_render(prompt) for prompt in FAMILY_PROMPTS.values()]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            diff = np.abs(images[i].astype(np.int16) - images[j].astype(np.int16)).mean()
            assert diff > 20.0, (i, j, diff)


@pytest.mark.parametrize("family", sorted(FAMILY_PROMPTS))
def test_different_seeds_give_clearly_different_images(family: str) -> None:
    a = _render(FAMILY_PROMPTS[family], seed=1)
    b = _render(FAMILY_PROMPTS[family], seed=2)
    assert np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() > 8.0


@pytest.mark.parametrize("family", sorted(FAMILY_PROMPTS))
def test_higher_energy_means_more_saturation_and_contrast(family: str) -> None:
    calm = _render(FAMILY_PROMPTS[family], energy=0.1)
    loud = _render(FAMILY_PROMPTS[family], energy=0.9)
    # HSV chroma (S * V): plain S is noise in near-black pixels, which space is full of.
    assert _chroma(loud) > _chroma(calm) * 1.3
    assert _luma(loud).std() > _luma(calm).std() * 1.1


def test_chorus_is_brighter_than_intro() -> None:
    intro = _render("misty pine forest", energy=0.5, section="intro")
    chorus = _render("misty pine forest", energy=0.5, section="chorus")
    assert _luma(chorus).mean() > _luma(intro).mean() + 3.0


@pytest.mark.parametrize("family", sorted(FAMILY_PROMPTS))
@pytest.mark.parametrize("energy", [0.0, 1.0])
def test_images_are_not_flat_and_have_structure(family: str, energy: float) -> None:
    img = _render(FAMILY_PROMPTS[family], energy=energy)
    luma = _luma(img)
    assert luma.std() > 12.0
    edges = cv2.Canny(cv2.GaussianBlur(img, (3, 3), 0), 40, 120)
    assert (edges > 0).mean() > 0.004


def test_request_palette_is_used() -> None:
    reds = ((60, 0, 0), (140, 10, 10), (220, 40, 30), (255, 90, 70))
    img = _render("abstract shapes", palette=reds).astype(np.float32)
    assert img[..., 0].mean() > img[..., 2].mean() + 15.0


def test_palette_from_prompt_maps_keywords_to_themes() -> None:
    assert palette_from_prompt("a calm ocean") == THEMES["ocean"][1]
    assert palette_from_prompt("NEON streets") == THEMES["neon"][1]
    assert palette_from_prompt("deep space") == THEMES["space"][1]
    assert palette_from_prompt("a pine forest") == THEMES["forest"][1]
    assert palette_from_prompt("desert fire") == THEMES["sunset"][1]
    # A second theme lends its lightest colour as the accent.
    mixed = palette_from_prompt("ocean at sunset")
    assert mixed[:4] == THEMES["ocean"][1][:4]
    assert mixed[4] == THEMES["sunset"][1][4]
    # Words are matched whole: "season" is not "sea".
    assert palette_from_prompt("season") != THEMES["ocean"][1]


def test_ocean_palette_is_blue_and_sunset_palette_is_warm() -> None:
    ocean = np.array(palette_from_prompt("ocean"), dtype=float)
    sunset = np.array(palette_from_prompt("sunset"), dtype=float)
    assert ocean[:, 2].mean() > ocean[:, 0].mean()
    assert sunset[:, 0].mean() > sunset[:, 2].mean()


# Computed once from the SHA-256 digest of the prompt; it must never change, across
# processes, platforms or Python versions.
EXPECTED_HASHED = ((35, 11, 13), (21, 101, 56), (198, 32, 45), (111, 180, 225), (236, 216, 203))


def test_hashed_palette_is_fixed() -> None:
    assert palette_from_prompt("a song about nothing") == EXPECTED_HASHED


def test_hashed_palette_is_stable_across_processes() -> None:
    code = (
        "from engine.generation.palette import palette_from_prompt;"
        "print(palette_from_prompt('a song about nothing'))"
    )
    for hash_seed in ("1", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO_ROOT)},
        ).stdout.strip()
        assert out == repr(EXPECTED_HASHED)


@pytest.mark.parametrize("n", [1, 3, 5, 8])
def test_palette_size(n: int) -> None:
    palette = palette_from_prompt("ocean", n=n)
    assert len(palette) == n
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in palette)


@pytest.mark.parametrize("n", [0, 33, -1])
def test_palette_size_out_of_range(n: int) -> None:
    with pytest.raises(ParameterError, match=r"n=.* expected an integer in 1\.\.32"):
        palette_from_prompt("ocean", n=n)


def test_parse_palette_accepts_hex_lists() -> None:
    assert parse_palette("#ff8800,#112233") == ((255, 136, 0), (17, 34, 51))
    assert parse_palette(" ff8800 ; #123 ") == ((255, 136, 0), (17, 34, 51))
    assert parse_palette("#ABCDEF") == ((171, 205, 239),)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", r"palette='' is not allowed.*at least one colour"),
        ("  ,  ", r"at least one colour"),
        ("#ff880", r"palette colour='#ff880'"),
        ("#ff8800,#gg0000", r"palette colour='#gg0000'"),
        ("red", r"palette colour='red'.*hex colours"),
        (",".join(["#000000"] * 33), r"at most 32 colours"),
    ],
)
def test_parse_palette_rejects_bad_input(spec: str, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        parse_palette(spec)


def test_parse_palette_rejects_non_strings() -> None:
    with pytest.raises(ParameterError, match="palette"):
        parse_palette(123)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "palette",
    [
        ((255, 0, 0),),
        ((0, 0, 0), (255, 255, 255)),
        tuple((i * 30, 40, 250 - i * 30) for i in range(8)),
    ],
)
@pytest.mark.parametrize("family", sorted(FAMILY_PROMPTS))
def test_any_palette_length_paints(family: str, palette: tuple[tuple[int, int, int], ...]) -> None:
    img = _render(FAMILY_PROMPTS[family], width=160, height=90, palette=palette)
    assert img.shape == (90, 160, 3)
    assert _luma(img).std() > 5.0


def test_mountain_profile_never_goes_nan() -> None:
    """Regression: this request made `base ** 1.3` NaN (negative noise) and crashed a render."""
    from engine.generation.procedural import ProceduralBackend
    from engine.generation.types import StillRequest

    request = StillRequest(
        prompt="snowy mountains under the moon, cold blue, vivid, bright, energetic",
        seed=1132709840,
        width=1920,
        height=1080,
        palette=((12, 26, 43), (45, 74, 108), (126, 168, 202), (207, 230, 246), (224, 246, 242)),
        energy=0.9999077756597814,
        section="chorus",
        shot_index=22,
    )
    image = ProceduralBackend().generate(request)
    assert image.shape == (1080, 1920, 3) and float(image.std()) > 5
