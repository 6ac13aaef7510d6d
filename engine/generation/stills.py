"""The ``stills`` backend: the user's own images, in order, cropped to the frame.

Images are cover-cropped (scaled to fill the frame, centre cropped): never
stretched, never letterboxed.  An unreadable image among good ones is skipped
with a warning; a folder with no usable image is an error.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from engine.errors import MediaInputError
from engine.generation.image_io import read_image_safely
from engine.generation.types import StillRequest

__all__ = ["IMAGE_EXTENSIONS", "StillsBackend", "cover_crop", "list_images", "read_rgb"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _natural_key(path: Path) -> list[object]:
    """Sort "shot2" before "shot10", as a person would."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path | str) -> list[Path]:
    """Image files directly in ``folder``, in natural order.

    Raises
    ------
    MediaInputError
        The folder does not exist, is not a folder, or holds no image files.
    """
    folder = Path(folder)
    if not folder.exists():
        raise MediaInputError(folder, "images folder not found; check the path")
    if not folder.is_dir():
        raise MediaInputError(folder, "is not a folder; --images takes a folder of images")
    images = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=_natural_key,
    )
    if not images:
        kinds = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
        raise MediaInputError(
            folder, f"contains no images ({kinds}); add some or pick another folder"
        )
    return images


def cover_crop(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``image`` to cover ``width`` x ``height`` and crop the centre (no distortion)."""
    import cv2

    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    x0, y0 = (new_w - width) // 2, (new_h - height) // 2
    return np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width])


def read_rgb(path: Path) -> np.ndarray | None:
    """The image at ``path`` as RGB uint8, or ``None`` when it is missing or unreadable.

    Reads through :func:`~engine.generation.image_io.read_image_safely`, so an image
    too large to decode safely (a decompression bomb) is refused, with a warning that
    says why, instead of exhausting memory.
    """
    try:
        return read_image_safely(path)
    except MediaInputError as err:
        log.warning("%s", err)
        return None


class StillsBackend:
    """Serve the user's images in order, one per shot (cycling when there are fewer)."""

    name = "stills"
    is_draft = False

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.warnings: list[str] = []
        usable: list[Path] = []
        for path in list_images(self.folder):
            if read_rgb(path) is None:
                message = f"skipped {path.name}: not a readable image"
                log.warning("%s", message)
                self.warnings.append(message)
            else:
                usable.append(path)
        if not usable:
            raise MediaInputError(
                self.folder, "none of its images can be read; check that they are not damaged"
            )
        self.images = usable

    def generate(self, request: StillRequest) -> np.ndarray:
        path = self.images[request.shot_index % len(self.images)]
        image = read_rgb(path)
        if image is None:  # changed on disk since we checked
            raise MediaInputError(path, "cannot be read any more; was it changed or removed?")
        return cover_crop(image, request.width, request.height)

    def source_for(self, shot_index: int) -> Path:
        return self.images[shot_index % len(self.images)]
