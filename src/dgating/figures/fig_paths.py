r"""Regularisation paths over lam: the gated and the proximal route overlaid
========================================================================

Supports docs/theory.md [T-minima] (local minima of :math:`L` and :math:`L_w` correspond): along a
grid of :math:`\lambda`, minimising the smooth gated objective :math:`L(\omega,\Gamma)` (L-BFGS,
warm-started) and the non-smooth :math:`L_w` (proximal gradient, warm-started) trace the same
group-norm paths :math:`\|w_j\|` for :math:`D = 2, 3, 4`, with groups leaving the support earlier
and more abruptly as :math:`D` grows (:math:`q = 2/D`). For the non-convex :math:`D \ge 3` the two
routes can occasionally settle in different local minima (visible in the last panel, the relative
objective difference of the two routes).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .registry import FigureSpec

__all__ = ["SPEC", "Config", "compute", "plot"]


@dataclass(frozen=True)
class Config:
    """Path grid: ``n_lams`` values from ``lam_min_ratio`` to ``lam_max_ratio`` times
    :math:`\\lambda_{\\max} = \\max_j \\|\\nabla_j L_0(0)\\|` (the group-lasso threshold),
    traversed upwards (dense to sparse) with warm starts."""

    depths: tuple[int, ...] = (2, 3, 4)
    n_lams: int = 20
    lam_min_ratio: float = 1e-2
    lam_max_ratio: float = 1.05
    tol: float = 1e-7


def compute(config: Config) -> dict[str, np.ndarray]:
    """Paths; keys ``depths, lams, lam_max, norms_prox, norms_gated, obj_prox, obj_gated,
    converged_prox, converged_gated`` (norms have shape ``(n_depths, n_lams, n_groups)``)."""
    from ..solvers import solve_gated, solve_prox
    from ._common import example_problem

    problem = example_problem()
    groups = problem.groups
    lam_max = float(groups.norms(problem.grad(np.zeros(problem.n_features))).max())
    lams = lam_max * np.geomspace(config.lam_min_ratio, config.lam_max_ratio, config.n_lams)
    shape = (len(config.depths), lams.size)
    norms = {m: np.zeros(shape + (groups.n_groups,)) for m in ("prox", "gated")}
    obj = {m: np.zeros(shape) for m in ("prox", "gated")}
    conv = {m: np.zeros(shape, dtype=bool) for m in ("prox", "gated")}
    for i, depth in enumerate(config.depths):
        w_prox = w_gated = None
        for k, lam in enumerate(lams):
            rp = solve_prox(problem, depth, lam, w0=w_prox, tol=config.tol)
            rg = solve_gated(problem, depth, lam, w0=w_gated, tol=config.tol)
            w_prox, w_gated = rp.w, rg.w
            for m, res in (("prox", rp), ("gated", rg)):
                norms[m][i, k] = groups.norms(res.w)
                obj[m][i, k] = res.objective
                conv[m][i, k] = res.converged
    return {
        "depths": np.asarray(config.depths),
        "lams": lams,
        "lam_max": np.float64(lam_max),
        "norms_prox": norms["prox"],
        "norms_gated": norms["gated"],
        "obj_prox": obj["prox"],
        "obj_gated": obj["gated"],
        "converged_prox": conv["prox"],
        "converged_gated": conv["gated"],
    }


def plot(data: dict[str, np.ndarray], ax=None):
    """One panel of paths per depth (prox: lines, gated: circles) and the objective difference."""
    from ._style import PALETTE, axes_or_new, depth_color, shared_legend, style

    depths, lams = data["depths"], data["lams"]
    nd = depths.size
    with style():
        fig, axes = axes_or_new(ax, nd + 1, ncols=nd + 1, width=8.0, height=2.5)
        for i, depth in enumerate(depths):
            a = axes[i]
            n_groups = data["norms_prox"].shape[-1]
            for j in range(n_groups):
                col = PALETTE[j % len(PALETTE)]
                a.plot(lams, data["norms_prox"][i, :, j], color=col, lw=1.1)
                a.plot(
                    lams, data["norms_gated"][i, :, j], "o", color=col, ms=2.8, mfc="none", mew=0.7
                )
            a.set_xscale("log")
            a.set_xlabel(r"$\lambda$")
            a.set_ylabel(r"$\|w_j\|_2$")
            q = Fraction(2, int(depth))
            a.set_title(rf"$D = {depth}$ ($q = {q}$)")
        axes[0].plot([], [], "k-", label="prox on $L_w$")
        axes[0].plot([], [], "ko", mfc="none", label="gated $L$ (L-BFGS)")
        shared_legend(
            fig,
            axes[:1],
            own=ax is None,
            ncols=2,
            loc="upper right",
            title="paths: one colour per group; objective difference: one colour per depth",
            title_fontsize=7.5,
        )
        a = axes[nd]
        # Relative differences below machine epsilon are round-off (often exactly 0): they are
        # drawn on a dotted line at epsilon, which is named in the legend.
        floor = np.finfo(float).eps
        top = floor
        for i, depth in enumerate(depths):
            po, go = data["obj_prox"][i], data["obj_gated"][i]
            rel = np.abs(go - po) / np.maximum(np.abs(po), 1e-300)
            top = max(top, float(np.max(rel)))
            a.plot(
                lams,
                np.maximum(rel, floor),
                "-o",
                ms=2.5,
                color=depth_color(depth),
                label=rf"$D = {depth}$",
            )
        a.axhline(floor, color="0.4", ls=":", lw=0.9, label=r"machine $\epsilon$ (and below)")
        a.set_xscale("log")
        a.set_yscale("log")
        # Room above the data for the legend, and at least four decades for readable ticks.
        a.set_ylim(floor / 3.0, max(1e4 * floor, top * 1e3))
        a.set_xlabel(r"$\lambda$")
        a.set_ylabel(r"$|L_w(w_{\rm gated}) - L_w(w_{\rm prox})| / L_w$")
        a.set_title("objective difference")
        a.legend(loc="upper left", ncols=2, fontsize=6.5)
    return fig


SPEC = FigureSpec.from_module(
    __doc__,
    name="paths",
    label="F6",
    compute=compute,
    plot=plot,
    quick_config=Config(n_lams=6, lam_min_ratio=3e-2, tol=1e-6),
    config=Config(),
)
