"""Build the CLIP BPE tokenizer files shipped in ``resources/sd/*/tokenizer*/``.

The vocabulary is OpenAI CLIP's byte-level BPE (``bpe_simple_vocab_16e6.txt.gz``, MIT
licence, see ``resources/sd/LICENSES.md``).  This script turns it into the ``vocab.json`` +
``merges.txt`` pair that ``transformers.CLIPTokenizer`` reads, exactly as CLIP's own
``simple_tokenizer.py`` builds its vocabulary: the 256 byte symbols, the same symbols with
``</w>``, one entry per merge (merges 1..48894 of the file) and the two special tokens, 49408
tokens in all.  Stable Diffusion 1.5 and both SDXL text encoders use this vocabulary; they
differ only in the padding token (``<|endoftext|>`` for CLIP ViT-L, ``!`` for OpenCLIP
ViT-bigG in SDXL's second encoder).

Run it from the repository root when the vocabulary file is at hand (``open_clip_torch``'s
wheel ships it; so does OpenAI's ``clip`` repository)::

    python resources/sd/make_tokenizer.py path/to/bpe_simple_vocab_16e6.txt.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Lines 1..48894 of the merges file (line 0 is a version comment); CLIP uses
# ``merges[1 : 49152 - 256 - 2 + 1]``.
N_MERGES = 49152 - 256 - 2
VOCAB_SIZE = 49408
BOS, EOS = "<|startoftext|>", "<|endoftext|>"

# Where each family keeps its tokenizer folders, and the padding token of each.
TARGETS: dict[str, str] = {
    "sd15/tokenizer": EOS,
    "sdxl/tokenizer": EOS,
    "sdxl/tokenizer_2": "!",
}


def bytes_to_unicode() -> dict[int, str]:
    """Map each byte to a printable unicode character (CLIP's and GPT-2's table)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def build(bpe_gz: Path) -> tuple[dict[str, int], list[str]]:
    """Return CLIP's ``(vocab, merges)`` from the gzipped BPE merges file."""
    with gzip.open(bpe_gz) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = lines[1 : N_MERGES + 1]
    if len(merges) != N_MERGES or any(len(m.split()) != 2 for m in merges):
        raise ValueError(f"{bpe_gz} is not CLIP's BPE vocabulary (expected {N_MERGES} merges)")
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [BOS, EOS]
    if len(tokens) != VOCAB_SIZE:
        raise ValueError(f"built {len(tokens)} tokens, expected {VOCAB_SIZE}")
    return {tok: i for i, tok in enumerate(tokens)}, merges


def write(folder: Path, vocab: dict[str, int], merges: list[str], pad_token: str) -> None:
    """Write one tokenizer folder in the layout of the published SD repositories."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8"
    )
    special = {
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": pad_token,
    }
    (folder / "special_tokens_map.json").write_text(
        json.dumps(special, indent=2) + "\n", encoding="utf-8"
    )
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        **special,
    }
    (folder / "tokenizer_config.json").write_text(
        json.dumps(config, indent=2) + "\n", encoding="utf-8"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bpe", type=Path, help="bpe_simple_vocab_16e6.txt.gz")
    args = parser.parse_args()
    vocab, merges = build(args.bpe)
    for rel, pad in TARGETS.items():
        write(HERE / rel, vocab, merges, pad)


if __name__ == "__main__":
    main()
