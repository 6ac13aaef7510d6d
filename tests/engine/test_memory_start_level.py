"""The configured starting memory level (``generation.memory_strategy``) on the real tiny
SD 1.5 pipeline: the backend applies it at load, and step-down still goes on from there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from engine.config.schema import MEMORY_STRATEGIES, SCHEMA  # noqa: E402
from engine.errors import ParameterError  # noqa: E402
from engine.generation.device import select_device  # noqa: E402
from engine.generation.diffusers_backend import DiffusersBackend  # noqa: E402
from engine.generation.memory_strategy import MEMORY_LEVELS, starting_level  # noqa: E402
from tests.generation_fixtures import one_torch_thread  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    with one_torch_thread():
        yield


def _sliced(pipe: Any) -> bool:
    names = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
    return any("Sliced" in n for n in names)


def test_schema_offers_auto_and_every_memory_level() -> None:
    assert ("auto", *MEMORY_LEVELS) == MEMORY_STRATEGIES
    assert SCHEMA["generation.memory_strategy"].default == "auto"


def test_auto_starts_at_the_fastest_level(tiny_sd15_folder: Path) -> None:
    backend = DiffusersBackend(tiny_sd15_folder, device="cpu", memory_level="auto")
    pipe = backend.load()
    assert backend.memory is not None and backend.memory.level == "none"
    assert not _sliced(pipe)
    assert not pipe.vae.use_tiling
    backend.unload()


def test_vae_tiling_start_applies_slicing_and_tiling_and_still_steps_down(
    tiny_sd15_folder: Path,
) -> None:
    backend = DiffusersBackend(tiny_sd15_folder, device="cpu", memory_level="vae_tiling")
    pipe = backend.load()
    assert backend.memory is not None and backend.memory.level == "vae_tiling"
    assert _sliced(pipe)
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    assert backend.stats()["memory_level"] == "vae_tiling"
    backend.unload()

    sliced = DiffusersBackend(tiny_sd15_folder, device="cpu", memory_level="attention_slicing")
    pipe = sliced.load()
    assert _sliced(pipe) and not pipe.vae.use_tiling
    assert sliced.memory is not None
    assert sliced.memory.step_down(pipe) == ("attention_slicing", "vae_tiling")
    assert pipe.vae.use_tiling
    sliced.unload()


def test_offload_start_on_the_cpu_becomes_the_leanest_cpu_level() -> None:
    cpu = select_device("cpu")
    assert starting_level("sequential_cpu_offload", cpu) == "vae_tiling"
    assert starting_level("auto", cpu) == "none"
    with pytest.raises(ParameterError, match="memory_strategy"):
        starting_level("tiny", cpu)


def test_unknown_level_is_refused_at_construction(tiny_sd15_folder: Path) -> None:
    with pytest.raises(ParameterError, match="memory_level"):
        DiffusersBackend(tiny_sd15_folder, device="cpu", memory_level="huge")
