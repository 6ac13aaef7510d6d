"""The diffusers backend on a tiny random-weight SD 1.5 pipeline (CPU, 64 px, 2 steps).

Everything here runs the real diffusers pipeline; only the weights are tiny and random
(tests/generation_fixtures.py), so the pixels mean nothing but every code path is real.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from engine.context import StageContext  # noqa: E402
from engine.errors import BackendError, CancelledError, GenerationError, ParameterError  # noqa: E402
from engine.events import JobProgress  # noqa: E402
from engine.generation.backends import (  # noqa: E402
    create_backend,
    create_first_available,
    resolve_model_path,
)
from engine.generation.device import select_device  # noqa: E402
from engine.generation.diffusers_backend import DiffusersBackend, DiffusionRequest  # noqa: E402
from engine.generation.lora import (  # noqa: E402
    LoraBaseMismatchError,
    LoraSpec,
    check_lora_context,
)
from engine.generation.types import StillRequest  # noqa: E402
from tests.generation_fixtures import make_tiny_lora, one_torch_thread  # noqa: E402

SIZE = 32
STEPS = 2


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def backend(tiny_sd15_folder: Path) -> DiffusersBackend:
    return DiffusersBackend(tiny_sd15_folder, device="cpu", steps=STEPS)


def _one(
    backend: DiffusersBackend, seed: int, prompt: str = "a red lighthouse", **kw: Any
) -> np.ndarray:
    return backend.txt2img([prompt], seeds=[seed], width=SIZE, height=SIZE, steps=STEPS, **kw)[0]


def test_txt2img_batch_gives_rgb_uint8_per_prompt(backend: DiffusersBackend) -> None:
    images = backend.txt2img(
        ["a red lighthouse", "a blue forest"], seeds=[1, 2], width=SIZE, height=48, steps=STEPS
    )
    assert len(images) == 2
    for image in images:
        assert image.shape == (48, SIZE, 3)
        assert image.dtype == np.uint8
        assert image.std() > 1.0  # not a blank frame
    assert not np.array_equal(images[0], images[1])
    stats = backend.stats()
    assert stats["images"] >= 2 and stats["device"] == "cpu" and stats["dtype"] == "float32"


def test_same_seed_same_pixels_different_seed_differs(backend: DiffusersBackend) -> None:
    a = _one(backend, 7)
    b = _one(backend, 7)
    c = _one(backend, 8)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 1.0
    # an image does not depend on its batch neighbours
    batch = backend.txt2img(
        ["a red lighthouse", "other"], seeds=[7, 9], width=SIZE, height=SIZE, steps=STEPS
    )
    np.testing.assert_allclose(batch[0].astype(int), a.astype(int), atol=2)


def test_img2img_uses_the_init_image_and_strength(backend: DiffusersBackend) -> None:
    rng = np.random.default_rng(0)
    init_a = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    init_b = np.zeros((SIZE, SIZE, 3), np.uint8)
    kw: dict[str, Any] = {"seeds": [3], "steps": 4}
    out_a = backend.img2img(init_a, ["a cat"], strength=0.5, **kw)[0]
    out_b = backend.img2img(init_b, ["a cat"], strength=0.5, **kw)[0]
    out_a_strong = backend.img2img(init_a, ["a cat"], strength=1.0, **kw)[0]
    assert out_a.shape == (SIZE, SIZE, 3) and out_a.dtype == np.uint8
    # Random VAE weights decode with little gain, so the differences are small but real:
    # most pixels change with the init image and with the strength.
    assert (out_a != out_b).mean() > 0.3
    assert (out_a != out_a_strong).mean() > 0.3
    np.testing.assert_array_equal(backend.img2img(init_a, ["a cat"], strength=0.5, **kw)[0], out_a)
    with pytest.raises(ParameterError, match="strength"):
        backend.img2img(init_a, ["a cat"], strength=0.0, **kw)
    # 2 steps at strength 0.2 would leave no step: the backend runs enough for one
    weak = backend.img2img(init_a, ["a cat"], strength=0.2, seeds=[3], steps=2)[0]
    assert weak.shape == (SIZE, SIZE, 3)


def test_scheduler_choice_changes_the_sampler(backend: DiffusersBackend) -> None:
    euler = _one(backend, 5, scheduler="euler")
    assert type(backend.load().scheduler).__name__ == "EulerDiscreteScheduler"
    ddim = _one(backend, 5, scheduler="ddim")
    assert type(backend.load().scheduler).__name__ == "DDIMScheduler"
    assert np.abs(euler.astype(int) - ddim.astype(int)).mean() > 0.5
    np.testing.assert_array_equal(_one(backend, 5, scheduler="euler"), euler)
    with pytest.raises(ParameterError, match="scheduler"):
        _one(backend, 5, scheduler="k_euler_magic")


def test_single_file_checkpoint_loads_the_same_weights(
    backend: DiffusersBackend, tiny_sd15_single_file: tuple[Path, Path]
) -> None:
    path, config_dir = tiny_sd15_single_file
    from_folder = _one(backend, 11)
    single = DiffusersBackend(path, device="cpu", config_dir=config_dir)
    try:
        from_file = _one(single, 11)
        assert not backend.is_loaded  # one model resident at a time
    finally:
        single.unload()
    np.testing.assert_allclose(from_file.astype(int), from_folder.astype(int), atol=1)


def test_single_file_of_unknown_family_asks_for_a_config(
    tiny_sd15_single_file: tuple[Path, Path],
) -> None:
    path, _ = tiny_sd15_single_file
    # identify_checkpoint reads the cross-attention width (32: no known family) from the
    # header; without a config folder the backend cannot build the pipeline and says so.
    unknown = DiffusersBackend(path, device="cpu")
    with pytest.raises(BackendError, match=r"cross-attention width 32.*--model-config"):
        unknown.load()
    assert not unknown.is_loaded


def test_lora_changes_the_output_and_scale_zero_does_not(
    backend: DiffusersBackend, tiny_sd15_folder: Path, tmp_path: Path
) -> None:
    lora_path = make_tiny_lora(tmp_path / "tiny-lora.safetensors", backend.load(), scale=0.5)
    plain = _one(backend, 4)
    with_lora = DiffusersBackend(tiny_sd15_folder, device="cpu", loras=[LoraSpec(path=lora_path)])
    off = DiffusersBackend(
        tiny_sd15_folder, device="cpu", loras=[LoraSpec(path=lora_path, scale=0.0)]
    )
    try:
        changed = _one(with_lora, 4)
        unchanged = _one(off, 4)
    finally:
        off.unload()
        with_lora.unload()
    assert np.abs(changed.astype(int) - plain.astype(int)).mean() > 1.0
    np.testing.assert_allclose(unchanged.astype(int), plain.astype(int), atol=1)


def test_lora_for_another_base_is_refused_before_loading_it(
    tiny_sd15_folder: Path, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    # An SDXL LoRA: its cross-attention key projection reads the 2048-wide SDXL text embedding.
    key = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"
    sdxl_lora = tmp_path / "sdxl-style.safetensors"
    save_file(
        {f"{key}.lora_A.weight": torch.zeros(4, 2048), f"{key}.lora_B.weight": torch.zeros(64, 4)},
        str(sdxl_lora),
    )
    wrong = DiffusersBackend(tiny_sd15_folder, device="cpu", loras=[LoraSpec(path=sdxl_lora)])
    with pytest.raises(LoraBaseMismatchError, match=r"SDXL.*text width 32") as info:
        wrong.load()
    assert info.value.lora_family == "SDXL"
    assert not wrong.is_loaded
    # the check made from a real SD 1.5 checkpoint's header, before loading it
    with pytest.raises(
        LoraBaseMismatchError, match=r"LoRA for SDXL but the loaded model is SD 1.5"
    ):
        check_lora_context(sdxl_lora, 768, False)
    check_lora_context(sdxl_lora, 2048, True)  # an SDXL model takes it


def test_out_of_memory_steps_down_one_level_and_retries(
    backend: DiffusersBackend, caplog: pytest.LogCaptureFixture
) -> None:
    expected = _one(backend, 21)
    pipe = backend.load()
    assert backend.memory is not None
    level_before = backend.memory.level
    stepdowns_before = backend.stats()["oom_stepdowns"]
    raised: list[bool] = []

    def oom_once(module: Any, args: Any) -> None:
        if not raised:
            raised.append(True)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    handle = pipe.unet.register_forward_pre_hook(oom_once)
    try:
        with caplog.at_level(logging.WARNING):
            got = _one(backend, 21)
    finally:
        handle.remove()
    stats = backend.stats()
    assert raised == [True]
    assert stats["oom_stepdowns"] == stepdowns_before + 1
    assert stats["memory_level"] != level_before
    assert stats["memory_stepdowns"][-1] == f"{level_before}->{stats['memory_level']}"
    assert any(
        "out of memory" in r.message and r.levelno == logging.WARNING for r in caplog.records
    )
    np.testing.assert_allclose(got.astype(int), expected.astype(int), atol=2)


def test_out_of_memory_at_the_last_level_says_what_to_do(tiny_sd15_folder: Path) -> None:
    lean = DiffusersBackend(tiny_sd15_folder, device="cpu")
    pipe = lean.load()

    def always_oom(module: Any, args: Any) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory")

    pipe.unet.register_forward_pre_hook(always_oom)
    try:
        with pytest.raises(GenerationError, match="smaller image") as info:
            _one(lean, 1)
    finally:
        lean.unload()
    assert info.value.error_code == "oom"
    assert lean.stats()["oom_stepdowns"] == 2  # none -> attention_slicing -> vae_tiling on CPU


def test_cancel_mid_generation_through_the_step_callback(backend: DiffusersBackend) -> None:
    events: list[JobProgress] = []
    context = StageContext(stage="generate")

    def sink(event: Any) -> None:
        if isinstance(event, JobProgress):
            events.append(event)
            if event.step == 2:
                context.cancel_event.set()

    context.sink = sink
    with pytest.raises(CancelledError):
        backend.txt2img(["a cat"], seeds=[1], width=SIZE, height=SIZE, steps=6, context=context)
    assert [e.step for e in events] == [1, 2]  # stopped before step 3 of 6
    assert events[0].total == 6
    # a cancelled context refuses to start
    with pytest.raises(CancelledError):
        backend.txt2img(["a cat"], seeds=[1], width=SIZE, height=SIZE, steps=2, context=context)


def test_image_backend_protocol_resizes_to_the_request(backend: DiffusersBackend) -> None:
    image = backend.generate(StillRequest(prompt="a bridge", seed=3, width=60, height=34))
    assert image.shape == (34, 60, 3) and image.dtype == np.uint8
    assert backend.name == "diffusers" and backend.is_draft is False


def test_few_step_checkpoint_gets_turbo_defaults(tiny_sd15_folder: Path, tmp_path: Path) -> None:
    turbo_dir = tmp_path / "tiny-sd-turbo"
    shutil.copytree(tiny_sd15_folder, turbo_dir)
    turbo = DiffusersBackend(turbo_dir, device="cpu")
    try:
        turbo.diffuse(DiffusionRequest(prompts=("x",), seeds=(1,), width=SIZE, height=SIZE))
        assert turbo.few_step
        assert turbo.stats()["steps"] == 4
        assert type(turbo.load().scheduler).__name__ == "EulerAncestralDiscreteScheduler"
        assert turbo.load().scheduler.config.timestep_spacing == "trailing"
    finally:
        turbo.unload()


def test_failover_uses_procedural_when_the_model_is_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "nope.safetensors"
    with caplog.at_level(logging.WARNING):
        chosen = create_first_available(["diffusers", "procedural"], model=missing, device="cpu")
    assert chosen.name == "procedural" and chosen.is_draft
    assert any("diffusers" in r.message and "nope.safetensors" in r.message for r in caplog.records)
    with pytest.raises(BackendError, match=r"diffusers: .*model not found"):
        create_first_available(["diffusers"], model=missing, device="cpu")
    with pytest.raises(BackendError, match="needs a model"):
        create_backend("diffusers")


def test_missing_sd_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)  # as if not installed
    with pytest.raises(BackendError, match=r"pip install 'apex-director\[sd\]'"):
        create_backend("diffusers", model="x.safetensors")


def test_device_selection_on_cpu() -> None:
    info = select_device("cpu")
    assert info.kind == "cpu" and info.dtype_name == "float32"
    assert info.as_stats()["device_name"] == "CPU"
    assert select_device("cpu", "bf16").dtype_name == "bfloat16"
    with pytest.raises(ParameterError, match="device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="no CUDA GPU"):
            select_device("cuda")
        assert select_device("auto").kind in ("cpu", "mps")


def test_model_names_resolve_in_our_and_a1111_layouts(
    tiny_sd15_single_file: tuple[Path, Path], tmp_path: Path
) -> None:
    path, _ = tiny_sd15_single_file
    ours = tmp_path / "models"
    (ours / "checkpoints").mkdir(parents=True)
    shutil.copy(path, ours / "checkpoints" / "dream.safetensors")
    assert resolve_model_path("dream", ours) == ours / "checkpoints" / "dream.safetensors"
    a1111 = tmp_path / "webui" / "models"
    (a1111 / "Stable-diffusion" / "sub").mkdir(parents=True)
    shutil.copy(path, a1111 / "Stable-diffusion" / "sub" / "other.safetensors")
    found = resolve_model_path("other", a1111)
    # the tiny file's family is unknown, so the registry lists it with a problem; the
    # lookup is by name and still finds it
    assert found == a1111 / "Stable-diffusion" / "sub" / "other.safetensors"
    assert resolve_model_path("nothing", a1111) == Path("nothing")


def test_one_model_resident_across_generate_and_upscale(
    backend: DiffusersBackend, tmp_path: Path
) -> None:
    """The upscaler takes the device from a loaded pipeline, and the pipeline from the
    upscaler: one model resident at a time across stages."""
    from engine.generation.upscale import upscaler as upscaler_module
    from engine.generation.upscale.upscaler import (
        ensure_default_upscaler,
        load_upscaler,
        release_upscaler,
    )

    weights = ensure_default_upscaler(tmp_path / "models", "realesr-animevideov3")
    backend.load()
    assert backend.is_loaded
    load_upscaler(weights, device="cpu")
    assert not backend.is_loaded and upscaler_module._slot.loaded is not None
    backend.load()
    assert backend.is_loaded and upscaler_module._slot.loaded is None
    release_upscaler()


def test_sdxl_folder_generates_through_the_sdxl_pipeline(tmp_path: Path) -> None:
    """A (tiny) SDXL diffusers folder, built from the shipped SDXL configs with random
    weights and saved to disk, loads as the SDXL pipeline and runs through it
    (two text encoders, size conditioning); same seed, same pixels."""
    import importlib.util

    import torch

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        "gpu_generation", root / "benchmarks" / "gpu_generation.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(0)
    pipe = bench.build_random_pipeline("sdxl", device="cpu", dtype=torch.float32, tiny=True)
    folder = tmp_path / "tiny-sdxl"
    pipe.save_pretrained(folder)
    sdxl = DiffusersBackend(folder, device="cpu", steps=STEPS)
    try:
        first = sdxl.txt2img(["a lighthouse"], seeds=[3], width=SIZE, height=SIZE, steps=STEPS)[0]
        again = sdxl.txt2img(["a lighthouse"], seeds=[3], width=SIZE, height=SIZE, steps=STEPS)[0]
        assert type(sdxl.load()).__name__ == "StableDiffusionXLPipeline"
        assert first.shape == (SIZE, SIZE, 3) and first.dtype == np.uint8
        np.testing.assert_array_equal(first, again)
    finally:
        sdxl.unload()
