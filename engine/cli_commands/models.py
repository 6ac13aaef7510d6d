"""``apex-director models list|verify|import|pull``: manage the weights folder.

The models folder is ``--models-dir``, else ``paths.models_dir`` of the configuration
(default ``models``); it may be a ComfyUI or A1111 ``models`` folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``models`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "models",
        help="list, verify, import or download model weights",
        description="Manage the models folder (checkpoints, LoRAs, upscalers, IP-Adapters, "
        "CLIP image encoders): see docs/models.md.",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the models folder (default: paths.models_dir of the configuration)",
    )
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="show the model files found, with kind and family")
    listing.add_argument(
        "--kind",
        choices=("checkpoint", "lora", "upscaler", "ip_adapter", "clip"),
        default=None,
        help="only this kind",
    )
    verify = sub.add_parser(
        "verify", help="hash the manifest's files: OK, MISMATCH, MISSING or UNCHECKED"
    )
    verify.add_argument("names", nargs="*", help="only these manifest entries")
    imp = sub.add_parser(
        "import", help="identify a model file, put it in the right folder, record it"
    )
    imp.add_argument("path", type=Path, help="a .safetensors/.ckpt/.pth file or diffusers folder")
    imp.add_argument("--link", action="store_true", help="symbolic link instead of a copy")
    imp.add_argument("--name", default=None, help="manifest name (default from the file name)")
    imp.add_argument("--licence", default="", help="the weights' licence, for the manifest")
    imp.add_argument("--min-vram-gb", type=float, default=None, help="override the default")
    imp.add_argument("--overwrite", action="store_true", help="replace a different same-named file")
    pull = sub.add_parser(
        "pull", help="download NAME (from the manifest) or REPO_ID:FILE from the Hugging Face Hub"
    )
    pull.add_argument("spec", metavar="NAME|REPO_ID:FILE")
    pull.add_argument("--revision", default=None, help="branch, tag or commit")
    pull.add_argument("--licence", default="", help="licence to record for a REPO_ID:FILE pull")
    pull.add_argument(
        "--endpoint", default=None, help="Hub endpoint or mirror (default HF_ENDPOINT)"
    )
    parser.set_defaults(handler=run)


def _models_dir(args: argparse.Namespace) -> Path:
    if args.models_dir is not None:
        return Path(args.models_dir).expanduser()
    from engine.cli import _load_config

    config = _load_config(args.config)
    return Path(str(config["paths"]["models_dir"])).expanduser()  # type: ignore[index]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def run(args: argparse.Namespace) -> int:
    """Run one ``models`` action; returns the exit code."""
    models_dir = _models_dir(args)
    action = args.models_command
    if action == "list":
        return _list(models_dir, args.kind)
    if action == "verify":
        return _verify(models_dir, list(args.names))
    if action == "import":
        return _import(models_dir, args)
    if action == "pull":
        return _pull(models_dir, args)
    raise AssertionError(action)  # argparse prevents this


def _list(models_dir: Path, kind: str | None) -> int:
    from engine.generation.model_manager.registry import detect_layout, scan_models

    found = scan_models(models_dir, kinds=(kind,) if kind else None)
    print(f"{models_dir} ({detect_layout(models_dir)} layout): {len(found)} model file(s)")
    for item in found:
        rel = (
            item.path.relative_to(models_dir) if item.path.is_relative_to(models_dir) else item.path
        )
        if item.info is None:
            print(f"  {item.folder_kind:<10} {'?':<6} {_size(item.size_bytes):>9}  {rel}")
            print(f"      problem: {item.problem}")
            continue
        info = item.info
        extra = ", ".join(info.variants)
        if info.kind == "upscaler":
            extra = f"{info.details.get('architecture')} x{info.details.get('scale')}"
        elif info.kind == "lora" and info.details.get("rank"):
            extra = f"rank {info.details['rank']}" + (f", {extra}" if extra else "")
        note = f"  ({extra})" if extra else ""
        mismatch = (
            ""
            if info.kind == item.folder_kind
            else f"  [a {info.kind} in a {item.folder_kind} folder]"
        )
        print(
            f"  {info.kind:<10} {info.family_name:<6} {_size(item.size_bytes):>9}  {rel}"
            f"{note}{mismatch}"
        )
    return 0


def _verify(models_dir: Path, names: list[str]) -> int:
    from engine.generation.model_manager.manifest import MANIFEST_NAME, Manifest, verify_entries

    manifest = Manifest(models_dir / MANIFEST_NAME)
    if len(manifest) == 0:
        print(f"{manifest.path}: no entries; add models with `apex-director models import`")
        return 0
    results = verify_entries(manifest, models_dir, names=names or None)
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
        hint = ""
        if result.status == "MISSING" and result.entry.repo_id:
            hint = f"  (apex-director models pull {result.entry.name})"
        elif result.status == "MISMATCH":
            hint = "  (damaged or replaced: download it again)"
        elif result.status == "UNCHECKED":
            hint = "  (no SHA-256 recorded)"
        print(f"{result.status:<9} {result.entry.name}: {result.entry.file}{hint}")
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 1 if counts.get("MISMATCH") else 0


def _import(models_dir: Path, args: argparse.Namespace) -> int:
    from engine.generation.model_manager.install import import_model

    entry, info = import_model(
        args.path,
        models_dir,
        link=args.link,
        name=args.name,
        licence=args.licence,
        min_vram_gb=args.min_vram_gb,
        overwrite=args.overwrite,
    )
    how = "linked" if args.link else "copied"
    print(
        f"{how} {args.path} to {entry.file} as {entry.name!r}: {info.kind}, {info.family_name}"
        + (f" ({', '.join(info.variants)})" if info.variants else "")
    )
    return 0


def _pull(models_dir: Path, args: argparse.Namespace) -> int:
    from engine.generation.model_manager.pull import pull_model

    result = pull_model(
        args.spec,
        models_dir,
        endpoint=args.endpoint,
        revision=args.revision,
        licence=args.licence,
        progress=lambda message: print(message, file=sys.stderr),
    )
    print(
        f"{result.entry.name}: {result.entry.file} ({result.info.kind}, {result.info.family_name})"
    )
    return 0
