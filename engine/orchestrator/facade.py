"""``APEXDirector``: one object that hands out the asset manager and the orchestrator.

The API reference's examples call ``get_asset_manager()`` and ``get_orchestrator()``;
this is where they come from.  Everything is local: there is no API key (the
reference's ``api_key`` belongs to a hosted service this app is not).

Examples
--------
>>> director = APEXDirector(tmp / "workspace")
>>> assets = director.get_asset_manager()
>>> project = assets.create_project("Night drive")
>>> orchestrator = director.get_orchestrator()   # runs the jobs of that project
>>> orchestrator.project is project
True
>>> director.close()
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.assets.asset_manager import AssetManager
from engine.assets.project import PROJECT_FILE
from engine.orchestrator.orchestrator import APEXOrchestrator

__all__ = ["DEFAULT_PROJECT_NAME", "APEXDirector"]

log = logging.getLogger(__name__)

DEFAULT_PROJECT_NAME = "default"


class APEXDirector:
    """The asset manager and one orchestrator per project, under ``base_dir``.

    Parameters
    ----------
    base_dir : Path or str
        The workspace: a folder of projects, or a project folder itself.
    config : dict, optional
        The engine configuration (its ``assets`` and ``orchestrator`` tables are used).
    """

    def __init__(self, base_dir: Path | str, *, config: dict[str, Any] | None = None) -> None:
        self.base_dir = Path(base_dir).expanduser().absolute()
        self.config = dict(config or {})
        self._assets: AssetManager | None = None
        self._orchestrators: dict[str, APEXOrchestrator] = {}

    def get_asset_manager(self) -> AssetManager:
        """The asset manager of ``base_dir`` (made on first use)."""
        if self._assets is None:
            self.base_dir.mkdir(parents=True, exist_ok=True)
            self._assets = AssetManager(self.base_dir, self.config)
        return self._assets

    def get_orchestrator(self, project_id: str | None = None) -> APEXOrchestrator:
        """The orchestrator of a project: ``project_id``, else the asset manager's current
        project, else the ``default`` project under ``base_dir`` (opened or created).

        Call ``await orchestrator.initialize()`` and ``start()`` on an event loop (the
        :class:`~engine.orchestrator.engine_thread.EngineThread` hosts one).
        """
        assets = self.get_asset_manager()
        if project_id is None and assets.projects == []:
            folder = self.base_dir / DEFAULT_PROJECT_NAME
            if (folder / PROJECT_FILE).exists():
                assets.open_project(folder)
            else:
                assets.create_project(DEFAULT_PROJECT_NAME)
        project = assets.project(project_id)
        orchestrator = self._orchestrators.get(project.id)
        if orchestrator is None:
            orchestrator = APEXOrchestrator(project, config=self.config)
            self._orchestrators[project.id] = orchestrator
        return orchestrator

    def close(self) -> None:
        """Close the projects (saving them).  Stop running orchestrators first."""
        self._orchestrators.clear()
        if self._assets is not None:
            self._assets.close()
            self._assets = None

    def __enter__(self) -> APEXDirector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
