"""Figures behind the style and character checks (CPU, a few seconds).

* the classical character descriptor: similarity of a synthetic figure to itself under
  shifts, ±10 % scale, ±15 % brightness and other backgrounds, and to a different
  figure (the same 8 changes as ``tests/engine/test_characters.py``), and its speed;
* style drift of procedural stills against a style bible: another scene in the same
  palette vs the same scene in another palette, with two reference images and with
  the palette alone;
* prompt composition with the shipped CLIP tokenizer: tokens used and speed;
* the decompression-bomb guard: time to refuse a 12 kB PNG that declares 100 MP.

    .venv/bin/python benchmarks/style_and_characters.py
"""

from __future__ import annotations

import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.errors import MediaInputError
from engine.generation.embeddings import classical_embedding, cosine_similarity
from engine.generation.image_io import read_image_safely
from engine.generation.procedural import ProceduralBackend
from engine.generation.prompting import (
    GenerationRequest,
    clip_token_counter,
    compose_prompts,
)
from engine.generation.style_bible import StylePersistenceManager
from engine.generation.types import StillRequest
from tests.engine.test_characters import draw_figure

CHANGES = [
    {"dx": 13},
    {"dy": -10},
    {"scale": 0.9},
    {"scale": 1.1},
    {"brightness": 0.85},
    {"brightness": 1.15},
    {"background": 3},
    {"dx": -12, "scale": 1.08, "brightness": 0.9, "background": 5},
]
TEAL_AMBER = ((11, 61, 79), (23, 127, 150), (242, 165, 65), (250, 220, 170), (20, 30, 40))
PURPLE_GREEN = ((60, 10, 80), (120, 30, 160), (40, 200, 60), (200, 255, 120), (10, 40, 10))


def characters() -> None:
    reference = {k: classical_embedding(draw_figure(k)) for k in "AB"}
    same, other = [], []
    started = time.perf_counter()
    for kind in "AB":
        for change in CHANGES:
            emb = classical_embedding(draw_figure(kind, **change))
            same.append(cosine_similarity(emb, reference[kind]))
            other.append(cosine_similarity(emb, reference["B" if kind == "A" else "A"]))
    per_image = (time.perf_counter() - started) / (2 * len(CHANGES))
    print(
        f"classical descriptor: same figure min {min(same):.3f} (mean {np.mean(same):.3f}), "
        f"other figure max {max(other):.3f} (mean {np.mean(other):.3f}); "
        f"{per_image * 1000:.1f} ms per 256 px image"
    )


def drift(folder: Path) -> None:
    backend = ProceduralBackend()

    def still(name: str, prompt: str, palette: tuple, seed: int) -> Path:
        image = backend.generate(
            StillRequest(prompt=prompt, seed=seed, width=320, height=180, palette=palette)
        )
        path = folder / name
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        return path

    still("ref1.png", "mountains at dusk", TEAL_AMBER, 1)
    still("ref2.png", "city at night", TEAL_AMBER, 2)
    same = still("same.png", "ocean waves", TEAL_AMBER, 3)
    other = still("other.png", "ocean waves", PURPLE_GREEN, 3)
    palette = ["#0b3d4f", "#177f96", "#f2a541"]
    for label, bible in (
        (
            "palette + 2 references",
            {"palette": palette, "reference_images": ["ref1.png", "ref2.png"]},
        ),
        ("palette alone", {"palette": palette}),
    ):
        styles = StylePersistenceManager(folder)
        styles.load_style_bible(bible)
        a = styles.detect_style_drift(same)
        b = styles.detect_style_drift(other)
        methods = "+".join(a["methods"])
        print(
            f"style drift ({label}; {methods}): same palette {a['drift_score']:.3f}, "
            f"other palette {b['drift_score']:.3f} (threshold {a['threshold']})"
        )


def prompts() -> None:
    count = clip_token_counter("sd15")
    request = GenerationRequest(
        "a lighthouse on a cliff at night",
        director_style="denis_villeneuve",
        genre="sci_fi",
        camera_settings={"lens": 35, "aperture": 1.8, "shot": "wide", "iso": 800},
        lighting_setup={"key": "cold moonlight", "rim": True},
        composition={"rule": "rule of thirds"},
    )
    composed = compose_prompts(request, {"prompt_template": "teal and amber grade"}, count)
    started = time.perf_counter()
    for _ in range(20):
        compose_prompts(request, None, count)
    per = (time.perf_counter() - started) / 20
    print(
        f"prompt: {composed.tokens_used}/77 tokens, {len(composed.dropped)} fragments left out; "
        f"compose_prompts {per * 1000:.1f} ms with the real CLIP tokenizer"
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return struct.pack(">I", len(data)) + kind + data + crc


def bomb(folder: Path) -> None:
    compressor = zlib.compressobj(9)
    row = bytes(1 + 1250)  # one 1-bit grey row of 10000 pixels, with its filter byte
    idat = b"".join(compressor.compress(row) for _ in range(10_000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", 10_000, 10_000, 1, 0, 0, 0, 0)
    path = folder / "bomb.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )
    started = time.perf_counter()
    try:
        read_image_safely(path)
        outcome = "ACCEPTED (bug)"
    except MediaInputError:
        outcome = "refused"
    print(
        f"bomb: {path.stat().st_size} byte PNG declaring 10000x10000 {outcome} in "
        f"{(time.perf_counter() - started) * 1000:.2f} ms"
    )


def main() -> None:
    characters()
    with tempfile.TemporaryDirectory() as tmp:
        drift(Path(tmp))
        bomb(Path(tmp))
    prompts()


if __name__ == "__main__":
    main()
