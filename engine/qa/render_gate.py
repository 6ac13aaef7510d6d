"""The QC step at the end of every render: check the written file, report, never delete it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.errors import MediaInputError
from engine.qa.validator import BROADCAST_STANDARDS, QualityValidator, check_standard_names
from engine.qa.video_checks import VideoOptions

__all__ = ["render_qc", "standards_for_preset"]

log = logging.getLogger(__name__)


def standards_for_preset(
    preset: str, configured: list[str] | tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The standards a render is held to: the configured ones, else by preset."""
    if configured:
        return check_standard_names(configured)
    return BROADCAST_STANDARDS if preset == "broadcast" else ()


def render_qc(
    output_path: Path,
    *,
    preset: str,
    qa_cfg: Mapping[str, Any],
    check_cancelled: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Check a finished render; returns the ``qc`` section of the render's JSON report.

    ``passed`` is False when a technical check failed or an item of a gate standard
    failed; ``summary`` then says what, and the file stays where it is.
    """
    started = time.perf_counter()
    gate = standards_for_preset(preset, list(qa_cfg.get("standards", []) or []))
    validator = QualityValidator(
        VideoOptions(mode=str(qa_cfg.get("video_analysis", "full"))),
        check_cancelled=check_cancelled,
    )
    try:
        report = validator.validate_video(
            output_path, standards=tuple(dict.fromkeys((*gate, *BROADCAST_STANDARDS)))
        )
    except MediaInputError as err:
        # The render wrote a file QC cannot read: a failed delivery, not bad user input.
        summary = f"QC FAILED: the rendered file cannot be checked ({err.reason})"
        log.warning("%s — %s is kept", summary, output_path)
        return {
            "passed": False,
            "summary": summary,
            "gate_standards": list(gate),
            "seconds": round(time.perf_counter() - started, 3),
            "report": None,
        }
    compliance = report.compliance
    gate_failures = [
        f"{r.standard} {item.check} {item.measured}{item.unit} (limit {item.limit})"
        for r in (compliance.standards if compliance else [])
        if r.standard in gate
        for item in r.items
        if not item.passed
    ]
    passed = report.passed and not gate_failures
    problems = [i.message for i in report.failures] + gate_failures
    summary = (
        f"QC passed ({', '.join(gate) or 'technical checks'}; score {report.overall_score:.2f})"
        if passed
        else "QC FAILED: " + "; ".join(problems)
    )
    if not passed:
        log.warning("%s — %s is kept; see the report's qc section", summary, output_path)
    else:
        log.info("%s", summary)
    return {
        "passed": passed,
        "summary": summary,
        "gate_standards": list(gate),
        "seconds": round(time.perf_counter() - started, 3),
        "report": report.to_dict(),
    }
