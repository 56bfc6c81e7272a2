"""Mechanical layout checks of a drawn matplotlib figure (used by ``test_layout.py``).

Each check draws nothing itself: call :func:`draw` first, then pass the figure. Every check returns
a list of human-readable problems (empty when the figure passes), so that a failing test names
the offending artist. Coordinates are display pixels of the Agg canvas.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.container import BarContainer
from matplotlib.text import Text
from matplotlib.transforms import Bbox

__all__ = [
    "all_problems",
    "clipped_text",
    "colliding_text",
    "draw",
    "legend_overlaps",
    "lonely_tick_labels",
    "saturated_colorbars",
    "unexplained_artists",
]

#: Pixels an artist may poke past the canvas or into a legend (anti-aliasing, rounding).
TOL_PX = 1.0


def draw(fig):
    """Attach an Agg canvas, draw (this runs the constrained layout) and return the renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _name(artist) -> str:
    if isinstance(artist, Text):
        return f"text {artist.get_text()!r}"
    if isinstance(artist, Axes):
        return f"axes {artist.get_title() or artist.get_label() or id(artist)!r}"
    return f"{type(artist).__name__} {artist.get_label()!r}"


def _px(box: Bbox) -> str:
    return "({:.0f}, {:.0f})-({:.0f}, {:.0f}) px".format(*box.extents)


def _inside(inner: Bbox, outer: Bbox, tol: float = TOL_PX) -> bool:
    return (
        inner.x0 >= outer.x0 - tol
        and inner.y0 >= outer.y0 - tol
        and inner.x1 <= outer.x1 + tol
        and inner.y1 <= outer.y1 + tol
    )


def _visible_axes(fig) -> list[Axes]:
    return [a for a in fig.axes if a.get_visible()]


def _legends(fig) -> list:
    legends = list(fig.legends)
    legends += [a.get_legend() for a in _visible_axes(fig) if a.get_legend() is not None]
    return [lg for lg in legends if lg.get_visible()]


def clipped_text(fig, renderer) -> list[str]:
    """(a) Every title, axis label, tick label, legend and free text lies inside the canvas.

    Axes decorations are measured by ``Axes.get_tightbbox`` (titles, labels and the tick labels
    that are drawn); figure-level texts, axes texts and legends by their window extents.
    """
    canvas = fig.bbox
    problems = []
    artists: list = []
    for a in _visible_axes(fig):
        artists.append(a)
        artists += [t for t in a.texts if t.get_visible() and t.get_text()]
    artists += [t for t in fig.texts if t.get_visible() and t.get_text()]
    for attr in ("_suptitle", "_supxlabel", "_supylabel"):
        t = getattr(fig, attr, None)
        if t is not None and t.get_visible() and t.get_text():
            artists.append(t)
    artists += _legends(fig)
    for art in artists:
        if isinstance(art, Axes):  # titles, axis labels, drawn tick labels; no children
            box = art.get_tightbbox(renderer, bbox_extra_artists=[])
        else:
            box = art.get_window_extent(renderer)
        if box is not None and not _inside(box, canvas):
            problems.append(f"{_name(art)} extends past the canvas: {_px(box)} vs {_px(canvas)}")
    return problems


def _data_paths(a: Axes):
    """Display-space ``(path, markers_only)`` of every drawn data artist of ``a``."""
    for line in a.get_lines():
        if not line.get_visible() or len(line.get_xydata()) == 0:
            continue
        path = line.get_transform().transform_path(line.get_path()).cleaned(remove_nans=True)
        yield line, path, line.get_linestyle() in ("None", "none", "", " ")
    for coll in a.collections:
        if not coll.get_visible():
            continue
        if isinstance(coll, PathCollection) and len(coll.get_offsets()):
            from matplotlib.path import Path

            pts = coll.get_offset_transform().transform(np.asarray(coll.get_offsets()))
            yield coll, Path(pts[np.all(np.isfinite(pts), axis=1)]), True
        elif isinstance(coll, LineCollection):
            for p in coll.get_paths():
                yield coll, coll.get_transform().transform_path(p).cleaned(remove_nans=True), False
    for cont in a.containers:
        if isinstance(cont, BarContainer):
            for patch in cont.patches:
                if patch.get_visible():
                    yield patch, patch.get_transform().transform_path(patch.get_path()), False


def _hits(path, box: Bbox, markers_only: bool) -> bool:
    if markers_only or len(path.vertices) == 1:
        v = path.vertices
        return bool(
            np.any(
                (v[:, 0] > box.x0) & (v[:, 0] < box.x1) & (v[:, 1] > box.y0) & (v[:, 1] < box.y1)
            )
        )
    return bool(path.intersects_bbox(box, filled=False))


def legend_overlaps(fig, renderer, *, shrink: float = 2.0) -> list[str]:
    """(b) No legend box covers plotted data: line segments, marker and scatter positions, bars.

    The legend's box is shrunk by ``shrink`` pixels (its border padding) and intersected with the
    clip box of each data artist, since data outside an axes is not drawn.
    """
    problems = []
    for legend in _legends(fig):
        lb = legend.get_window_extent(renderer)
        box = Bbox.from_extents(lb.x0 + shrink, lb.y0 + shrink, lb.x1 - shrink, lb.y1 - shrink)
        for a in _visible_axes(fig):
            area = Bbox.intersection(box, a.bbox)
            if area is None or area.width <= 0 or area.height <= 0:
                continue
            for art, path, markers_only in _data_paths(a):
                if len(path.vertices) and _hits(path, area, markers_only):
                    title = a.get_title() or "untitled"
                    problems.append(f"legend covers {_name(art)} in axes {title!r}")
    return problems


def saturated_colorbars(fig) -> list[str]:
    """(c) The norm of every colour bar's mappable spans the finite data of that mappable."""
    problems = []
    for a in fig.axes:
        cbar = getattr(a, "_colorbar", None)
        if cbar is None:
            continue
        values = np.ma.filled(np.ma.asarray(cbar.mappable.get_array(), dtype=float), np.nan)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        norm = cbar.mappable.norm
        lo, hi = float(values.min()), float(values.max())
        span = float(norm.vmax - norm.vmin)
        if lo < norm.vmin - 1e-9 * span or hi > norm.vmax + 1e-9 * span:
            problems.append(
                f"colour bar {cbar.ax.get_ylabel()!r} spans [{norm.vmin:g}, {norm.vmax:g}] "
                f"but the data span [{lo:g}, {hi:g}]"
            )
    return problems


def unexplained_artists(fig) -> list[str]:
    """(d) An axes with two or more labelled artists has their labels in some legend."""
    shown = {t.get_text() for lg in _legends(fig) for t in lg.get_texts()}
    problems = []
    for a in _visible_axes(fig):
        labels = set(a.get_legend_handles_labels()[1])
        if len(labels) > 1 and not labels <= shown:
            problems.append(f"axes {a.get_title()!r}: labels {sorted(labels - shown)} in no legend")
    return problems


def lonely_tick_labels(fig, renderer) -> list[str]:
    """(e) Every axis that shows tick labels shows at least two of them (a scale needs two)."""
    problems = []
    for a in _visible_axes(fig):
        for axis_name, axis in (("x", a.xaxis), ("y", a.yaxis)):
            if not axis.get_visible():
                continue
            # The ticks the last draw drew (a private helper; public tick lists keep stale ticks).
            drawn = [
                t
                for tick in axis._update_ticks()
                for t in (tick.label1, tick.label2)
                if t.get_visible() and t.get_text()
            ]
            if len(drawn) == 1:
                problems.append(
                    f"{axis_name}-axis of axes {a.get_title()!r} has one tick label "
                    f"({drawn[0].get_text()!r})"
                )
    return problems


def colliding_text(fig, renderer, *, tol: float = TOL_PX) -> list[str]:
    """(f) No two free texts of an axes (annotations, bar labels) overlap each other."""
    problems = []
    for a in _visible_axes(fig):
        texts = [t for t in a.texts if t.get_visible() and t.get_text()]
        boxes = [t.get_window_extent(renderer) for t in texts]
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                inter = Bbox.intersection(boxes[i], boxes[j])
                if inter is not None and inter.width > tol and inter.height > tol:
                    problems.append(f"{_name(texts[i])} overlaps {_name(texts[j])}")
    return problems


def all_problems(fig) -> list[str]:
    """Draw ``fig`` and run every check."""
    renderer = draw(fig)
    return (
        clipped_text(fig, renderer)
        + legend_overlaps(fig, renderer)
        + saturated_colorbars(fig)
        + unexplained_artists(fig)
        + lonely_tick_labels(fig, renderer)
        + colliding_text(fig, renderer)
    )
