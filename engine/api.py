"""The public API of the engine: what the GUI, the CLI and scripts use.

Names follow ``shared/seed-api-reference.md``.  Classes of the reference that are
not listed here are not built yet (see the open issues); nothing here is a stub.
"""

from typing import TYPE_CHECKING

from engine import __version__
from engine.assembly.assembler import AssemblyJob, VideoAssembler
from engine.assembly.tempo_map import MusicalPosition, TempoMap
from engine.assembly.timeline_document import (
    Clip,
    ClipSource,
    Marker,
    TimelineDocument,
    TimePoint,
    Track,
    load_timeline,
    save_timeline,
    timeline_from_plan,
)
from engine.assembly.transitions import TRANSITIONS, TransitionSpec
from engine.audio.analyzer import ANALYZER_VERSION, AudioAnalyzer
from engine.audio.types import AudioAnalysis, AudioSection, BeatMarker, SpectralFeatures
from engine.config import ConfigManager
from engine.context import StageContext
from engine.errors import (
    APEXDirectorError,
    AssemblyError,
    AssetError,
    AudioInputError,
    BackendError,
    CancelledError,
    ConfigurationError,
    CorruptModelError,
    GenerationError,
    MediaInputError,
    ModelError,
    ParameterError,
    UserInputError,
)
from engine.events import (
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobProgress,
    JobQueued,
    JobStarted,
)
from engine.generation.backends import create_backend, create_first_available
from engine.generation.characters import CharacterConsistencyManager, CharacterProfile
from engine.generation.device import DeviceInfo, select_device
from engine.generation.diffusers_backend import DiffusersBackend, DiffusionRequest
from engine.generation.generator import CinematicImageGenerator
from engine.generation.lora import LoraBaseMismatchError, LoraSpec
from engine.generation.model_manager import ModelInfo, identify_model
from engine.generation.model_manager.registry import FoundModel, scan_models
from engine.generation.prompting import GenerationRequest, StylePreset, load_presets
from engine.generation.style_bible import STYLE_BIBLE_FILE, StyleBible, StylePersistenceManager
from engine.generation.upscale import upscale_file, upscale_image
from engine.grading.grader import STAGES, ColorGrader, shipped_looks
from engine.grading.lut import LutParseError
from engine.orchestrator.render_pipeline import (
    PRESET_NAMES,
    MissingStillsError,
    RenderRequest,
    TimelineMismatchError,
    apply_grades,
    render_video,
)
from engine.planning.shots import Shot, ShotList, plan_shots
from engine.qa import (
    Artifact,
    BroadcastComplianceReport,
    ComplianceItem,
    QualityIssue,
    QualityReport,
    QualityValidator,
    StandardResult,
    VideoOptions,
)
from engine.security.errors import (
    ArchiveError,
    ArchiveTooLargeError,
    DecryptionError,
    ProjectLockedError,
    UnsafeArchiveError,
)

__all__ = [
    "ANALYZER_VERSION",
    "PRESET_NAMES",
    "STAGES",
    "STYLE_BIBLE_FILE",
    "TRANSITIONS",
    "APEXDirector",
    "APEXDirectorError",
    "APEXOrchestrator",
    "ArchiveError",
    "ArchiveTooLargeError",
    "Artifact",
    "AssemblyError",
    "AssemblyJob",
    "AssetError",
    "AssetManager",
    "AudioAnalysis",
    "AudioAnalyzer",
    "AudioInputError",
    "AudioSection",
    "BackendError",
    "BeatMarker",
    "BroadcastComplianceReport",
    "CancelledError",
    "CharacterConsistencyManager",
    "CharacterProfile",
    "CinematicImageGenerator",
    "Clip",
    "ClipSource",
    "ColorGrader",
    "ComplianceItem",
    "ConfigManager",
    "ConfigurationError",
    "CorruptModelError",
    "DecryptionError",
    "DeviceInfo",
    "DiffusersBackend",
    "DiffusionRequest",
    "EngineThread",
    "FoundModel",
    "FrameServer",
    "GenerationError",
    "GenerationRequest",
    "InvalidApiKeyError",
    "JobCancelled",
    "JobEvent",
    "JobFailed",
    "JobFinished",
    "JobProgress",
    "JobQueued",
    "JobStarted",
    "LoraBaseMismatchError",
    "LoraSpec",
    "LutParseError",
    "Marker",
    "MediaInputError",
    "MissingStillsError",
    "ModelError",
    "ModelInfo",
    "MusicalPosition",
    "ParameterError",
    "Permission",
    "PermissionDeniedError",
    "Project",
    "ProjectLockedError",
    "QualityIssue",
    "QualityReport",
    "QualityValidator",
    "RenderRequest",
    "Shot",
    "ShotList",
    "SpectralFeatures",
    "StageContext",
    "StandardResult",
    "StyleBible",
    "StylePersistenceManager",
    "StylePreset",
    "TempoMap",
    "TimePoint",
    "TimelineDocument",
    "TimelineMismatchError",
    "Track",
    "TransitionSpec",
    "UnsafeArchiveError",
    "UserInputError",
    "VideoAssembler",
    "VideoOptions",
    "__version__",
    "apply_grades",
    "create_backend",
    "create_first_available",
    "decode_audio",
    "document_frame_server",
    "identify_model",
    "load_presets",
    "load_timeline",
    "plan_shots",
    "prepare_render",
    "project_audio_source",
    "project_key_kind",
    "render_video",
    "save_timeline",
    "scan_models",
    "select_device",
    "shipped_looks",
    "timeline_from_plan",
    "upscale_file",
    "upscale_image",
]

# AssetManager and Project are imported on first use: they bring in peewee, and
# ``import engine.api`` stays light (tests/engine/test_atomic_and_imports.py).
_LAZY = {
    "AssetManager": "engine.assets",
    "Project": "engine.assets",
    "APEXDirector": "engine.orchestrator.facade",
    "InvalidApiKeyError": "engine.security.api_keys",
    "Permission": "engine.security.api_keys",
    "PermissionDeniedError": "engine.security.api_keys",
    "APEXOrchestrator": "engine.orchestrator.orchestrator",
    "EngineThread": "engine.orchestrator.engine_thread",
    # the preview frame server brings in the frame renderer (OpenCV on first frame)
    "FrameServer": "engine.assembly.frame_server",
    "document_frame_server": "engine.assembly.preview",
    "decode_audio": "engine.audio.decode",
    # a render as a chain of jobs in a project (the GUI's render queue submits these)
    "prepare_render": "engine.orchestrator.render_jobs",
    # a project's song for decoding: its path, or its bytes when sealed (encrypted project)
    "project_audio_source": "engine.assets.asset_manager",
    # how an encrypted project is keyed (keyring or passphrase), None when it is not
    "project_key_kind": "engine.security.crypto",
}
if TYPE_CHECKING:
    from engine.assembly.frame_server import FrameServer
    from engine.assembly.preview import document_frame_server
    from engine.assets import AssetManager, Project
    from engine.assets.asset_manager import project_audio_source
    from engine.audio.decode import decode_audio
    from engine.orchestrator.engine_thread import EngineThread
    from engine.orchestrator.facade import APEXDirector
    from engine.orchestrator.orchestrator import APEXOrchestrator
    from engine.orchestrator.render_jobs import prepare_render
    from engine.security.api_keys import InvalidApiKeyError, Permission, PermissionDeniedError
    from engine.security.crypto import project_key_kind


def __getattr__(name: str) -> object:
    """Import the project/asset classes only when asked for (PEP 562)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine.api' has no attribute {name!r}")
