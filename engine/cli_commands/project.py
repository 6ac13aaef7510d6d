"""``apex-director project new|open|info|backup|export|import``: project folders.

A project is a folder with ``project.apex.json``, ``apex.db``, ``assets/``,
``renders/``, ``cache/`` and ``backups/`` (docs/projects-and-assets.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``project`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "project",
        help="create, open, describe or back up a project folder",
        description="A project folder holds the project file, its database, assets, renders, "
        "cache and rolling backups: see docs/projects-and-assets.md.",
    )
    sub = parser.add_subparsers(dest="project_command", metavar="ACTION", required=True)
    new = sub.add_parser("new", help="create a project folder")
    new.add_argument("path", type=Path, help="the folder (created if missing)")
    new.add_argument("--name", default=None, help="project name (default: the folder name)")
    new.add_argument("--description", default="", help="a line about the project")
    new.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    opened = sub.add_parser(
        "open", help="open a project, check it and say what is in it (repairs with --recover)"
    )
    opened.add_argument("path", type=Path, help="the project folder")
    opened.add_argument(
        "--recover",
        action="store_true",
        help="if project.apex.json is broken, restore the newest valid backup (the broken "
        "file is renamed aside, not deleted)",
    )
    info = sub.add_parser("info", help="show a project's name, revision, counts and backups")
    info.add_argument("path", type=Path, nargs="?", default=Path("."), help="default: here")
    info.add_argument("--json", action="store_true", help="print JSON")
    backup = sub.add_parser("backup", help="back up the project file and database now")
    backup.add_argument("path", type=Path, nargs="?", default=Path("."), help="default: here")
    export = sub.add_parser("export", help="write the project to a .zip or .tar.gz archive")
    export.add_argument("path", type=Path, help="the project folder")
    export.add_argument("archive", type=Path, help="the archive to write (.zip, .tar.gz)")
    imported = sub.add_parser(
        "import",
        help="unpack an exported project into a new folder (refuses unsafe archives)",
    )
    imported.add_argument("archive", type=Path, help="the .zip or tar archive")
    imported.add_argument("dest", type=Path, help="the new project folder")
    parser.set_defaults(handler=run)


def _print_info(info: dict[str, Any]) -> None:
    print(f"{info['name']} ({info['path']})")
    print(f"  id {info['id']}, revision {info['revision']}, saved {info['saved_at']}")
    print(f"  {info['assets']} assets, {info['jobs']} jobs, {info['backups']} backups", end="")
    print(f" (latest {info['latest_backup']})" if info["latest_backup"] else "")


def run(args: argparse.Namespace) -> int:
    """Run ``project ACTION``; returns the exit code."""
    from engine.assets.project import Project

    action = args.project_command
    if action == "new":
        project = Project.create(
            args.path, name=args.name, description=args.description, tags=args.tag
        )
        with project:
            print(f"created project {project.name!r} in {project.path} (id {project.id})")
        return 0
    if action == "open":
        broken_before = set(args.path.glob("project.apex.json.broken-*"))
        with Project.open(args.path, recover=args.recover) as project:
            restored = set(project.path.glob("project.apex.json.broken-*")) - broken_before
            for aside in sorted(restored):
                print(f"restored the latest backup; the broken file is kept as {aside.name}")
            _print_info(project.info())
        return 0
    if action == "info":
        with Project.open(args.path) as project:
            info = project.info()
        if args.json:
            sys.stdout.write(json.dumps(info, indent=2) + "\n")
        else:
            _print_info(info)
        return 0
    if action == "backup":
        with Project.open(args.path) as project:
            folder = project.backup()
            kept = len(project.list_backups())
        print(f"backed up to {folder} ({kept} backups kept)")
        return 0
    if action == "export":
        with Project.open(args.path) as project:
            written = project.export_archive(args.archive)
        print(f"exported {project.name!r} to {written}")
        return 0
    if action == "import":
        with Project.import_archive(args.archive, args.dest) as project:
            print(f"imported project {project.name!r} into {project.path} (id {project.id})")
        return 0
    raise AssertionError(f"unhandled project action {action}")  # argparse prevents this
