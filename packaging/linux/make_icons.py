"""Draw APEX Director's application icon: ``icons/apex-director.svg`` and PNGs 48/128/256.

The SVG is written here (a play-triangle "A" apex over a waveform on a dark rounded tile)
and the PNGs are rendered from it with Qt's SVG renderer, so the sizes always agree::

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/linux/make_icons.py

Every file is written atomically (``engine.atomic_files``).
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from engine.atomic_files import atomic_path, atomic_write_text  # noqa: E402

ICON_DIR = HERE / "icons"
SIZES = (48, 128, 256)
NAME = "apex-director"

log = logging.getLogger(__name__)


def _waveform_path(n: int = 48) -> str:
    """An SVG path of a beat-like waveform across the bottom of the 256-unit tile."""
    pts = []
    for i in range(n + 1):
        x = 28 + 200 * i / n
        env = math.sin(math.pi * i / n) ** 0.7
        y = 196 - 26 * env * abs(math.sin(i * 1.7)) * (1.0 if i % 6 else 1.6)
        pts.append(f"{x:.1f},{y:.1f}")
    up = " L".join(pts)
    down = " L".join(f"{p.split(',')[0]},{392 - float(p.split(',')[1]):.1f}" for p in reversed(pts))
    return f"M{up} L{down} Z"


def icon_svg() -> str:
    """The icon as SVG text (a 256x256 view box)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">
  <defs>
    <linearGradient id="bg" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#1d2233"/>
      <stop offset="1" stop-color="#0b0d14"/>
    </linearGradient>
    <linearGradient id="apex" x1="0" y1="0" x2="1" y2="1">
      <stop offset="0" stop-color="#ffb347"/>
      <stop offset="1" stop-color="#ff4f6d"/>
    </linearGradient>
  </defs>
  <rect x="8" y="8" width="240" height="240" rx="44" fill="url(#bg)"/>
  <path d="M128 36 L206 176 L170 176 L128 100 L86 176 L50 176 Z" fill="url(#apex)"/>
  <path d="M112 128 L150 150 L112 172 Z" fill="#ffffff" opacity="0.92"/>
  <path d="{_waveform_path()}" fill="#37c8d6" opacity="0.85"/>
</svg>
"""


def render_png(svg: str, size: int, target: Path) -> None:
    """Render ``svg`` to a ``size``x``size`` PNG at ``target`` with QtSvg."""
    from PySide6.QtCore import QByteArray, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    if not renderer.isValid():
        raise ValueError("the icon SVG does not parse")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    with atomic_path(target, suffix=".png") as tmp:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"could not write {target}")


def main() -> int:
    """Write the SVG and the PNGs into ``packaging/linux/icons/``."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ICON_DIR.mkdir(parents=True, exist_ok=True)
    svg = icon_svg()
    atomic_write_text(ICON_DIR / f"{NAME}.svg", svg)
    for size in SIZES:
        target = ICON_DIR / f"{NAME}-{size}.png"
        render_png(svg, size, target)
        log.info("wrote %s", target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
