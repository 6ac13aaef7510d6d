"""Preview frames of a timeline document: the realtime frame server for an edit.

The GUI's preview player asks for frames of the edit being made.  This builds a
:class:`~engine.assembly.frame_server.FrameServer` from a
:class:`~engine.assembly.timeline_document.TimelineDocument` through its
:meth:`~engine.assembly.timeline_document.TimelineDocument.render_plan`, the same
conversion the final render uses, so the preview shows the moves, transitions and
grades the render will show (at reduced size).  ``graded=False`` gives the same frames
without any grade, for a before/after comparison.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import MediaInputError

if TYPE_CHECKING:
    from engine.assembly.frame_server import FrameServer
    from engine.assembly.timeline_document import TimelineDocument

__all__ = ["document_frame_server"]

log = logging.getLogger(__name__)

Grade = Callable[[np.ndarray, int], np.ndarray]


def document_frame_server(
    document: TimelineDocument,
    *,
    width: int = 320,
    height: int = 180,
    graded: bool = True,
) -> FrameServer:
    """A frame server that renders ``document`` at ``width`` x ``height``.

    Parameters
    ----------
    document : TimelineDocument
        The edit (one contiguous video track of stills or image sequences).
    width, height : int
        Preview size in pixels (at least 16 x 16).
    graded : bool
        Apply the document's global and per-clip grades (True) or show the pictures
        ungraded (False).

    Returns
    -------
    FrameServer
        ``frame_at(seconds)`` gives the RGB frame the render shows at that time.

    Raises
    ------
    ParameterError
        The document cannot be rendered (gaps, no video clips) or the size is too small.
    MediaInputError
        A clip's image is missing or unreadable when its frame is asked for.
    """
    from engine.assembly.frame_renderer import FrameStyle
    from engine.assembly.frame_server import FrameServer
    from engine.generation.stills import read_rgb

    plan = document.render_plan()
    graders: dict[str, Grade] = {}

    def grade_of(settings: Mapping[str, Any]) -> Grade:
        key = json.dumps(settings, sort_keys=True)
        if key not in graders:
            from engine.grading.grader import ColorGrader

            grader = ColorGrader.from_dict(settings)
            grader.prepare()
            graders[key] = lambda frame, index: grader.grade(frame, frame_index=index)
        return graders[key]

    def load_still(index: int) -> np.ndarray:
        path = Path(plan.still_paths[index])
        image = read_rgb(path)
        if image is None:
            raise MediaInputError(path, "is missing or not a readable image; replace the still")
        return image

    style = FrameStyle(
        beat_times=plan.beat_times,
        grade=grade_of(plan.grade) if graded and plan.grade is not None else None,
        shot_grades=(
            {index: grade_of(g) for index, g in plan.shot_grades.items()} if graded else {}
        ),
        motions=plan.motions,
        transitions=plan.transitions,
        image_at=plan.image_at,
    )
    log.debug("preview server: %d shots at %dx%d", len(plan.shots.shots), width, height)
    return FrameServer(
        plan.shots,
        load_still,
        fps=float(document.fps),
        width=width,
        height=height,
        style=style,
        transition_seconds=plan.transition_seconds,
    )
