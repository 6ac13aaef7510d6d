"""Local Stable Diffusion (1.5 / 2.x / SDXL) through Hugging Face diffusers.

:class:`DiffusersBackend` implements the :class:`~engine.generation.types.ImageBackend`
protocol (``generate(StillRequest) -> RGB uint8``) and richer calls for the CLI and the
generator: :meth:`DiffusersBackend.diffuse` takes a :class:`DiffusionRequest` (several
prompts in one batch, txt2img or img2img, scheduler, steps, guidance, negative prompt,
one seed per image).

Loading
    A diffusers folder (``model_index.json``) loads with ``from_pretrained``; a single
    ``.safetensors``/``.ckpt`` checkpoint with ``from_single_file(path, config=<folder>)``,
    where the folder is the shipped configuration of the checkpoint's family
    (``resources/sd/<family>/``, told by ``identify_checkpoint``) or ``config_dir``.
    Both use ``local_files_only=True``: nothing is ever downloaded here.  Weights load in
    the device's dtype (:mod:`engine.generation.device`).  One model is resident at a time
    in the process: loading one unloads any other (:meth:`DiffusersBackend.unload`).

Determinism
    Each image gets its own ``torch.Generator`` seeded with its seed (on the CUDA device,
    on the CPU for CPU and MPS), so the same seed, prompt, size, scheduler and steps give
    the same pixels, and an image does not depend on the others in its batch.

Few-step models
    A checkpoint identified as Turbo/Lightning/Hyper/LCM runs with guidance 0 and 4 steps
    by default (LCM with the LCM scheduler, the others with Euler-ancestral on trailing
    timesteps) unless the request says otherwise.

Progress and cancellation
    ``callback_on_step_end`` reports each step to the :class:`~engine.context.StageContext`
    and raises :class:`~engine.errors.CancelledError` as soon as its ``cancel_event`` is
    set, which stops the pipeline mid-denoising.

IP-Adapter
    A request with ``ip_adapter`` (weights file), ``ip_adapter_image`` (the reference, e.g.
    a character's) and ``ip_adapter_scale`` conditions the images on that reference
    through an IP-Adapter (:mod:`engine.generation.ip_adapter`): the adapter and its CLIP
    image encoder are loaded onto the pipeline on first use (an adapter for another base
    family is refused first with :class:`~engine.generation.ip_adapter.IPAdapterBaseMismatchError`),
    kept while requests keep asking for it, and unloaded by the first request without one,
    so plain requests give exactly the pixels they give without an adapter.

Out of memory
    Handled by :mod:`engine.generation.memory_strategy`: the pipeline steps down one memory
    level and the same request is retried; :meth:`DiffusersBackend.stats` counts the steps.
"""

from __future__ import annotations

import gc
import logging
import math
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.context import StageContext
from engine.errors import BackendError, CancelledError, GenerationError, ModelError, ParameterError
from engine.generation.device import DeviceInfo, select_device, torch_dtype
from engine.generation.ip_adapter import (
    DEFAULT_IP_ADAPTER_SCALE,
    IPAdapterSpec,
    load_ip_adapter,
    unload_ip_adapter,
)
from engine.generation.lora import LoraSpec, apply_loras, check_lora_context
from engine.generation.memory_strategy import (
    MEMORY_LEVELS,
    MemoryStrategy,
    free_device_memory,
    run_with_memory_fallback,
    starting_level,
)
from engine.generation.types import StillRequest

__all__ = [
    "DEFAULT_NEGATIVE_PROMPT",
    "FEW_STEP_VARIANTS",
    "SCHEDULERS",
    "DiffusersBackend",
    "DiffusionRequest",
    "apply_speed_optimisations",
]

log = logging.getLogger(__name__)

INSTALL_HINT = "install the sd extra: pip install 'apex-director[sd]'"

#: Scheduler names accepted by ``--scheduler`` → (diffusers class, extra config).
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpmpp_2m_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
    ),
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}
FEW_STEP_VARIANTS = ("turbo", "lcm", "lightning", "hyper")
DEFAULT_NEGATIVE_PROMPT = (
    "lowres, blurry, jpeg artifacts, watermark, text, signature, deformed, disfigured, "
    "bad anatomy, extra limbs"
)
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 7.0
FEW_STEP_STEPS = 4

# One pipeline resident per process: the backend that holds it.
_RESIDENT_LOCK = threading.RLock()
_RESIDENT: list[weakref.ReferenceType[DiffusersBackend]] = []  # zero or one entry


def release_resident_pipeline() -> None:
    """Unload the resident Stable Diffusion pipeline, if any, so another stage (the
    upscaler) can have the device: one model resident at a time."""
    with _RESIDENT_LOCK:
        resident = _RESIDENT[0]() if _RESIDENT else None
    if resident is not None:
        resident.unload()


@dataclass(frozen=True, kw_only=True)
class DiffusionRequest:
    """One call to the diffusion model: a batch of prompts, one image each.

    Attributes
    ----------
    prompts : tuple of str
        One image per prompt (repeat a prompt for variants).
    seeds : tuple of int
        One seed per prompt.
    negative_prompt : str
        What to steer away from (ignored when guidance is 0).
    width, height : int
        Multiples of 8, 32..2048.
    steps : int or None
        Denoising steps (1..150); ``None`` is the model's default (25, or 4 for few-step models).
    guidance : float or None
        Classifier-free guidance scale (0..30); ``None`` is 7.0, or 0 for few-step models.
    scheduler : str or None
        A key of :data:`SCHEDULERS`; ``None`` keeps the model's own (or the few-step one).
    init_image : numpy.ndarray or None
        ``(H, W, 3)`` uint8 RGB for img2img (resized to ``width`` x ``height``).
    strength : float
        img2img: how much of the init image is repainted, in (0, 1].
    ip_adapter : Path or None
        IP-Adapter weights to condition on ``ip_adapter_image`` (given together).
    ip_adapter_image : numpy.ndarray or None
        ``(H, W, 3)`` uint8 RGB reference image (any size; the encoder resizes it).
    ip_adapter_scale : float
        IP-Adapter strength, 0..2 (0 = no effect).
    ip_adapter_encoder : Path or None
        The CLIP image-encoder folder; ``None``: an ``image_encoder/`` folder next to the
        adapter.
    """

    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    steps: int | None = None
    guidance: float | None = None
    scheduler: str | None = None
    init_image: np.ndarray | None = field(default=None, compare=False)
    strength: float = 0.6
    ip_adapter: Path | None = None
    ip_adapter_image: np.ndarray | None = field(default=None, compare=False)
    ip_adapter_scale: float = DEFAULT_IP_ADAPTER_SCALE
    ip_adapter_encoder: Path | None = None

    def __post_init__(self) -> None:
        if not self.prompts:
            raise ParameterError("prompts", self.prompts, "at least one prompt")
        if len(self.seeds) != len(self.prompts):
            raise ParameterError("seeds", self.seeds, f"{len(self.prompts)} seeds, one per prompt")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not (32 <= value <= 2048) or value % 8:
                raise ParameterError(name, value, "a multiple of 8 in 32..2048")
        if self.steps is not None and not (1 <= self.steps <= 150):
            raise ParameterError("steps", self.steps, "1..150")
        if self.guidance is not None and not (0.0 <= self.guidance <= 30.0):
            raise ParameterError("guidance", self.guidance, "0.0..30.0")
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise ParameterError("scheduler", self.scheduler, f"one of {', '.join(SCHEDULERS)}")
        if not (0.0 < self.strength <= 1.0):
            raise ParameterError("strength", self.strength, "0.0 < strength <= 1.0")
        for name in ("init_image", "ip_adapter_image"):
            img = getattr(self, name)
            if img is not None and (img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8):
                raise ParameterError(
                    name, f"{img.dtype} {img.shape}", "an (H, W, 3) uint8 RGB array"
                )
        if (self.ip_adapter is None) != (self.ip_adapter_image is None):
            raise ParameterError(
                "ip_adapter_image",
                "missing" if self.ip_adapter_image is None else "given without ip_adapter",
                "ip_adapter and ip_adapter_image together",
            )
        if not (0.0 <= self.ip_adapter_scale <= 2.0):
            raise ParameterError("ip_adapter_scale", self.ip_adapter_scale, "0.0..2.0")


def _import_diffusers() -> tuple[Any, Any]:
    try:
        import diffusers
        import torch
    except ImportError as err:
        raise BackendError(
            f"the diffusers backend needs torch and diffusers ({err.name} is missing); "
            + INSTALL_HINT,
            backend_name="diffusers",
        ) from err
    return torch, diffusers


def _dtype_kwarg(dtype: Any) -> dict[str, Any]:
    """``dtype=`` on diffusers that renamed it (0.36+), ``torch_dtype=`` before."""
    from diffusers.utils import deprecation_utils

    renamed = hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE")
    return {"dtype": dtype} if renamed else {"torch_dtype": dtype}


def apply_speed_optimisations(pipe: Any, *, compile_unet: bool) -> list[str]:
    """Our fast path: channels_last UNet/VAE, fused QKV projections, compiled UNet.

    Attention already goes through PyTorch's ``scaled_dot_product_attention`` (diffusers'
    default processor on torch 2).  ``torch.compile`` pays a one-off compile on the first
    call; it is worth it for a render of many stills, not for one image.

    Returns
    -------
    list of str
        The optimisations applied (for logs and benchmarks).
    """
    import torch

    applied = []
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    applied.append("channels_last")
    if hasattr(pipe, "fuse_qkv_projections"):
        try:
            pipe.fuse_qkv_projections()
            applied.append("fused_qkv")
        except (ValueError, RuntimeError, AttributeError) as err:
            log.info("fused QKV projections unavailable: %s", err)
    if compile_unet:
        # default mode: max-autotune spends many minutes tuning SDXL's GEMMs
        pipe.unet = torch.compile(pipe.unet)
        applied.append("torch.compile(unet)")
    return applied


def _round8(value: float) -> int:
    return max(32, round(value / 8.0) * 8)


class DiffusersBackend:
    """Stable Diffusion on the local GPU (or CPU) via diffusers.

    Parameters
    ----------
    model : Path or str
        A diffusers folder, or a single ``.safetensors``/``.ckpt`` checkpoint.
    device : str
        ``"auto"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``.
    precision : {"auto", "fp16", "bf16", "fp32"}
    config_dir : Path, optional
        Pipeline configuration folder for a single-file checkpoint; default: the shipped
        one for the family ``identify_checkpoint`` reports.
    family : str, optional
        ``"sd15"``, ``"sd2"`` or ``"sdxl"`` when identification cannot tell.
    few_step : bool, optional
        Force (or forbid) Turbo/LCM defaults; ``None`` decides from the checkpoint.
    scheduler : str, optional
        Default scheduler name (a key of :data:`SCHEDULERS`).
    loras : sequence of LoraSpec
        Applied after loading.
    memory_level : str
        Starting memory level (see :mod:`engine.generation.memory_strategy`): ``"auto"``
        (the fastest) or a level name (the configuration's ``generation.memory_strategy``);
        an offload level on a device without offload starts at the leanest level it has.
        Out-of-memory step-down still applies from there.
    negative_prompt : str
        Used when a request gives none.
    steps, guidance : optional
        Defaults for requests that give none (otherwise 25 steps and guidance 7, or 4 steps
        and guidance 0 for few-step models).
    optimize : bool
        channels_last UNet/VAE, fused QKV projections and ``torch.compile`` of the UNet
        (CUDA only; the first call then compiles for a minute).

    Examples
    --------
    >>> backend = DiffusersBackend("models/checkpoints/dreamshaper_8.safetensors")  # doctest: +SKIP
    >>> image = backend.generate(StillRequest(prompt="a lighthouse", seed=1,
    ...                                       width=768, height=432))  # doctest: +SKIP
    """

    name = "diffusers"
    is_draft = False

    def __init__(
        self,
        model: Path | str,
        *,
        device: str = "auto",
        precision: str = "auto",
        config_dir: Path | None = None,
        family: str | None = None,
        few_step: bool | None = None,
        scheduler: str | None = None,
        loras: Sequence[LoraSpec] = (),
        memory_level: str = "none",
        negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
        steps: int | None = None,
        guidance: float | None = None,
        optimize: bool = False,
    ) -> None:
        self.model_path = Path(model).expanduser()
        if scheduler is not None and scheduler not in SCHEDULERS:
            raise ParameterError("scheduler", scheduler, f"one of {', '.join(SCHEDULERS)}")
        if family is not None and family not in ("sd15", "sd2", "sdxl"):
            raise ParameterError("family", family, "sd15, sd2 or sdxl")
        self._device_request = device
        self._precision = precision
        self._config_dir = config_dir
        self.family = family
        self._few_step = few_step
        self._default_scheduler = scheduler
        self._loras = list(loras)
        if memory_level != "auto" and memory_level not in MEMORY_LEVELS:
            raise ParameterError(
                "memory_level", memory_level, f"auto or one of {', '.join(MEMORY_LEVELS)}"
            )
        self._memory_level = memory_level
        self.negative_prompt = negative_prompt
        if steps is not None and not (1 <= steps <= 150):
            raise ParameterError("steps", steps, "1..150")
        if guidance is not None and not (0.0 <= guidance <= 30.0):
            raise ParameterError("guidance", guidance, "0.0..30.0")
        self.default_steps = steps
        self.default_guidance = guidance
        self._optimize = optimize
        self._pipe: Any = None
        self._img2img: Any = None
        # the loaded IP-Adapter: (weights, encoder folder) and what to restore on unload
        self._ip_adapter: tuple[Path, Path | None] | None = None
        self._ip_restore: dict[str, Any] = {}
        self._scheduler_name: str | None = None
        self._base_scheduler_config: Any = None
        self.device_info: DeviceInfo | None = None
        self.memory: MemoryStrategy | None = None
        self.variants: tuple[str, ...] = ()
        self._lock = threading.RLock()
        self._stats: dict[str, Any] = {
            "loads": 0,
            "load_seconds": 0.0,
            "images": 0,
            "batches": 0,
            "steps": 0,
            "seconds": 0.0,
            "oom_stepdowns": 0,
            "memory_stepdowns": [],
        }

    # --- loading -------------------------------------------------------------------------

    @property
    def is_loaded(self) -> bool:
        return self._pipe is not None

    @property
    def few_step(self) -> bool:
        """Whether Turbo/LCM defaults apply (guidance 0, few steps)."""
        if self._few_step is not None:
            return self._few_step
        return any(v in FEW_STEP_VARIANTS for v in self.variants)

    def load(self) -> Any:
        """Load the pipeline (once) and return it; unloads any other resident backend.

        Raises
        ------
        BackendError
            torch/diffusers missing, the model is missing or cannot be loaded.
        LoraBaseMismatchError
            A LoRA for another family.
        """
        with self._lock:
            if self._pipe is not None:
                return self._pipe
            _torch, diffusers = _import_diffusers()
            with _RESIDENT_LOCK:
                other = _RESIDENT[0]() if _RESIDENT else None
                if other is not None and other is not self:
                    log.info("unloading %s to make room", other.model_path.name)
                    other.unload()
            # ... and the upscaler of another stage gives the device back too.
            upscaler = sys.modules.get("engine.generation.upscale.upscaler")
            if upscaler is not None:
                upscaler.release_upscaler()
            if not self.model_path.exists():
                raise BackendError(
                    f"model not found: {self.model_path}; pass --model with a diffusers "
                    "folder or a .safetensors checkpoint (see `apex-director models list`)",
                    backend_name=self.name,
                )
            started = time.perf_counter()
            self.device_info = select_device(self._device_request, self._precision)  # type: ignore[arg-type]
            dtype = torch_dtype(self.device_info)
            pipe = self._from_disk(diffusers, dtype)
            if hasattr(pipe, "set_progress_bar_config"):
                pipe.set_progress_bar_config(disable=True)
            self._base_scheduler_config = pipe.scheduler.config
            try:
                apply_loras(pipe, self._loras)
            except BaseException:
                del pipe
                free_device_memory()
                raise
            self.memory = MemoryStrategy(
                self.device_info, starting_level(self._memory_level, self.device_info)
            )
            self.memory.apply(pipe)
            if self._optimize:
                apply_speed_optimisations(pipe, compile_unet=self.device_info.kind == "cuda")
            self._pipe = pipe
            self._img2img = None
            self._scheduler_name = None
            if self.few_step and self._default_scheduler is None:
                self._default_scheduler = "lcm" if "lcm" in self.variants else "euler_a"
            with _RESIDENT_LOCK:
                _RESIDENT[:] = [weakref.ref(self)]
            elapsed = time.perf_counter() - started
            self._stats["loads"] += 1
            self._stats["load_seconds"] += elapsed
            log.info(
                "loaded %s (%s) on %s in %.1f s%s",
                self.model_path.name,
                type(pipe).__name__,
                self.device_info.torch_device,
                elapsed,
                f", few-step ({', '.join(self.variants)})" if self.few_step else "",
            )
            return pipe

    def _identify(self) -> Any:
        try:
            from engine.generation.model_manager.identify import identify_checkpoint
        except ImportError:  # the models package is part of the engine; stay robust anyway
            return None
        try:
            return identify_checkpoint(self.model_path)
        except ModelError as err:
            if self.model_path.is_dir() or self._config_dir is not None:
                log.debug("identify_checkpoint: %s (loading anyway)", err)
                return None
            hint = (
                "; a checkpoint of a known layout loads with its pipeline configuration "
                "folder given explicitly (--model-config DIR)"
                if err.error_code == "unknown_family"
                else ""
            )
            raise BackendError(f"{err}{hint}", backend_name=self.name) from err

    def _from_disk(self, diffusers: Any, dtype: Any) -> Any:
        path = self.model_path
        info = self._identify()
        if info is not None and info.context_dim:
            # refuse a LoRA for another family before spending seconds loading the model
            for spec in self._loras:
                if spec.path.is_file():
                    check_lora_context(spec.path, info.context_dim, info.family == "sdxl")
        if info is not None:
            self.family = self.family or info.family
            self.variants = tuple(info.variants)
        else:
            words = path.stem.lower().replace("-", "_").split("_")
            self.variants = tuple(v for v in FEW_STEP_VARIANTS if v in words)
        try:
            if path.is_dir():
                if not (path / "model_index.json").is_file():
                    raise BackendError(
                        f"{path} is a folder without model_index.json, not a diffusers "
                        "pipeline; pass the pipeline folder or a .safetensors checkpoint",
                        backend_name=self.name,
                    )
                return diffusers.DiffusionPipeline.from_pretrained(
                    str(path), **_dtype_kwarg(dtype), local_files_only=True
                )
            config_dir = self._config_dir or self._shipped_config_dir()
            cls = (
                diffusers.StableDiffusionXLPipeline
                if self.family == "sdxl"
                else diffusers.StableDiffusionPipeline
            )
            return cls.from_single_file(
                str(path), config=str(config_dir), **_dtype_kwarg(dtype), local_files_only=True
            )
        except BackendError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
            raise BackendError(
                f"cannot load {path.name} with diffusers ({type(err).__name__}: {err}); "
                "check the file with `apex-director models verify`",
                backend_name=self.name,
            ) from err

    def _shipped_config_dir(self) -> Path:
        if self.family is None:
            raise BackendError(
                f"cannot tell which Stable Diffusion family {self.model_path.name} is; "
                "pass its family (sd15, sd2, sdxl) or a config folder",
                backend_name=self.name,
            )
        try:
            from engine.generation.model_manager.configs import pipeline_config_dir
        except ImportError as err:
            raise BackendError(
                "single-file checkpoints need the shipped pipeline configurations "
                "(engine.generation.model_manager.configs), which this installation lacks; "
                "use a diffusers folder instead",
                backend_name=self.name,
            ) from err
        return Path(pipeline_config_dir(self.family))

    def unload(self) -> None:
        """Drop the pipeline and give its memory back (gc + ``torch.cuda.empty_cache``)."""
        with self._lock:
            if self._pipe is None:
                return
            if hasattr(self._pipe, "remove_all_hooks"):
                self._pipe.remove_all_hooks()
            self._pipe = None
            self._img2img = None
            self._ip_adapter = None
            self._ip_restore = {}
            gc.collect()
            free_device_memory()
            with _RESIDENT_LOCK:
                if _RESIDENT and _RESIDENT[0]() is self:
                    _RESIDENT.clear()
            log.info("unloaded %s", self.model_path.name)

    @property
    def version(self) -> str:
        """What the pixels depend on besides the request (render caches key stills by it)."""
        try:
            st = self.model_path.stat()
            stamp = f"{st.st_mtime_ns}:{st.st_size}"
        except OSError:
            stamp = "missing"
        loras = ",".join(f"{spec.path.name}@{spec.scale}" for spec in self._loras)
        return (
            f"{self.model_path.resolve()}:{stamp}:{self._default_scheduler}:"
            f"{self.default_steps}:{self.default_guidance}:{loras}"
        )

    # --- generation ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters for system stats: loads, images, steps, seconds, memory level, OOM steps."""
        out = dict(self._stats)
        out["memory_stepdowns"] = list(self._stats["memory_stepdowns"])
        out["memory_level"] = self.memory.level if self.memory else self._memory_level
        out["model"] = str(self.model_path)
        out["loaded"] = self.is_loaded
        out["few_step"] = self.few_step
        out["ip_adapter"] = str(self._ip_adapter[0]) if self._ip_adapter else None
        if self.device_info is not None:
            out.update(self.device_info.as_stats())
        if self._stats["seconds"] > 0:
            out["steps_per_second"] = self._stats["steps"] / self._stats["seconds"]
        return out

    def _set_scheduler(self, pipe: Any, name: str | None) -> None:
        import diffusers

        if name == self._scheduler_name:
            return
        if name is None:
            cls_name = self._base_scheduler_config["_class_name"]
            pipe.scheduler = getattr(diffusers, cls_name).from_config(self._base_scheduler_config)
        else:
            cls_name, extra = SCHEDULERS[name]
            extra = dict(extra)
            if self.few_step:
                extra.setdefault("timestep_spacing", "trailing")
            pipe.scheduler = getattr(diffusers, cls_name).from_config(
                self._base_scheduler_config, **extra
            )
        self._scheduler_name = name
        log.debug("scheduler: %s", type(pipe.scheduler).__name__)

    def _img2img_pipe(self, diffusers: Any) -> Any:
        if self._img2img is None:
            self._img2img = diffusers.AutoPipelineForImage2Image.from_pipe(self._pipe)
            if hasattr(self._img2img, "set_progress_bar_config"):
                self._img2img.set_progress_bar_config(disable=True)
        self._img2img.scheduler = self._pipe.scheduler
        return self._img2img

    def _set_ip_adapter(self, pipe: Any, request: DiffusionRequest) -> None:
        """Load the request's IP-Adapter (swapping out another) or unload when it has none."""
        wanted = (
            (Path(request.ip_adapter), request.ip_adapter_encoder)
            if request.ip_adapter is not None
            else None
        )
        if wanted == self._ip_adapter:
            return
        if self._ip_adapter is not None:
            unload_ip_adapter(pipe, self._ip_restore)
            self._ip_adapter, self._ip_restore = None, {}
            self._img2img = None  # rebuilt from the pipeline's current components
        if wanted is not None:
            started = time.perf_counter()
            self._ip_restore = load_ip_adapter(
                pipe, IPAdapterSpec(path=wanted[0], image_encoder=wanted[1])
            )
            self._ip_adapter = wanted
            self._img2img = None
            self._stats["ip_adapter_loads"] = self._stats.get("ip_adapter_loads", 0) + 1
            self._stats["load_seconds"] += time.perf_counter() - started

    def unload_ip_adapter(self) -> None:
        """Remove a loaded IP-Adapter (and its image encoder) from the pipeline, if any."""
        with self._lock:
            if self._pipe is not None and self._ip_adapter is not None:
                unload_ip_adapter(self._pipe, self._ip_restore)
                self._img2img = None
            self._ip_adapter, self._ip_restore = None, {}

    def diffuse(
        self, request: DiffusionRequest, context: StageContext | None = None
    ) -> list[np.ndarray]:
        """Run one batch; return one ``(height, width, 3)`` uint8 RGB image per prompt.

        Parameters
        ----------
        request : DiffusionRequest
        context : StageContext, optional
            Receives one progress event per denoising step; setting its ``cancel_event``
            stops the batch with :class:`CancelledError`.

        Raises
        ------
        CancelledError
            Cancelled (before or during denoising).
        GenerationError
            Out of memory at the leanest memory level, or the pipeline failed.
        BackendError
            As :meth:`load`; or the IP-Adapter's image encoder is missing or unloadable.
        IPAdapterBaseMismatchError
            The request's IP-Adapter is for another base family (nothing is loaded).
        """
        if context is not None:
            context.check_cancelled()
        torch, diffusers = _import_diffusers()
        with self._lock:
            pipe = self.load()
            assert self.memory is not None and self.device_info is not None
            scheduler = request.scheduler or self._default_scheduler
            self._set_scheduler(pipe, scheduler)
            steps = (
                request.steps
                or self.default_steps
                or (FEW_STEP_STEPS if self.few_step else DEFAULT_STEPS)
            )
            guidance = request.guidance if request.guidance is not None else self.default_guidance
            if guidance is None:
                guidance = 0.0 if self.few_step else DEFAULT_GUIDANCE
            negative = request.negative_prompt or self.negative_prompt
            n = len(request.prompts)
            # CPU generators on MPS: the documented way to get reproducible MPS results
            gen_device = self.device_info.torch_device if self.device_info.kind == "cuda" else "cpu"
            kwargs: dict[str, Any] = {
                "prompt": list(request.prompts),
                "num_inference_steps": steps,
                "guidance_scale": guidance,
                "output_type": "np",
            }
            if guidance > 1.0:
                kwargs["negative_prompt"] = [negative] * n
            self._set_ip_adapter(pipe, request)
            if request.ip_adapter_image is not None:
                from PIL import Image

                pipe.set_ip_adapter_scale(float(request.ip_adapter_scale))
                kwargs["ip_adapter_image"] = Image.fromarray(request.ip_adapter_image)
            if request.init_image is not None:
                target = self._img2img_pipe(diffusers)
                kwargs["image"] = self._init_image(request)
                kwargs["strength"] = request.strength
                # img2img runs only the last ``strength`` part of the schedule: at least one step
                if int(steps * request.strength) < 1:
                    steps = math.ceil(1.0 / request.strength)
                    kwargs["num_inference_steps"] = steps
                total = max(1, int(steps * request.strength))
            else:
                target = pipe
                kwargs["width"] = request.width
                kwargs["height"] = request.height
                total = steps
            kwargs["callback_on_step_end"] = self._step_callback(context, total)

            def call() -> Any:
                # fresh generators on every attempt: a retry after OOM repeats the same pixels
                kwargs["generator"] = [
                    torch.Generator(device=gen_device).manual_seed(int(s)) for s in request.seeds
                ]
                with torch.inference_mode():
                    return target(**kwargs)

            def count_step(old: str, new: str) -> None:
                self._stats["oom_stepdowns"] += 1
                self._stats["memory_stepdowns"].append(f"{old}->{new}")
                if self._ip_adapter is not None:
                    # the new level may have replaced the adapter's attention: load it again
                    self.unload_ip_adapter()
                    self._set_ip_adapter(pipe, request)
                    if request.ip_adapter_image is not None:
                        pipe.set_ip_adapter_scale(float(request.ip_adapter_scale))

            started = time.perf_counter()
            try:
                result = run_with_memory_fallback(
                    self.memory,
                    pipe,
                    call,
                    backend_name=self.name,
                    prompt=request.prompts[0],
                    on_step=count_step,
                )
            except (CancelledError, GenerationError, BackendError):
                raise
            except (RuntimeError, ValueError) as err:
                raise GenerationError(
                    f"diffusers failed: {err}",
                    backend=self.name,
                    prompt=request.prompts[0],
                    error_code="pipeline",
                ) from err
            elapsed = time.perf_counter() - started
            self._stats["images"] += n
            self._stats["batches"] += 1
            self._stats["steps"] += total
            self._stats["seconds"] += elapsed
            log.info(
                "%d image(s) %dx%d, %d steps in %.2f s (%s)",
                n,
                request.width,
                request.height,
                total,
                elapsed,
                type(target.scheduler).__name__,
            )
            images = np.asarray(result.images)
            return [
                np.ascontiguousarray((np.clip(img, 0.0, 1.0) * 255.0).round().astype(np.uint8))
                for img in images
            ]

    def _init_image(self, request: DiffusionRequest) -> Any:
        from PIL import Image

        assert request.init_image is not None
        img = Image.fromarray(request.init_image)  # (H, W, 3) uint8 -> RGB
        if img.size != (request.width, request.height):
            img = img.resize((request.width, request.height), Image.Resampling.LANCZOS)
        return img

    @staticmethod
    def _step_callback(context: StageContext | None, total: int) -> Any:
        def on_step_end(
            pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]
        ) -> dict[str, Any]:
            del pipe, timestep
            if context is not None:
                # raises CancelledError when the cancel event is set
                context.progress(min(step + 1, total), total, "denoising")
            return callback_kwargs

        return on_step_end

    def txt2img(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        width: int = 512,
        height: int = 512,
        negative_prompt: str = "",
        steps: int | None = None,
        guidance: float | None = None,
        scheduler: str | None = None,
        context: StageContext | None = None,
    ) -> list[np.ndarray]:
        """Text to image for a batch of prompts (one seed each); see :meth:`diffuse`."""
        return self.diffuse(
            DiffusionRequest(
                prompts=tuple(prompts),
                seeds=tuple(seeds),
                width=width,
                height=height,
                negative_prompt=negative_prompt,
                steps=steps,
                guidance=guidance,
                scheduler=scheduler,
            ),
            context,
        )

    def img2img(
        self,
        init_image: np.ndarray,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        strength: float = 0.6,
        width: int | None = None,
        height: int | None = None,
        negative_prompt: str = "",
        steps: int | None = None,
        guidance: float | None = None,
        scheduler: str | None = None,
        context: StageContext | None = None,
    ) -> list[np.ndarray]:
        """Repaint ``init_image`` (uint8 RGB) guided by each prompt; see :meth:`diffuse`.

        The output size defaults to the init image's, rounded to a multiple of 8.
        """
        return self.diffuse(
            DiffusionRequest(
                prompts=tuple(prompts),
                seeds=tuple(seeds),
                width=width or _round8(init_image.shape[1]),
                height=height or _round8(init_image.shape[0]),
                negative_prompt=negative_prompt,
                steps=steps,
                guidance=guidance,
                scheduler=scheduler,
                init_image=init_image,
                strength=strength,
            ),
            context,
        )

    def native_size(self, width: int, height: int) -> tuple[int, int]:
        """The size to diffuse at for a ``width`` x ``height`` output.

        Same aspect ratio, about the model's training area (512² for SD 1.5, 1024² for
        SDXL) at most, multiples of 8: SD composes badly far from its training size.
        """
        pipe = self.load()
        side = int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
        scale = min(1.0, (side * side / float(width * height)) ** 0.5)
        return _round8(width * scale), _round8(height * scale)

    def generate(self, request: StillRequest) -> np.ndarray:
        """The :class:`ImageBackend` call: one still for a shot, at the requested size.

        The still is diffused at :meth:`native_size` and resized to the request's size.
        """
        w, h = self.native_size(request.width, request.height)
        image = self.diffuse(
            DiffusionRequest(prompts=(request.prompt,), seeds=(request.seed,), width=w, height=h)
        )[0]
        if (w, h) != (request.width, request.height):
            import cv2

            interp = cv2.INTER_AREA if w > request.width else cv2.INTER_LANCZOS4
            image = cv2.resize(image, (request.width, request.height), interpolation=interp)
        return image
