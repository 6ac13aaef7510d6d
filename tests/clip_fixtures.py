"""A tiny random-weight CLIP image encoder saved as a ``models/clip/<name>`` folder.

Built from a config (never downloaded) and saved with ``save_pretrained`` so tests load
it through the engine's real loading code (``CLIPVisionModelWithProjection`` and
``CLIPImageProcessor`` with ``local_files_only=True``).  Callers
``pytest.importorskip("transformers")`` first.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["save_tiny_clip_encoder"]


def save_tiny_clip_encoder(models_dir: Path, name: str = "tiny-clip", *, seed: int = 0) -> Path:
    """Write a 2-layer, 32-wide CLIP vision encoder (32 x 32 input) to ``models_dir/clip/name``."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )
    model = CLIPVisionModelWithProjection(config).eval()
    folder = Path(models_dir) / "clip" / name
    model.save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return folder
