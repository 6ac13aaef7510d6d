"""Memory levels for a diffusers pipeline, and the step-down-on-out-of-memory retry.

The levels are ordered from fastest to leanest; each one keeps the measures of the
levels before it:

0. ``none`` — the whole pipeline resident on the device;
1. ``attention_slicing`` — attention computed in slices (``pipe.enable_attention_slicing``);
2. ``vae_tiling`` — the VAE decodes in tiles and one image at a time
   (``vae.enable_tiling`` + ``vae.enable_slicing``);
3. ``model_cpu_offload`` — each model moves to the GPU only while it runs (needs accelerate);
4. ``sequential_cpu_offload`` — each layer moves to the GPU only while it runs (slowest).

CPU offload makes no sense when the device *is* the CPU, so the CPU stops at level 2.
On an out-of-memory error :func:`run_with_memory_fallback` frees what it can, steps down
one level, logs a WARNING, counts the step and retries the same call; past the last level
it raises :class:`~engine.errors.GenerationError` telling the user what to reduce.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.errors import GenerationError, ParameterError
from engine.generation.device import DeviceInfo

__all__ = [
    "MEMORY_LEVELS",
    "MemoryStrategy",
    "free_device_memory",
    "is_out_of_memory",
    "levels_for_device",
    "run_with_memory_fallback",
    "starting_level",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

MEMORY_LEVELS = (
    "none",
    "attention_slicing",
    "vae_tiling",
    "model_cpu_offload",
    "sequential_cpu_offload",
)
_OFFLOAD = ("model_cpu_offload", "sequential_cpu_offload")


def _accelerate_available() -> bool:
    try:
        import accelerate  # noqa: F401
    except ImportError:
        return False
    return True


def levels_for_device(device: DeviceInfo) -> tuple[str, ...]:
    """The levels that make sense on ``device``.

    Offload levels need a GPU-like device and the ``accelerate`` package; without it they
    are left out (logged once per call).
    """
    if device.kind == "cpu":
        return MEMORY_LEVELS[:3]
    if not _accelerate_available():
        log.info("accelerate is not installed: CPU offload levels are unavailable")
        return MEMORY_LEVELS[:3]
    return MEMORY_LEVELS


def starting_level(requested: str, device: DeviceInfo) -> str:
    """The level a pipeline starts at for the configured ``generation.memory_strategy``.

    Parameters
    ----------
    requested : str
        ``"auto"`` (the fastest level, ``none``) or one of :data:`MEMORY_LEVELS`.
    device : DeviceInfo
        Where the pipeline runs.

    Returns
    -------
    str
        ``requested`` when the device offers it; an offload level the device cannot use
        (the CPU, or no ``accelerate``) becomes the leanest level it can (logged).

    Raises
    ------
    ParameterError
        ``requested`` is neither ``"auto"`` nor a memory level.
    """
    if requested != "auto" and requested not in MEMORY_LEVELS:
        raise ParameterError(
            "generation.memory_strategy", requested, f"auto or one of {', '.join(MEMORY_LEVELS)}"
        )
    levels = levels_for_device(device)
    if requested == "auto":
        return levels[0]
    if requested not in levels:
        log.info(
            "memory level %s is not available on %s; starting at %s",
            requested,
            device.name,
            levels[-1],
        )
        return levels[-1]
    return requested


def is_out_of_memory(err: BaseException) -> bool:
    """True for torch's out-of-memory errors (CUDA, generic, and MPS's RuntimeError)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        oom_types = tuple(
            t
            for t in (
                getattr(torch, "OutOfMemoryError", None),
                getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None),
            )
            if isinstance(t, type)
        )
        if oom_types and isinstance(err, oom_types):
            return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def free_device_memory() -> None:
    """Collect garbage and return cached blocks to the driver (CUDA/MPS), if torch is loaded."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()


@dataclass
class MemoryStrategy:
    """Which memory level a pipeline runs at.

    Parameters
    ----------
    device : DeviceInfo
        Where the pipeline runs.
    level : str
        Starting level (one of :data:`MEMORY_LEVELS` valid for the device).

    Attributes
    ----------
    levels : tuple of str
        The levels available on this device, fastest first.
    stepdowns : list of (str, str)
        Every step taken after an out-of-memory error, as ``(from, to)``.
    """

    device: DeviceInfo
    level: str = "none"
    levels: tuple[str, ...] = field(init=False)
    stepdowns: list[tuple[str, str]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.levels = levels_for_device(self.device)
        if self.level not in self.levels:
            raise ParameterError("memory_level", self.level, f"one of {', '.join(self.levels)}")

    @property
    def index(self) -> int:
        return self.levels.index(self.level)

    @property
    def at_last_level(self) -> bool:
        return self.index == len(self.levels) - 1

    def apply(self, pipe: Any) -> None:
        """Put ``pipe`` in the current level (every measure up to it).

        At the levels without offload the pipeline is moved to the device.
        """
        upto = self.levels[: self.index + 1]
        if "attention_slicing" in upto:
            pipe.enable_attention_slicing()
        if "vae_tiling" in upto:
            pipe.vae.enable_tiling()
            pipe.vae.enable_slicing()
        if self.level == "sequential_cpu_offload":
            pipe.enable_sequential_cpu_offload(device=self.device.torch_device)
        elif self.level == "model_cpu_offload":
            pipe.enable_model_cpu_offload(device=self.device.torch_device)
        else:
            pipe.to(self.device.torch_device)

    def step_down(self, pipe: Any) -> tuple[str, str]:
        """Move to the next leaner level and apply it; return ``(old, new)``.

        Raises
        ------
        IndexError
            Already at the last level.
        """
        if self.at_last_level:
            raise IndexError("no leaner memory level")
        old = self.level
        new = self.levels[self.index + 1]
        if old in _OFFLOAD and hasattr(pipe, "remove_all_hooks"):
            pipe.remove_all_hooks()
        self.level = new
        self.apply(pipe)
        self.stepdowns.append((old, new))
        return old, new


def run_with_memory_fallback(
    strategy: MemoryStrategy,
    pipe: Any,
    call: Callable[[], T],
    *,
    backend_name: str = "diffusers",
    prompt: str = "",
    on_step: Callable[[str, str], None] | None = None,
) -> T:
    """Run ``call``; on out-of-memory step the strategy down one level and retry.

    Parameters
    ----------
    strategy : MemoryStrategy
    pipe : diffusers pipeline
        The pipeline ``call`` uses; it is reconfigured in place.
    call : callable
        Runs one generation; called again (same request) after each step down.
    backend_name, prompt : str
        For the error raised at the last level.
    on_step : callable, optional
        Called with ``(old_level, new_level)`` after each step (the backend counts them).

    Raises
    ------
    GenerationError
        Out of memory at the leanest level (``error_code="oom"``).
    """
    while True:
        try:
            return call()
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            if strategy.at_last_level:
                free_device_memory()
                raise GenerationError(
                    f"out of memory on {strategy.device.name} even at the leanest memory level "
                    f"({strategy.level}); generate a smaller image (--width/--height), fewer "
                    "variants or a smaller batch, or close other programs using the GPU",
                    backend=backend_name,
                    prompt=prompt,
                    error_code="oom",
                ) from err
        # Out of the except block the error and its traceback (whose frames hold the failed
        # call's activations) are gone, so freeing memory here actually frees it.
        free_device_memory()
        old, new = strategy.step_down(pipe)
        log.warning(
            "out of memory on %s at memory level %s; retrying at %s (%s)",
            strategy.device.name,
            old,
            new,
            reason,
        )
        if on_step is not None:
            on_step(old, new)
