"""Render resources/icons/hoist.svg to PNGs for desktop integration (run at build time).

    python packaging/render_icons.py OUT_DIR [--sizes 16,32,...]

writes OUT_DIR/hicolor/NxN/apps/hoist.png for each size (the freedesktop icon theme layout, so
OUT_DIR can be copied to ~/.local/share/icons or /usr/share/icons as it is) and OUT_DIR/hoist.png
(the 256 px one, for Windows .ico / macOS .icns conversion). Uses Qt's SVG renderer offscreen,
so it needs no display. The PNGs are build products: they are never committed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SIZES = (16, 32, 48, 64, 128, 256, 512)
ROOT = Path(__file__).resolve().parent.parent


def render(svg: Path, out: Path, sizes: tuple[int, ...] = SIZES) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"render_icons: {svg} is not a valid SVG")
    written = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        target = out / "hicolor" / f"{size}x{size}" / "apps" / "hoist.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(target), "PNG"):
            raise SystemExit(f"render_icons: could not write {target}")
        written.append(target)
        if size == 256:
            image.save(str(out / "hoist.png"), "PNG")
    scalable = out / "hicolor" / "scalable" / "apps" / "hoist.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    scalable.write_bytes(svg.read_bytes())
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--svg", type=Path, default=ROOT / "resources" / "icons" / "hoist.svg")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    for path in render(args.svg, args.out, sizes):
        print(f"  {path.relative_to(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
