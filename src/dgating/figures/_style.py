r"""One house style for every figure: a ``matplotlib.rc_context`` and the Okabe-Ito palette.

Nothing here touches the global ``rcParams`` or pyplot: figures are plain
:class:`matplotlib.figure.Figure` objects (rendered with Agg for PNG and the PDF backend for vector
output), created inside :func:`style`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "OKABE_ITO",
    "PALETTE",
    "axes_or_new",
    "RC",
    "depth_color",
    "new_figure",
    "save_figure",
    "shared_legend",
    "style",
]

#: Okabe & Ito (2008) colour-blind safe palette.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}

#: Colour cycle (yellow last: it is faint on white).
PALETTE = tuple(
    OKABE_ITO[k] for k in ("blue", "vermillion", "green", "orange", "purple", "sky", "black")
)

_DEPTH_COLORS = {2: OKABE_ITO["blue"], 3: OKABE_ITO["vermillion"], 4: OKABE_ITO["green"]}

RC = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.4,
    "lines.markersize": 4,
    "mathtext.fontset": "cm",
    "pdf.fonttype": 42,
    "svg.fonttype": "none",
    "image.cmap": "viridis",
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Apply the house style inside a ``with`` block (the only way figures get their rc)."""
    import matplotlib as mpl
    from cycler import cycler

    with mpl.rc_context({**RC, "axes.prop_cycle": cycler(color=list(PALETTE))}):
        yield


def depth_color(depth: int) -> str:
    """Colour of depth ``D`` (consistent across figures).

    Examples
    --------
    >>> depth_color(2)
    '#0072B2'
    """
    return _DEPTH_COLORS.get(int(depth), PALETTE[(int(depth) - 2) % len(PALETTE)])


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float = 2.6, **kw):
    """A pyplot-free ``(Figure, axes)`` pair; ``axes`` is always a 2-d array."""
    from matplotlib.figure import Figure

    with style():
        fig = Figure(figsize=(width, height * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def axes_or_new(ax, n: int, *, ncols: int | None = None, width: float = 6.4, height: float = 2.6):
    """``(fig, flat list of n axes)`` from a user-supplied ``ax`` (one Axes or a sequence of ``n``)
    or a new figure."""
    import numpy as np

    if ax is None:
        ncols = n if ncols is None else ncols
        nrows = -(-n // ncols)
        fig, axes = new_figure(nrows, ncols, width=width, height=height)
        flat = list(axes.ravel())
        for extra in flat[n:]:
            extra.set_visible(False)
        return fig, flat[:n]
    flat = list(np.ravel(np.asarray(ax, dtype=object)))
    if len(flat) != n:
        from .._validation import InvalidParameterError

        raise InvalidParameterError(f"`ax` must hold {n} Axes for this figure; got {len(flat)}.")
    return flat[0].figure, flat


def shared_legend(fig, axes, *, own: bool, extra=(), ncols: int = 4, loc: str = "best", **kw):
    """One legend for the labelled artists of all ``axes`` (first occurrence of each label) and
    the ``extra`` proxy artists (labelled artists that are not drawn).

    On a figure built here (``own=True``) it goes below the panels, outside every axes, so it
    can cover no data; on user-supplied axes it goes inside the first of them at ``loc``.
    """
    handles: dict = {}
    for a in axes:
        for h, lab in zip(*a.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    for h in extra:
        handles.setdefault(h.get_label(), h)
    if own:
        return fig.legend(
            list(handles.values()), list(handles), loc="outside lower center", ncols=ncols, **kw
        )
    return axes[0].legend(list(handles.values()), list(handles), loc=loc, **kw)


def save_figure(fig, stem: Path) -> tuple[Path, Path]:
    """Write ``stem.pdf`` (vector) and ``stem.png`` atomically; return both paths."""
    from .._io import save_figure_atomic

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    pdf, png = stem.with_suffix(".pdf"), stem.with_suffix(".png")
    import logging

    # fontTools logs harmless timestamp notes while subsetting fonts into the PDF.
    font_logger = logging.getLogger("fontTools")
    level = font_logger.level
    font_logger.setLevel(logging.ERROR)
    try:
        with style():
            save_figure_atomic(fig, pdf, metadata={"CreationDate": None})
            save_figure_atomic(fig, png)
    finally:
        font_logger.setLevel(level)
    return pdf, png
