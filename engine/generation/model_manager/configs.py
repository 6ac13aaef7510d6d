"""The pipeline configurations and tokenizers shipped in ``resources/sd/``.

A single-file checkpoint holds weights only; diffusers needs each component's configuration
and the tokenizers to build the pipeline around them.  We ship both, so loading never goes
online::

    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_single_file(
        path, config=str(pipeline_config_dir("sd15")), local_files_only=True
    )

See ``resources/sd/LICENSES.md`` for where the files come from.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ParameterError
from engine.resources import resources_dir

__all__ = ["SD_RESOURCES", "pipeline_config_dir", "tokenizer_dir"]

SD_RESOURCES = resources_dir("sd")
# SD 2.x is identified but has no shipped configuration (yet): it needs the v-prediction
# schedule of the 768 model or the epsilon one of the 512 base, which the weights do not tell.
_SHIPPED = ("sd15", "sdxl")


def pipeline_config_dir(family: str) -> Path:
    """Folder with ``model_index.json`` and the component configs of ``family``.

    Parameters
    ----------
    family : str
        ``"sd15"`` or ``"sdxl"``.

    Returns
    -------
    Path
        The folder, usable as ``from_single_file(..., config=folder)``.

    Raises
    ------
    ParameterError
        No configuration is shipped for ``family``.
    """
    if family not in _SHIPPED:
        raise ParameterError("family", family, f"one of {', '.join(_SHIPPED)}")
    folder = SD_RESOURCES / family
    if not (folder / "model_index.json").is_file():  # pragma: no cover - a broken install
        raise FileNotFoundError(f"{folder}/model_index.json is missing: reinstall APEX Director")
    return folder


def tokenizer_dir(family: str, *, second: bool = False) -> Path:
    """Folder of the CLIP tokenizer (``vocab.json``, ``merges.txt``) for ``family``.

    Parameters
    ----------
    family : str
        ``"sd15"`` or ``"sdxl"``.
    second : bool
        SDXL only: the tokenizer of the second text encoder (OpenCLIP ViT-bigG, which pads
        with ``!`` instead of ``<|endoftext|>``).

    Returns
    -------
    Path
        A folder ``transformers.CLIPTokenizer.from_pretrained`` reads.

    Raises
    ------
    ParameterError
        Unknown family, or ``second`` for a family with one text encoder.
    """
    if second and family != "sdxl":
        raise ParameterError("second", second, "True only for family 'sdxl'")
    return pipeline_config_dir(family) / ("tokenizer_2" if second else "tokenizer")
