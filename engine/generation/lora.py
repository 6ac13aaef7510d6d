"""Load LoRA weights into a diffusers pipeline, refusing a LoRA made for another base.

A LoRA trained on SDXL cannot be applied to an SD 1.5 model (and vice versa): the shapes
differ, and diffusers would fail deep inside PEFT with a size-mismatch trace or, worse,
skip layers silently.  :func:`check_lora_base` compares the LoRA's cross-attention input
width (read from the file header, nothing loaded) with the pipeline's before the pipeline
is touched, and raises :class:`LoraBaseMismatchError` naming both families.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import BackendError, ModelError, ParameterError

__all__ = [
    "LoraBaseMismatchError",
    "LoraSpec",
    "apply_loras",
    "check_lora_base",
    "check_lora_context",
    "family_label",
    "lora_context_dim",
]

log = logging.getLogger(__name__)

_FAMILY_BY_CONTEXT = {768: "SD 1.5", 1024: "SD 2.x", 2048: "SDXL"}


class LoraBaseMismatchError(ModelError):
    """A LoRA made for one base model family was given with a model of another.

    Attributes
    ----------
    lora_family : str
        Human name of the LoRA's base (``"SDXL"``).
    model_family : str
        Human name of the loaded model's family (``"SD 1.5"``).
    """

    def __init__(self, message: str, *, path: Path, lora_family: str, model_family: str) -> None:
        self.lora_family = lora_family
        self.model_family = model_family
        super().__init__(message, path=path, error_code="wrong_base")


@dataclass(frozen=True, kw_only=True)
class LoraSpec:
    """One LoRA to apply.

    Attributes
    ----------
    path : Path
        A ``.safetensors`` LoRA (kohya or diffusers/PEFT layout).
    scale : float
        Strength, 0..2 (1 = as trained).
    """

    path: Path
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.scale <= 2.0):
            raise ParameterError("lora scale", self.scale, "0.0..2.0")

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        """Parse ``PATH`` or ``PATH:SCALE`` (as given on the command line)."""
        head, sep, tail = text.rpartition(":")
        if sep and re.fullmatch(r"\d+(\.\d+)?", tail):
            return cls(path=Path(head), scale=float(tail))
        return cls(path=Path(text))

    @property
    def adapter_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9_]", "_", self.path.stem) or "lora"


def family_label(context_dim: int | None, pipeline_class: str = "") -> str:
    """Human family name for a cross-attention width (``768`` → ``"SD 1.5"``)."""
    if "XL" in pipeline_class:
        return "SDXL"
    if context_dim in _FAMILY_BY_CONTEXT:
        return _FAMILY_BY_CONTEXT[context_dim]
    return f"an SD-style model with text width {context_dim}"


def lora_context_dim(path: Path) -> tuple[int | None, str | None]:
    """The LoRA's cross-attention input width and family, from its header only.

    Returns
    -------
    (int or None, str or None)
        ``context_dim`` (``None`` if the file has no UNet cross-attention layer) and the
        family code (``"sd15"``, ``"sd2"``, ``"sdxl"`` or ``None``) the models package
        reads from the names and metadata.

    Raises
    ------
    ModelError
        Not a LoRA, missing or damaged.
    """
    from engine.generation.model_manager.identify import identify_model

    info = identify_model(path)
    if info.kind != "lora":
        raise ModelError(
            f"{path}: this is not a LoRA (it looks like a {info.kind}); pass a LoRA "
            ".safetensors file",
            path=path,
            error_code="wrong_kind",
        )
    return info.context_dim, info.family


def check_lora_base(path: Path, pipe: Any) -> None:
    """Raise if the LoRA at ``path`` was made for another family than ``pipe``'s model.

    Raises
    ------
    LoraBaseMismatchError
        The LoRA's base differs; the message names both families.
    ModelError
        The file is missing, damaged or not a LoRA.
    """
    pipe_class = type(pipe).__name__
    check_lora_context(
        path, int(pipe.unet.config.cross_attention_dim), "XL" in pipe_class, pipe_class
    )


def check_lora_context(
    path: Path, model_context: int, model_is_xl: bool, pipeline_class: str = ""
) -> None:
    """:func:`check_lora_base` against a model known by its cross-attention width.

    Used before a model is loaded, from what ``identify_checkpoint`` read in its header.
    """
    lora_context, lora_family = lora_context_dim(path)
    if lora_context is None:
        mismatch = lora_family is not None and (lora_family == "sdxl") != model_is_xl
        lora_label = {"sdxl": "SDXL", "sd15": "SD 1.5", "sd2": "SD 2.x"}.get(lora_family or "", "")
    else:
        mismatch = lora_context != model_context
        lora_label = family_label(lora_context)
    if mismatch:
        model_label = family_label(model_context, pipeline_class or ("XL" if model_is_xl else ""))
        raise LoraBaseMismatchError(
            f"{path.name} is a LoRA for {lora_label} but the loaded model is {model_label}; "
            f"use a LoRA trained for {model_label} or a {lora_label} checkpoint",
            path=path,
            lora_family=lora_label,
            model_family=model_label,
        )


def apply_loras(pipe: Any, loras: list[LoraSpec]) -> list[str]:
    """Check every LoRA against ``pipe`` first, then load them and set their scales.

    Parameters
    ----------
    pipe : diffusers pipeline
    loras : list of LoraSpec

    Returns
    -------
    list of str
        The adapter names now active.

    Raises
    ------
    LoraBaseMismatchError, ModelError
        Before the pipeline is modified.
    BackendError
        peft is not installed, or diffusers could not apply the weights.
    """
    if not loras:
        return []
    for spec in loras:
        if not spec.path.is_file():
            raise ModelError(
                f"{spec.path}: LoRA file not found", path=spec.path, error_code="missing"
            )
        check_lora_base(spec.path, pipe)
    try:
        import peft  # noqa: F401
    except ImportError as err:
        raise BackendError(
            "LoRA loading needs peft; install the sd extra: pip install 'apex-director[sd]'",
            backend_name="diffusers",
        ) from err
    from engine.generation.model_manager.safe_load import load_state_dict

    names: list[str] = []
    for spec in loras:
        name = spec.adapter_name
        while name in names:
            name += "_"
        state = load_state_dict(spec.path)
        try:
            pipe.load_lora_weights(state, adapter_name=name)
        except (ValueError, RuntimeError, KeyError) as err:
            raise BackendError(
                f"{spec.path.name}: diffusers could not apply this LoRA ({err}); check that it is "
                "a LoRA for this model's family",
                backend_name="diffusers",
            ) from err
        names.append(name)
        log.info("LoRA %s loaded at scale %.2f", spec.path.name, spec.scale)
    pipe.set_adapters(names, adapter_weights=[spec.scale for spec in loras])
    return names
