"""``apex-director project new|open|info|backup|export|import|encrypt``: project folders.

A project is a folder with ``project.apex.json``, ``apex.db``, ``assets/``,
``renders/``, ``cache/`` and ``backups/`` (docs/projects-and-assets.md).

A passphrase (``project encrypt``, ``render --project`` of an encrypted project) is
never a command-line argument, which other users can read in the process list: it
comes from ``--passphrase-file FILE`` (its first line), the ``APEX_PROJECT_PASSPHRASE``
environment variable, or a prompt on a terminal (:func:`read_passphrase`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["PASSPHRASE_ENV", "add_passphrase_option", "read_passphrase", "register", "run"]

PASSPHRASE_ENV = "APEX_PROJECT_PASSPHRASE"


def add_passphrase_option(
    parser: argparse.ArgumentParser, *, purpose: str, prompt: bool = True
) -> None:
    """Add ``--passphrase-file FILE`` (see :func:`read_passphrase`)."""
    asked = "; on a terminal you are asked" if prompt else ""
    parser.add_argument(
        "--passphrase-file",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"read the passphrase {purpose} from the first line of FILE (or set "
        f"{PASSPHRASE_ENV}{asked}); never give it on the command line",
    )


def read_passphrase(path: Path | None, *, prompt: str | None = None) -> str | None:
    """The passphrase from ``path`` (first line), else ``$APEX_PROJECT_PASSPHRASE``, else a
    prompt when ``prompt`` is given and stdin is a terminal, else ``None``.

    Raises
    ------
    ParameterError
        The file cannot be read, or the passphrase is empty.
    """
    from engine.errors import ParameterError

    if path is not None:
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ParameterError(
                "--passphrase-file", str(path), f"a readable UTF-8 text file ({err})"
            ) from err
        lines = text.splitlines()
        passphrase = lines[0] if lines else ""
        if not passphrase:
            raise ParameterError("--passphrase-file", str(path), "a file whose first line is it")
        return passphrase
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    if prompt is not None and sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt) or None
    return None


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
    encrypt = sub.add_parser(
        "encrypt",
        help="encrypt the project's assets and their sensitive metadata at rest "
        "(AES-256-GCM; docs/security.md)",
    )
    encrypt.add_argument("path", type=Path, help="the project folder")
    add_passphrase_option(
        encrypt, purpose="(without one, a random key is kept in the OS keyring)", prompt=False
    )
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
    if action == "encrypt":
        return _encrypt(args)
    raise AssertionError(f"unhandled project action {action}")  # argparse prevents this


def _encrypt(args: argparse.Namespace) -> int:
    from engine.assets.asset_manager import AssetManager
    from engine.assets.project import PROJECT_FILE
    from engine.errors import UserInputError

    if not (args.path / PROJECT_FILE).is_file():
        raise UserInputError(
            f"{args.path} holds no project ({PROJECT_FILE}); give a project folder"
        )
    # no prompt: a mistyped new passphrase would lock the assets away for good
    passphrase = read_passphrase(args.passphrase_file)
    with AssetManager(args.path) as assets:
        assets.encrypt_project(passphrase)
        name = assets.project().name
    where = "the OS keyring" if passphrase is None else "your passphrase (it cannot be recovered)"
    print(f"encrypted project {name!r}: its assets are sealed; the key is {where}")
    return 0
