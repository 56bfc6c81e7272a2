r"""Penalty geometry: the L_{2,2/D} balls and the smooth gated penalty at non-zero imbalance
=========================================================================================

Supports docs/theory.md [T-variational] and [T-transition]: on the balanced set the gated penalty is
:math:`\lambda\sum_j\|w_j\|^{2/D}` (top row: level sets for two scalar groups, with the cusps on the
axes that make solutions sparse, convex for :math:`D = 2` only), while at a fixed non-zero imbalance
the penalty seen by :math:`w_j` is smooth and ridge-like near 0 (bottom row: per-group profiles,
:math:`\frac{1}{2}\sqrt{c^2 + 4w^2}` for :math:`D = 2`), so gradient flow starts in a non-sparse
regime and enters sparse optimisation as the imbalance decays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import FigureSpec

__all__ = ["SPEC", "Config", "compute", "effective_gated_penalty", "plot"]


@dataclass(frozen=True)
class Config:
    """Grid and imbalances of the penalty-geometry figure.

    ``imbalances`` are the values :math:`c` of the largest imbalance; gate :math:`d` gets
    :math:`c_d = c\\, d / (D-1)` (distinct imbalances, as a generic initialisation has).
    """

    depths: tuple[int, ...] = (2, 3, 4)
    imbalances: tuple[float, ...] = (0.0, 0.1, 0.5, 2.0)
    extent: float = 1.5
    n_grid: int = 241
    n_profile: int = 401


def effective_gated_penalty(
    norm: np.ndarray, imbalances: np.ndarray | list[float], depth: int
) -> np.ndarray:
    r"""Gated penalty per group at fixed imbalances, as a function of :math:`r = \|w_j\|`.

    With :math:`\Delta_{j,d} = c_d` held fixed, a factorisation of :math:`w_j` has
    :math:`\|\omega_j\|^2 = a`, :math:`\gamma_{j,d}^2 = a - c_d` and
    :math:`a \prod_d (a - c_d) = r^2`, whose left side increases strictly on
    :math:`a > \max(0, \max_d c_d)`: the factorisation is unique up to signs, and the (minimal)
    penalty is

    .. math::
        \phi_c(r) = \tfrac{1}{D}\Big(\|\omega_j\|^2 + \sum_d \gamma_{j,d}^2\Big)
        = \tfrac{1}{D}\Big(D a - \sum_d c_d\Big).

    For :math:`D = 2`, :math:`\phi_c(r) = \frac12\sqrt{c^2 + 4r^2}` (docs/theory.md [T-transition]);
    for :math:`c = 0`, :math:`\phi_0(r) = r^{2/D}`. Multiply by :math:`\lambda`.

    Parameters
    ----------
    norm : ndarray
        :math:`r \ge 0`, any shape.
    imbalances : array of shape (depth - 1,)
        :math:`c_d`.
    depth : int
        :math:`D`.

    Returns
    -------
    ndarray
        :math:`\phi_c(r)`, shape of ``norm``.

    Examples
    --------
    >>> import numpy as np
    >>> r = np.array([0.0, 0.3, 2.0])
    >>> bool(np.allclose(effective_gated_penalty(r, [0.5], 2), 0.5 * np.sqrt(0.25 + 4 * r**2)))
    True
    >>> bool(np.allclose(effective_gated_penalty(r, [0.0, 0.0], 3), r ** (2 / 3)))
    True
    """
    c = np.asarray(imbalances, dtype=float).reshape(-1)
    r2 = np.asarray(norm, dtype=float) ** 2
    lo = np.full(r2.shape, max(0.0, float(c.max(initial=0.0))))
    # f(a) = a prod(a - c_d) >= (a - lo)^D on [lo, inf), so f(lo + r^{2/D}) >= r^2: a bracket.
    hi = lo + r2 ** (1.0 / depth)
    for _ in range(200):  # bisection to machine precision (monotone f, vectorised)
        mid = 0.5 * (lo + hi)
        f = mid * np.prod(mid[..., None] - c, axis=-1)
        below = f < r2
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
        if np.all(hi - lo <= 4 * np.finfo(float).eps * np.maximum(hi, 1e-300)):
            break
    a = 0.5 * (lo + hi)
    return (depth * a - c.sum()) / depth


def _gate_imbalances(c: float, depth: int) -> np.ndarray:
    return c * np.arange(1, depth) / (depth - 1)


def compute(config: Config) -> dict[str, np.ndarray]:
    """Level-set and profile data; keys ``depths, imbalances, grid, penalty, gated, gated_level,
    profile_r, profile, closed_form_d2``."""
    depths = np.asarray(config.depths, dtype=int)
    cs = np.asarray(config.imbalances, dtype=float)
    grid = np.linspace(-config.extent, config.extent, config.n_grid)
    r = np.linspace(0.0, config.extent, config.n_profile)
    penalty = np.empty((depths.size, grid.size, grid.size))
    gated = np.empty((depths.size, cs.size, grid.size, grid.size))
    level = np.empty((depths.size, cs.size))
    profile = np.empty((depths.size, cs.size, r.size))
    a1 = np.abs(grid)
    for i, depth in enumerate(depths):
        q = 2.0 / depth
        penalty[i] = a1[:, None] ** q + a1[None, :] ** q
        for k, c in enumerate(cs):
            cd = _gate_imbalances(c, int(depth))
            phi = effective_gated_penalty(a1, cd, int(depth))
            gated[i, k] = phi[:, None] + phi[None, :]
            # The level through (1, 0): compares shapes at equal "size".
            level[i, k] = float(effective_gated_penalty(np.array([1.0, 0.0]), cd, int(depth)).sum())
            profile[i, k] = effective_gated_penalty(r, cd, int(depth))
    closed = 0.5 * np.sqrt(cs[:, None] ** 2 + 4.0 * r[None, :] ** 2)
    return {
        "depths": depths,
        "imbalances": cs,
        "grid": grid,
        "penalty": penalty,
        "gated": gated,
        "gated_level": level,
        "profile_r": r,
        "profile": profile,
        "closed_form_d2": closed,
    }


def plot(data: dict[str, np.ndarray], ax=None):
    """Top row: level sets per depth; bottom row: per-group penalty profiles at each imbalance.

    One legend (below the panels) serves both rows: line colour and style encode the imbalance
    :math:`c` in the level sets and in the profiles alike.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from ._style import OKABE_ITO, axes_or_new, shared_legend, style

    depths, cs = data["depths"], data["imbalances"]
    nd = depths.size
    with style():
        fig, axes = axes_or_new(ax, 2 * nd, ncols=nd, width=8.0, height=2.6)
        grid = data["grid"]
        shades = ["#000000", OKABE_ITO["sky"], OKABE_ITO["orange"], OKABE_ITO["vermillion"]]
        shades = [shades[k % len(shades)] for k in range(cs.size)]
        for i, depth in enumerate(depths):
            top, bottom = axes[i], axes[nd + i]
            top.contourf(grid, grid, data["penalty"][i], levels=12, cmap="Greys", alpha=0.35)
            for k, c in enumerate(cs):
                top.contour(
                    grid,
                    grid,
                    data["gated"][i, k],
                    levels=[data["gated_level"][i, k]],
                    colors=[shades[k]],
                    linewidths=1.6 if k == 0 else 1.1,
                    linestyles="-" if k == 0 else "--",
                )
            top.set_aspect("equal")
            top.set_title(rf"$D = {depth}$: gated level set through $(1, 0)$")
            top.set_xlabel(r"$w_1$")
            top.set_ylabel(r"$w_2$")
            r = data["profile_r"]
            for k, c in enumerate(cs):
                bottom.plot(
                    r,
                    data["profile"][i, k] - data["profile"][i, k, 0],
                    color=shades[k],
                    ls="-" if k == 0 else "--",
                    lw=1.6 if k == 0 else 1.1,
                    label=r"$c = 0$ (balanced: $\|w_j\|^{2/D}$)" if c == 0 else rf"$c = {c:g}$",
                )
            if depth == 2:
                for k in range(1, cs.size):
                    cf = data["closed_form_d2"][k]
                    step = max(1, r.size // 16)
                    bottom.plot(
                        r[::step],
                        (cf - cf[0])[::step],
                        "o",
                        ms=3,
                        color=shades[k],
                        mfc="none",
                        ls="none",
                    )
            bottom.set_xlabel(r"$r = \|w_j\|$")
            bottom.set_ylabel(r"$\phi_c(r) - \phi_c(0)$")
            bottom.set_title(rf"$D = {depth}$: gated penalty of one group")
        # The grey shading of the top row is the balanced penalty; a proxy artist names it.
        closed = Line2D(
            [],
            [],
            marker="o",
            ms=3,
            mfc="none",
            ls="none",
            color="0.35",
            label=r"$\frac{1}{2}\sqrt{c^2 + 4r^2}$, $D = 2$ (docs/theory.md [T-transition])",
        )
        shading = Patch(color="0.6", alpha=0.5, label=r"shading: $|w_1|^{2/D} + |w_2|^{2/D}$")
        shared_legend(
            fig,
            [axes[nd]],
            own=ax is None,
            extra=[closed, shading] if 2 in depths else [shading],
            ncols=3,
            title=r"imbalance $\Delta_{j,d} = c\,d/(D-1)$ of every gate (colour, both rows)",
            loc="upper left",
            title_fontsize=8,
        )
    return fig


SPEC = FigureSpec.from_module(
    __doc__,
    name="penalty_geometry",
    label="F1",
    compute=compute,
    plot=plot,
    quick_config=Config(n_grid=61, n_profile=81),
    config=Config(),
)
