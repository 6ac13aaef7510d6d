"""``apex-director assets add|search|info|dupes|stats|clean``: a project's assets.

Every action works on the project in ``--project`` (default: the current folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``assets`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "assets",
        help="add, search, describe, deduplicate and clean a project's assets",
        description="Assets are content-addressed files in the project's assets/ folder with "
        "metadata and tags in its database: see docs/projects-and-assets.md.",
    )
    parser.add_argument(
        "-p",
        "--project",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="the project folder (default: the current folder)",
    )
    sub = parser.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="import files into the project (copied, deduplicated)")
    add.add_argument("files", type=Path, nargs="+", help="files to import")
    add.add_argument("--category", default=None, help="category (default from the file type)")
    add.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    add.add_argument("--description", default="", help="a description for every file")
    search = sub.add_parser("search", help="full-text search over name, description, tags, prompt")
    search.add_argument("query", nargs="?", default="", help="words (each matches as a prefix)")
    search.add_argument("--category", default="", help="only this category")
    search.add_argument("--tag", action="append", default=[], help="must have this tag")
    search.add_argument("--mime", default=None, help="MIME type, or a prefix such as image/")
    search.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    search.add_argument("--json", action="store_true", help="print JSON (full metadata)")
    info = sub.add_parser("info", help="everything recorded about one asset")
    info.add_argument("asset", help="the asset's path or content hash")
    info.add_argument("--json", action="store_true", help="print JSON")
    dupes = sub.add_parser("dupes", help="identical files and near-identical images")
    dupes.add_argument(
        "--max-distance",
        type=int,
        default=None,
        help="perceptual-hash bits (of 64) two images may differ in (default 8)",
    )
    dupes.add_argument("--json", action="store_true", help="print JSON")
    stats = sub.add_parser("stats", help="storage used, by category and type; quota")
    stats.add_argument("--json", action="store_true", help="print JSON")
    clean = sub.add_parser("clean", help="delete temporary files that interrupted writes left")
    clean.add_argument(
        "--max-age-hours",
        type=float,
        default=24.0,
        help="only files older than this (default 24)",
    )
    parser.set_defaults(handler=run)


def _dump(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover


def run(args: argparse.Namespace) -> int:
    """Run ``assets ACTION``; returns the exit code."""
    from engine.assets.asset_manager import AssetManager
    from engine.assets.errors import ProjectNotFoundError
    from engine.assets.project import PROJECT_FILE

    if not (args.project / PROJECT_FILE).exists():
        raise ProjectNotFoundError(args.project.absolute())
    # A command-line call is one person's request: no per-minute limit.
    with AssetManager(args.project, {"asset_operations_per_minute": None}) as manager:
        return _run(manager, args)


def _run(manager: Any, args: argparse.Namespace) -> int:
    action = args.assets_command
    if action == "add":
        for file in args.files:
            stored = manager.store_asset(
                {
                    "source_path": file,
                    "category": args.category,
                    "tags": args.tag,
                    "description": args.description,
                }
            )
            print(f"{file} -> {stored.relative_to(manager.project().path)}")
        return 0
    if action == "search":
        paths = manager.search_assets(
            args.query, args.category, args.tag or None, mime=args.mime, limit=args.limit
        )
        if args.json:
            _dump([manager.get_asset_metadata(path) for path in paths])
            return 0
        for path in paths:
            meta = manager.get_asset_metadata(path)
            tags = f" [{', '.join(meta['tags'])}]" if meta["tags"] else ""
            print(f"{meta['rel_path']}  {meta['category']}  {meta['name']}{tags}")
        print(f"{len(paths)} found", file=sys.stderr)
        return 0
    if action == "info":
        meta = manager.get_asset_metadata(args.asset)
        if args.json:
            _dump(meta)
        else:
            for key, value in meta.items():
                print(f"{key}: {value}")
        return 0
    if action == "dupes":
        groups = manager.find_duplicates(max_distance=args.max_distance)
        if args.json:
            _dump(groups)
            return 0
        for number, group in enumerate(groups, 1):
            print(f"group {number}:")
            for path in group:
                print(f"  {path}")
        print(f"{len(groups)} groups of duplicates", file=sys.stderr)
        return 0
    if action == "stats":
        stats = manager.get_storage_statistics()
        quota = manager.get_quota_status()
        if args.json:
            _dump({"storage": stats, "quota": quota})
            return 0
        print(f"{stats['total_assets']} assets, {_size(stats['total_bytes'])}")
        for name, entry in sorted(stats["by_category"].items()):
            print(f"  {name}: {entry['count']} ({_size(entry['bytes'])})")
        for project in stats["projects"]:
            print(
                f"database {_size(project['database_bytes'])}, renders "
                f"{_size(project['renders_bytes'])}, cache {_size(project['cache_bytes'])}, "
                f"backups {_size(project['backups_bytes'])}, {project['temp_files']} temp files"
            )
        print(f"quota: {quota['storage_used_gb']:.2f} of {quota['storage_limit_gb']:.2f} GB used")
        return 0
    if action == "clean":
        removed = manager.cleanup_temp_files(args.max_age_hours)
        print(f"removed {removed} temporary files")
        return 0
    raise AssertionError(f"unhandled assets action {action}")  # argparse prevents this
