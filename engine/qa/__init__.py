"""Delivery QC: image and video quality, levels, flashes, loudness and broadcast compliance.

A service package: it uses the domain modules (audio loudness, image reading) and never
the GUI.  Start from :class:`QualityValidator`; docs/quality-control.md explains every
check, its limit and how to read the report.
"""

from engine.qa.audio_checks import AudioMeasurement, measure_audio
from engine.qa.report import (
    Artifact,
    BroadcastComplianceReport,
    ComplianceItem,
    QualityIssue,
    QualityReport,
    StandardResult,
)
from engine.qa.standards import STANDARDS
from engine.qa.validator import QualityValidator, check_standard_names
from engine.qa.video_checks import VideoMeasurement, VideoOptions

__all__ = [
    "STANDARDS",
    "Artifact",
    "AudioMeasurement",
    "BroadcastComplianceReport",
    "ComplianceItem",
    "QualityIssue",
    "QualityReport",
    "QualityValidator",
    "StandardResult",
    "VideoMeasurement",
    "VideoOptions",
    "check_standard_names",
    "measure_audio",
]
