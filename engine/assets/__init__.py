"""Projects and their assets: the project folder, content-addressed files, search.

Importing this package loads peewee (through :mod:`engine.storage`); ``engine.api``
therefore exposes :class:`AssetManager` and :class:`Project` lazily.
"""

from engine.assets.asset_manager import AssetManager
from engine.assets.errors import (
    AssetPathError,
    ProjectError,
    ProjectExistsError,
    ProjectFileError,
    ProjectNotFoundError,
    QuotaExceededError,
    RateLimitError,
)
from engine.assets.project import BackupPolicy, Project

__all__ = [
    "AssetManager",
    "AssetPathError",
    "BackupPolicy",
    "Project",
    "ProjectError",
    "ProjectExistsError",
    "ProjectFileError",
    "ProjectNotFoundError",
    "QuotaExceededError",
    "RateLimitError",
]
