from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.errors import ParameterError
from engine.generation.prompting import (
    CLIP_MAX_TOKENS,
    GenerationRequest,
    approximate_token_counter,
    clip_token_counter,
    compose_prompts,
    get_preset,
    load_presets,
)


@pytest.fixture(scope="module")
def clip_count():  # type: ignore[no-untyped-def]
    pytest.importorskip("transformers")
    return clip_token_counter("sd15")


def _ids(text: str) -> list[int]:
    from transformers import CLIPTokenizer

    from engine.generation.prompting import _tokenizer_dir

    tok = CLIPTokenizer.from_pretrained(str(_tokenizer_dir("sd15")), local_files_only=True)
    return list(tok(text)["input_ids"])


# ---------------------------------------------------------------- presets


def test_every_preset_parses_and_fits_the_budget(clip_count) -> None:  # type: ignore[no-untyped-def]
    directors, genres = load_presets("directors"), load_presets("genres")
    assert len(directors) >= 6 and len(genres) >= 8
    assert "wes_anderson" in directors and "cinematic" in genres
    for preset in [*directors.values(), *genres.values()]:
        assert preset.positive and preset.summary and preset.name
        # Each preset alone, after a short prompt, fits the 75 content tokens whole.
        assert clip_count("a prompt, " + ", ".join(preset.positive)) <= CLIP_MAX_TOKENS - 2
        assert clip_count(", ".join(preset.negative)) <= CLIP_MAX_TOKENS - 2
        assert all(0 <= c <= 255 for colour in preset.palette for c in colour)
    for director in directors.values():
        assert {"lens", "light", "palette", "composition", "grade"} <= set(director.look)


def test_preset_names_are_forgiving_and_unknown_ones_list_the_choices() -> None:
    assert get_preset("directors", "Wes Anderson").id == "wes_anderson"
    assert get_preset("directors", "denis-villeneuve").id == "denis_villeneuve"
    with pytest.raises(ParameterError, match=r"director_style='Michael Bay'.*wes_anderson"):
        get_preset("directors", "Michael Bay")
    with pytest.raises(ParameterError, match="kind"):
        load_presets("actors")


def test_a_broken_preset_file_names_the_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "genres").mkdir()
    (tmp_path / "genres" / "bad.toml").write_text('name = "Bad"\nsummary = "x"\npositive = []\n')
    with pytest.raises(ParameterError, match=r"genres/bad.toml: positive"):
        load_presets("genres", styles_dir=tmp_path)
    other = tmp_path / "other"
    (other / "genres").mkdir(parents=True)
    (other / "genres" / "bad.toml").write_text('name = "B"\nsummary = "x"\npositive = ["a"]\n')
    (other / "genres" / "colours.toml").write_text(
        'name = "C"\nsummary = "x"\npositive = ["a"]\npalette = ["red"]\n'
    )
    with pytest.raises(ParameterError, match=r"colours.toml: palette"):
        load_presets("genres", styles_dir=other)
    # Fixing the file is picked up without restarting.
    (other / "genres" / "colours.toml").write_text(
        'name = "C"\nsummary = "x"\npositive = ["a"]\npalette = ["#ff0000"]\n'
    )
    assert load_presets("genres", styles_dir=other)["colours"].palette == ((255, 0, 0),)


# ---------------------------------------------------------------- request


def test_request_validates_and_normalises() -> None:
    request = GenerationRequest("  a  lighthouse ", director_style="Wes Anderson", genre="Noir")
    assert request.prompt == "a lighthouse"
    assert (request.director_style, request.genre) == ("wes_anderson", "noir")
    with pytest.raises(ParameterError, match="genre='polka'"):
        GenerationRequest("x", genre="polka")
    with pytest.raises(ParameterError, match=r"width=700.*multiple of 8"):
        GenerationRequest("x", width=700)
    with pytest.raises(ParameterError, match="seed"):
        GenerationRequest("x", seed=-1)
    with pytest.raises(ParameterError, match="upscale_preset"):
        GenerationRequest("x", upscale_preset="ultra")
    with pytest.raises(ParameterError, match="prompt"):
        GenerationRequest("   ")
    with pytest.raises(ParameterError, match=r"camera_settings.lens"):
        GenerationRequest("x", camera_settings={"lens": [35]})
    with pytest.raises(TypeError):
        GenerationRequest("x", "scene-1")  # type: ignore[misc]  # keyword-only after prompt


def test_request_is_frozen_and_copies_its_settings() -> None:
    camera = {"lens": 35}
    request = GenerationRequest("x", camera_settings=camera)
    camera["lens"] = 85
    assert request.camera_settings == {"lens": 35}
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.prompt = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        request.camera_settings["lens"] = 50  # type: ignore[index]
    assert request.to_dict()["camera_settings"] == {"lens": 35}


# ---------------------------------------------------------------- composing


def test_composed_prompt_is_ordered_and_fits_the_real_clip_budget(clip_count) -> None:  # type: ignore[no-untyped-def]
    request = GenerationRequest(
        "a lighthouse on a cliff at night",
        director_style="denis_villeneuve",
        genre="sci_fi",
        camera_settings={"lens": 35, "aperture": 1.8, "shot": "wide", "iso": 800},
        lighting_setup={"key": "cold moonlight", "rim": True},
        composition={"rule": "rule of thirds"},
        negative_prompt="people",
    )
    bible = {"prompt_template": "{prompt}, teal and amber grade", "negative_prompt": "logo"}
    composed = compose_prompts(request, bible, clip_count, character="a woman in a red coat")
    positive = composed.positive
    assert positive.startswith("a lighthouse on a cliff at night, a woman in a red coat, ")
    # Token count is exact and within 77 including start/end.
    assert composed.tokens_used == len(_ids(positive)) <= CLIP_MAX_TOKENS
    assert composed.negative_tokens_used == len(_ids(composed.negative)) <= CLIP_MAX_TOKENS
    # Round-robin: the first fragment of every source made it in before any were dropped.
    for first in ("vast minimalist composition", "science fiction concept art", "35mm lens"):
        assert first in positive
    assert "cold moonlight" in positive and "rule of thirds" in positive
    assert "teal and amber grade" in positive
    # Source order in the text: director before genre before camera before lighting.
    order = [positive.index(s) for s in ("vast", "science fiction", "35mm", "cold moonlight")]
    assert order == sorted(order)
    # Something had to go (7 + 6 + 4 + 2 + 1 + 1 fragments do not fit) and it is reported.
    assert composed.dropped and all(":" in d for d in composed.dropped)
    for dropped in composed.dropped:
        if not dropped.startswith("negative"):
            assert dropped.split(": ", 1)[1] not in positive.split(", ")
    assert composed.negative.startswith("people, logo, ")
    assert composed.truncated_tokens == 0


def test_character_fragments_outrank_style_fragments(clip_count) -> None:  # type: ignore[no-untyped-def]
    request = GenerationRequest("portrait", director_style="wes_anderson")
    character = ", ".join(f"detail number {i}" for i in range(12))  # 47 tokens
    composed = compose_prompts(request, None, clip_count, character=character)
    for i in range(12):
        assert f"detail number {i}" in composed.positive
    assert any(d.startswith("director:") for d in composed.dropped)


def test_repeated_fragments_are_kept_once(clip_count) -> None:  # type: ignore[no-untyped-def]
    request = GenerationRequest("film grain, a street", genre="cinematic")
    composed = compose_prompts(request, {"prompt_template": "Film Grain"}, clip_count)
    assert composed.positive.lower().count("film grain") == 1


def test_prompt_alone_over_budget_is_truncated_at_a_word_boundary_with_a_warning(
    clip_count,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    words = [f"wordy{i} ocean" for i in range(40)]  # about 120 tokens
    prompt = " ".join(words)
    total = clip_count(prompt)
    assert total > 75
    with caplog.at_level("WARNING", logger="engine.generation.prompting"):
        composed = compose_prompts(GenerationRequest(prompt), None, clip_count)
    assert composed.tokens_used <= CLIP_MAX_TOKENS
    assert prompt.startswith(composed.positive) and composed.positive.split()[-1] in prompt.split()
    kept = clip_count(composed.positive)
    assert kept <= 75 and kept >= 73  # as many whole words as fit
    assert composed.truncated_tokens == total - kept
    assert f"dropping {total - kept} tokens" in caplog.text
    assert all(d.startswith(("genre", "negative")) for d in composed.dropped)


def test_strict_mode_refuses_an_over_budget_prompt(clip_count) -> None:  # type: ignore[no-untyped-def]
    prompt = " ".join(f"wordy{i} ocean" for i in range(40))
    with pytest.raises(ParameterError, match=r"at most 75 CLIP tokens \(this one has \d+\)"):
        compose_prompts(GenerationRequest(prompt, strict_prompt=True), None, clip_count)
    with pytest.raises(ParameterError, match="prompt="):
        compose_prompts(GenerationRequest(prompt), None, clip_count, strict=True)


def test_a_single_giant_word_is_cut_by_characters() -> None:
    composed = compose_prompts(GenerationRequest("x" * 500), None, len, max_tokens=50)
    assert composed.positive.startswith("x" * 48) and composed.tokens_used <= 50


def test_approximate_counter_tracks_the_real_one(clip_count) -> None:  # type: ignore[no-untyped-def]
    texts = [", ".join(p.positive) for p in load_presets("directors").values()]
    for text in texts:
        real, estimate = clip_count(text), approximate_token_counter(text)
        assert abs(estimate - real) <= 0.25 * real, (text, real, estimate)
