"""IP-Adapter conditioning on the tiny SD 1.5 pipeline with a tiny random IP-Adapter.

The adapter (tests/generation_fixtures.make_tiny_ip_adapter) is written in the layout
diffusers' ``load_ip_adapter`` reads, for the tiny UNet's cross-attention width (32), and
its CLIP image encoder is the tiny CLIPVisionModelWithProjection of tests/clip_fixtures.
Everything runs through the real diffusers/transformers loading code on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import ModelError

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from engine.generation.diffusers_backend import DiffusersBackend, DiffusionRequest
from engine.generation.ip_adapter import (
    IPAdapterBaseMismatchError,
    find_image_encoder,
    find_ip_adapter,
)
from tests.clip_fixtures import save_tiny_clip_encoder
from tests.generation_fixtures import (
    build_tiny_sd15_pipeline,
    make_tiny_ip_adapter,
    one_torch_thread,
    save_tiny_sd15_folder,
)

SIZE = 64


@pytest.fixture(scope="module")
def tiny_sd15(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with one_torch_thread():
        return save_tiny_sd15_folder(tmp_path_factory.mktemp("sd") / "tiny-sd15")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/ with ip_adapters/tiny-ip-adapter.safetensors and clip/tiny-clip."""
    root = tmp_path_factory.mktemp("models")
    with one_torch_thread():
        pipe = build_tiny_sd15_pipeline()
        make_tiny_ip_adapter(root / "ip_adapters" / "tiny-ip-adapter.safetensors", pipe)
        make_tiny_ip_adapter(
            root / "other" / "ip-adapter_sdxl.safetensors", pipe, cross_attention_dim=2048
        )
        save_tiny_clip_encoder(root)
    return root


@pytest.fixture()
def backend(tiny_sd15: Path) -> Iterator[DiffusersBackend]:
    with one_torch_thread():
        backend = DiffusersBackend(tiny_sd15, device="cpu", steps=2, guidance=0.0)
        yield backend
        backend.unload()


def _reference(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.zeros((48, 48, 3), np.uint8)
    image[:] = rng.integers(0, 256, 3, dtype=np.uint8)
    cv2.circle(image, (24, 20), 12, tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    return image


def _request(**kw: object) -> DiffusionRequest:
    return DiffusionRequest(prompts=("a portrait",), seeds=(7,), width=SIZE, height=SIZE, **kw)  # type: ignore[arg-type]


def _ip(models: Path, ref: np.ndarray, scale: float = 1.0) -> dict[str, object]:
    return {
        "ip_adapter": models / "ip_adapters" / "tiny-ip-adapter.safetensors",
        "ip_adapter_image": ref,
        "ip_adapter_scale": scale,
        "ip_adapter_encoder": models / "clip" / "tiny-clip",
    }


def _diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_ip_adapter_conditions_output_deterministically_and_unloads(
    backend: DiffusersBackend, models: Path
) -> None:
    with one_torch_thread():
        plain = backend.diffuse(_request())[0]
        ref_a, ref_b = _reference(1), _reference(2)
        with_a = backend.diffuse(_request(**_ip(models, ref_a)))[0]
        assert backend.stats()["ip_adapter"].endswith("tiny-ip-adapter.safetensors")
        again = backend.diffuse(_request(**_ip(models, ref_a)))[0]
        with_b = backend.diffuse(_request(**_ip(models, ref_b)))[0]
        at_zero = backend.diffuse(_request(**_ip(models, ref_a, scale=0.0)))[0]
        assert backend.stats()["ip_adapter_loads"] == 1  # kept while requests ask for it
        after = backend.diffuse(_request())[0]
    assert _diff(with_a, plain) > 10  # the adapter changes the picture
    assert _diff(with_a, with_b) > 2  # ... according to the reference image
    assert _diff(with_a, again) == 0  # same seed, same reference: same pixels
    assert _diff(at_zero, plain) <= 1  # scale 0 is no adapter
    assert _diff(after, plain) == 0  # unloaded: plain requests are untouched
    assert backend.stats()["ip_adapter"] is None
    pipe = backend.load()
    assert pipe.image_encoder is None and pipe.unet.encoder_hid_proj is None


def _sliced(pipe: object) -> bool:
    return any("Sliced" in type(p).__name__ for p in pipe.unet.attn_processors.values())  # type: ignore[attr-defined]


def test_ip_adapter_under_attention_slicing_and_after_an_oom_step_down(
    tiny_sd15: Path, models: Path
) -> None:
    import torch

    ref = _reference(1)
    with one_torch_thread():
        fast = DiffusersBackend(tiny_sd15, device="cpu", steps=2, guidance=0.0)
        expected = fast.diffuse(_request(**_ip(models, ref)))[0]
        plain = fast.diffuse(_request())[0]
        fast.unload()
        # a pipeline in attention slicing: plain attention while the adapter is loaded
        sliced = DiffusersBackend(
            tiny_sd15, device="cpu", steps=2, guidance=0.0, memory_level="attention_slicing"
        )
        pipe = sliced.load()
        assert _sliced(pipe)
        got = sliced.diffuse(_request(**_ip(models, ref)))[0]
        sliced.diffuse(_request())
        assert _sliced(pipe)  # slicing is back once the adapter is unloaded
        sliced.unload()
        # out of memory with the adapter loaded: the step down to attention slicing keeps it
        backend = DiffusersBackend(tiny_sd15, device="cpu", steps=2, guidance=0.0)
        backend.diffuse(_request(**_ip(models, ref)))
        pipe = backend.load()
        raised: list[bool] = []

        def oom_once(module: object, args: object) -> None:
            if not raised:
                raised.append(True)
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        handle = pipe.unet.register_forward_pre_hook(oom_once)
        try:
            after_oom = backend.diffuse(_request(**_ip(models, ref)))[0]
        finally:
            handle.remove()
        stats = backend.stats()
        backend.unload()
    assert raised == [True] and stats["memory_level"] == "attention_slicing"
    assert stats["ip_adapter_loads"] == 2  # loaded again after the step down
    assert _diff(got, expected) <= 1 and _diff(after_oom, expected) <= 1
    assert _diff(expected, plain) > 10


def test_ip_adapter_with_img2img_and_a_batch(backend: DiffusersBackend, models: Path) -> None:
    with one_torch_thread():
        ref = _reference(1)
        batch = backend.diffuse(
            DiffusionRequest(
                prompts=("a portrait", "a portrait"),
                seeds=(7, 8),
                width=SIZE,
                height=SIZE,
                **_ip(models, ref),  # type: ignore[arg-type]
            )
        )
        init = cv2.resize(_reference(3), (SIZE, SIZE))
        img2img = backend.diffuse(_request(init_image=init, strength=0.5, **_ip(models, ref)))[0]
        plain_img2img = backend.diffuse(_request(init_image=init, strength=0.5))[0]
    assert len(batch) == 2 and _diff(batch[0], batch[1]) > 0
    assert _diff(img2img, plain_img2img) > 0


def test_wrong_base_ip_adapter_is_refused_before_loading(
    backend: DiffusersBackend, models: Path
) -> None:
    sdxl = models / "other" / "ip-adapter_sdxl.safetensors"
    with one_torch_thread(), pytest.raises(IPAdapterBaseMismatchError, match="SDXL") as info:
        backend.diffuse(
            _request(
                ip_adapter=sdxl,
                ip_adapter_image=_reference(1),
                ip_adapter_encoder=models / "clip" / "tiny-clip",
            )
        )
    assert info.value.error_code == "wrong_base" and isinstance(info.value, ModelError)
    assert (info.value.adapter_context, info.value.model_context) == (2048, 32)
    pipe = backend.load()
    assert pipe.image_encoder is None and pipe.unet.encoder_hid_proj is None  # nothing loaded
    assert backend.stats()["ip_adapter"] is None


def test_pickled_bin_adapter_loads_without_executing_code(
    backend: DiffusersBackend, models: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    flat = load_file(str(models / "ip_adapters" / "tiny-ip-adapter.safetensors"))
    nested: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        nested[head][rest] = value
    binary = tmp_path / "ip-adapter.bin"
    torch.save(nested, binary)
    ref = _reference(1)
    with one_torch_thread():
        from_safetensors = backend.diffuse(_request(**_ip(models, ref)))[0]
        options = {**_ip(models, ref), "ip_adapter": binary}
        from_bin = backend.diffuse(_request(**options))[0]
    assert _diff(from_safetensors, from_bin) == 0


def test_request_needs_adapter_and_image_together(models: Path) -> None:
    with pytest.raises(ValueError, match="ip_adapter_image"):
        _request(ip_adapter=models / "ip_adapters" / "tiny-ip-adapter.safetensors")
    with pytest.raises(ValueError, match="ip_adapter_scale"):
        _request(**_ip(models, _reference(1), scale=3.0))


def test_finding_weights_and_encoder(tmp_path: Path, models: Path) -> None:
    assert find_ip_adapter(models) == models / "ip_adapters" / "tiny-ip-adapter.safetensors"
    # the encoder: clip/ when the adapter has no image_encoder/ folder next to it
    assert find_image_encoder(find_ip_adapter(models), models) == models / "clip" / "tiny-clip"
    # h94/IP-Adapter layout: models/sd15/ip-adapter_sd15.bin + models/image_encoder/
    root = tmp_path / "m"
    (root / "ip_adapters" / "h94" / "models" / "image_encoder").mkdir(parents=True)
    (root / "ip_adapters" / "h94" / "models" / "image_encoder" / "config.json").write_text("{}")
    (root / "ip_adapters" / "h94" / "models" / "image_encoder" / "model.safetensors").write_text("")
    weights = root / "ip_adapters" / "h94" / "models" / "sd15" / "ip-adapter_sd15.bin"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    assert find_ip_adapter(root) == weights  # the encoder's weights are not an adapter
    assert find_image_encoder(weights, root) == weights.parent.parent / "image_encoder"
    assert find_ip_adapter(tmp_path / "none") is None


def test_generator_conditions_a_character_through_the_ip_adapter(
    tiny_sd15: Path, models: Path, tmp_path: Path
) -> None:
    from engine.generation.generator import CinematicImageGenerator
    from engine.generation.prompting import GenerationRequest, approximate_token_counter
    from tests.engine.test_characters import draw_figure

    config = {
        "backend_order": ["diffusers"],
        "model": str(tiny_sd15),
        "device": "cpu",
        "models_dir": str(models),
    }
    generator = CinematicImageGenerator(tmp_path / "p", config, tokenizer=approximate_token_counter)
    mara = tmp_path / "mara.png"
    cv2.imwrite(str(mara), cv2.cvtColor(draw_figure("A", size=64), cv2.COLOR_RGB2BGR))
    generator.characters.create_profile("Mara", [mara], "red coat")
    request = GenerationRequest(
        "portrait",
        width=SIZE,
        height=SIZE,
        steps=2,
        guidance_scale=1.0,
        character_name="Mara",
        maintain_character=True,
    )
    with one_torch_thread():
        result = generator.generate_single(request)
        backend = generator._backends["diffusers"]
        assert backend.stats()["ip_adapter_loads"] == 1
        plain = generator.generate_single(
            GenerationRequest(
                "portrait",
                width=SIZE,
                height=SIZE,
                steps=2,
                guidance_scale=1.0,
                seed=result["seed"],
            )
        )
    cond = result["character_conditioning"]
    assert cond["method"] == "ip_adapter"
    assert cond["ip_adapter"].endswith("tiny-ip-adapter.safetensors")
    assert cond["image_encoder"].endswith("tiny-clip") and cond["ip_adapter_scale"] == 0.6
    assert result["seed"] == generator.characters.get_profile("mara").seed
    assert backend.stats()["ip_adapter"] is None  # unloaded for the plain request
    assert plain["character_conditioning"] is None
    assert _diff(cv2.imread(result["path"]), cv2.imread(plain["path"])) > 0
    # Without an image encoder the character falls back to reference img2img, and says why.
    no_clip = tmp_path / "models_no_clip"
    (no_clip / "ip_adapters").mkdir(parents=True)
    (no_clip / "ip_adapters" / "a.safetensors").write_bytes(
        (models / "ip_adapters" / "tiny-ip-adapter.safetensors").read_bytes()
    )
    generator.characters.models_dir = no_clip
    fallback = generator.characters.conditioning_for("mara")
    assert fallback["method"] == "img2img" and "image encoder" in fallback["fallback_reason"]
    generator.characters.models_dir = None
    none = generator.characters.conditioning_for("mara")
    assert none["method"] == "img2img" and "no IP-Adapter" in none["fallback_reason"]
