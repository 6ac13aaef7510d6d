"""The model manager: identify, verify, list, import and fetch model files.

Modules
-------
``safe_load``
    Read safetensors headers and load weights without running pickled code.
``identify``
    Tell a file's kind (checkpoint, LoRA, upscaler, IP-Adapter, CLIP) and family (SD 1.5,
    SD 2.x, SDXL) from tensor names and shapes.
``configs``
    The shipped pipeline configurations and tokenizers for offline single-file loading.
``manifest``
    ``models/manifest.toml``: names, files, SHA-256, licences.
``registry``
    Find model files in our ``models/`` folder or a ComfyUI / A1111 one.
``pull``
    Download from the Hugging Face Hub (resumable, checksum-verified).

Importing this package is light: torch, spandrel and huggingface_hub are imported only
by the functions that need them.
"""

from __future__ import annotations

from engine.generation.model_manager.configs import pipeline_config_dir, tokenizer_dir
from engine.generation.model_manager.identify import (
    CheckpointInfo,
    ModelInfo,
    identify_checkpoint,
    identify_model,
)
from engine.generation.model_manager.safe_load import load_state_dict, read_safetensors_header

__all__ = [
    "CheckpointInfo",
    "ModelInfo",
    "identify_checkpoint",
    "identify_model",
    "load_state_dict",
    "pipeline_config_dir",
    "read_safetensors_header",
    "tokenizer_dir",
]
