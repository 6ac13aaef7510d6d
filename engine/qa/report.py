"""The reports of delivery QC: issues, artifacts, per-standard compliance.

Every value a check measured travels with the limit it was held to, so a report can
say exactly what failed, by how much, and where (frame and time for video).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SEVERITIES",
    "Artifact",
    "BroadcastComplianceReport",
    "ComplianceItem",
    "QualityIssue",
    "QualityReport",
    "StandardResult",
]

# "fail" breaks delivery; "warning" is worth a look; "info" is a note.
SEVERITIES = ("fail", "warning", "info")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    return value


@dataclass(frozen=True, kw_only=True)
class QualityIssue:
    """One problem a check found.

    Attributes
    ----------
    check : str
        The check's name (``"luma_range"``, ``"flashes"``, ``"sharpness"`` ...).
    severity : str
        ``"fail"``, ``"warning"`` or ``"info"``.
    message : str
        What is wrong and what to do, in a sentence a user can act on.
    measured : Any
        The measured value.
    limit : str
        The limit it was held to, in words (``"<= 3 flashes in any 1 s"``).
    frame : int | None
        First frame concerned (video only).
    time : float | None
        Its time in seconds (video only).
    """

    check: str
    severity: str
    message: str
    measured: Any = None
    limit: str = ""
    frame: int | None = None
    time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[no-any-return]


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """A visible defect at a place in a picture.

    Attributes
    ----------
    kind : str
        ``"blocking"``, ``"banding"``, ``"clipped_highlights"``, ``"crushed_shadows"``,
        ``"flash"``, ``"red_flash"``, ``"black"``, ``"frozen"``, ``"illegal_level"``.
    severity : float
        0 (barely there) to 1 (as bad as it gets).
    region : tuple[int, int, int, int]
        ``(x, y, width, height)`` in pixels of the image (or of the video frame).
    frame : int | None
        Frame index for video, ``None`` for a still.
    time : float | None
        Time in seconds for video.
    description : str
        What was measured there.
    """

    kind: str
    severity: float
    region: tuple[int, int, int, int]
    frame: int | None = None
    time: float | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[no-any-return]


@dataclass(frozen=True, kw_only=True)
class QualityReport:
    """The result of :meth:`QualityValidator.validate_image` or ``validate_video``.

    Attributes
    ----------
    path : Path
        The file checked.
    media_type : str
        ``"image"`` or ``"video"``.
    overall_score : float
        0 (unusable) to 1 (no defect found): the weighted mean of ``detailed_scores``.
    broadcast_compliant : bool
        No failed check, and (video) EBU R 128 loudness and EBU R 103 levels met.
    issues : list[QualityIssue]
        Every problem found, worst first.
    recommendations : list[str]
        What to do about them.
    detailed_scores : dict[str, float]
        Each check's score, 0..1.
    measurements : dict[str, Any]
        The raw measured values (levels, loudness, GOP, durations ...).
    artifacts : list[Artifact]
        Located defects.
    compliance : BroadcastComplianceReport | None
        The per-standard results computed from the same measurements (video).
    """

    path: Path
    media_type: str
    overall_score: float
    broadcast_compliant: bool
    issues: list[QualityIssue] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    detailed_scores: dict[str, float] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    compliance: BroadcastComplianceReport | None = None

    @property
    def passed(self) -> bool:
        """True when no check failed (warnings do not fail a file)."""
        return not any(i.severity == "fail" for i in self.issues)

    @property
    def failures(self) -> list[QualityIssue]:
        return [i for i in self.issues if i.severity == "fail"]

    def summary(self) -> str:
        """One line: pass, or what failed."""
        if self.passed:
            warnings = sum(i.severity == "warning" for i in self.issues)
            return f"QC passed (score {self.overall_score:.2f}, {warnings} warning(s))"
        return "QC FAILED: " + "; ".join(i.message for i in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "media_type": self.media_type,
            "passed": self.passed,
            "summary": self.summary(),
            "overall_score": round(self.overall_score, 4),
            "broadcast_compliant": self.broadcast_compliant,
            "issues": [i.to_dict() for i in self.issues],
            "recommendations": list(self.recommendations),
            "detailed_scores": _jsonable(self.detailed_scores),
            "measurements": _jsonable(self.measurements),
            "artifacts": [a.to_dict() for a in self.artifacts],
            "compliance": None if self.compliance is None else self.compliance.to_dict(),
        }


@dataclass(frozen=True, kw_only=True)
class ComplianceItem:
    """One requirement of a standard, with the measured value and the limit."""

    check: str
    passed: bool
    measured: Any
    limit: str
    unit: str = ""
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[no-any-return]


@dataclass(frozen=True, kw_only=True)
class StandardResult:
    """Every item of one standard (``"ebu_r128"``, ``"atsc_a85"``, ``"ebu_r103"``, ``"web"``)."""

    standard: str
    title: str
    items: list[ComplianceItem]

    @property
    def passed(self) -> bool:
        return all(item.passed for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "standard": self.standard,
            "title": self.title,
            "passed": self.passed,
            "items": [i.to_dict() for i in self.items],
        }


@dataclass(frozen=True, kw_only=True)
class BroadcastComplianceReport:
    """The result of :meth:`QualityValidator.check_broadcast_standards`.

    Attributes
    ----------
    path : Path
    standards : list[StandardResult]
        One result per standard asked for.
    """

    path: Path
    standards: list[StandardResult]

    @property
    def compliant(self) -> bool:
        """True when every item of every standard passed."""
        return all(s.passed for s in self.standards)

    def get(self, name: str) -> StandardResult:
        for result in self.standards:
            if result.standard == name:
                return result
        raise KeyError(name)

    def failed_items(self) -> list[tuple[str, ComplianceItem]]:
        return [(s.standard, i) for s in self.standards for i in s.items if not i.passed]

    def summary(self) -> str:
        if self.compliant:
            return "compliant with " + ", ".join(s.standard for s in self.standards)
        return "NOT compliant: " + "; ".join(
            f"{std} {item.check} {item.measured}{item.unit} (limit {item.limit})"
            for std, item in self.failed_items()
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "compliant": self.compliant,
            "summary": self.summary(),
            "standards": [s.to_dict() for s in self.standards],
        }
