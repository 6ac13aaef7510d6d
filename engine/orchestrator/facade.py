"""``APEXDirector``: one object that hands out the asset manager and the orchestrator.

The API reference's examples call ``get_asset_manager()`` and ``get_orchestrator()``;
this is where they come from.  Everything is local.  Without ``api_key`` the caller is
the local user (every permission); with one, the key is checked against the project's
``api_key`` table and its level (read < write < execute < admin) limits what the asset
manager and the orchestrators accept (engine/security/api_keys.py, docs/security.md).

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
from engine.security.api_keys import LOCAL, ApiKeyStore, Principal

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
    api_key : str, optional
        An API key (``apx_<id>_<secret>``, from ``apex-director keys create``) of the
        project; without one the caller is the local user.
    """

    def __init__(
        self,
        base_dir: Path | str,
        *,
        config: dict[str, Any] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).expanduser().absolute()
        self.config = dict(config or {})
        self.api_key = api_key
        self._principal: Principal | None = None if api_key else LOCAL
        self._assets: AssetManager | None = None
        self._orchestrators: dict[str, APEXOrchestrator] = {}

    def validate_credentials(self) -> dict[str, str]:
        """Check the API key against the project's keys; returns ``{"key_id", "level"}``.

        Raises
        ------
        InvalidApiKeyError
            Malformed, unknown, wrong or revoked key.
        """
        assets = self.get_asset_manager()
        return {"key_id": assets.principal.key_id, "level": assets.principal.level.name.lower()}

    def _default_project(self, assets: AssetManager) -> None:
        if assets.projects == []:
            folder = self.base_dir / DEFAULT_PROJECT_NAME
            if (folder / PROJECT_FILE).exists():
                assets.open_project(folder)
            else:
                assets.create_project(DEFAULT_PROJECT_NAME)

    def get_asset_manager(self) -> AssetManager:
        """The asset manager of ``base_dir`` (made on first use; the API key checked)."""
        if self._assets is None:
            self.base_dir.mkdir(parents=True, exist_ok=True)
            assets = AssetManager(self.base_dir, self.config)
            if self._principal is None:
                try:
                    self._default_project(assets)
                    self._principal = ApiKeyStore(assets.project()).validate(self.api_key or "")
                except BaseException:
                    assets.close()
                    raise
            assets.principal = self._principal
            self._assets = assets
        return self._assets

    def get_orchestrator(self, project_id: str | None = None) -> APEXOrchestrator:
        """The orchestrator of a project: ``project_id``, else the asset manager's current
        project, else the ``default`` project under ``base_dir`` (opened or created).

        Call ``await orchestrator.initialize()`` and ``start()`` on an event loop (the
        :class:`~engine.orchestrator.engine_thread.EngineThread` hosts one).
        """
        assets = self.get_asset_manager()
        if project_id is None:
            self._default_project(assets)
        project = assets.project(project_id)
        orchestrator = self._orchestrators.get(project.id)
        if orchestrator is None:
            orchestrator = APEXOrchestrator(project, config=self.config)
            orchestrator.principal = assets.principal
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
