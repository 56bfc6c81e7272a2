r"""Subgradient descent oscillates; D-Gating and proximal gradient converge
=====================================================================

Supports docs/theory.md [T-zero-groups] and [T-precond-flow]: from the same dense start :math:`w_0`,
the subgradient method on the non-smooth :math:`L_w` (fixed step :math:`\eta = 0.2/\mathrm{Lip}`)
stalls with the groups outside the support oscillating around zero (its step :math:`\eta\lambda
q\|w_j\|^{q-1}` overshoots near 0), while the gradient flow of the smooth gated objective :math:`L`
and proximal gradient on :math:`L_w` both converge: proximal gradient sets groups to exact zero in
finitely many steps, the gated flow shrinks them geometrically. Top: :math:`L_w - L_w^\star`;
bottom: the largest norm among the groups that vanish at the solution (iteration :math:`k` is placed
at time :math:`k\eta`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import FigureSpec

__all__ = ["SPEC", "Config", "compute", "plot", "summary"]

METHODS = ("flow", "prox", "subgradient")


@dataclass(frozen=True)
class Config:
    """Bundled example problem; start ``init="ridge"`` of
    :func:`dgating.simulations.flow.initial_params` (dense, unbalanced) with ``seed``."""

    depths: tuple[int, ...] = (2, 3)
    lam: float = 0.5
    seed: int = 0
    init_scale: float = 0.5
    t_end: float = 60.0
    n_t: int = 301
    step_fraction: float = 0.2


def compute(config: Config) -> dict[str, np.ndarray]:
    """Keys ``depths, lam, step, t_<method>, subopt_<method>, offsupport_<method>, opt_value``
    (arrays of shape ``(n_depths, n_t_method)``)."""
    from ..objectives import GatedObjective
    from ..simulations.flow import initial_params
    from ..simulations.transition import compare_paths
    from ..solvers import solve_prox
    from ._common import example_problem

    problem = example_problem()
    groups = problem.groups
    lip = problem.lipschitz()
    step = config.step_fraction / lip
    out: dict[str, list] = {k: [] for k in ("opt_value",)}
    for m in METHODS:
        out[f"t_{m}"], out[f"subopt_{m}"], out[f"offsupport_{m}"] = [], [], []
    for depth in config.depths:
        obj = GatedObjective(problem, depth, config.lam)
        p0 = initial_params(obj, init="ridge", seed=config.seed, init_scale=config.init_scale)
        paths = compare_paths(obj, p0, config.t_end, n_t=config.n_t, step=step)
        ref = solve_prox(problem, depth, config.lam, w0=paths["w0"])
        opt = min(ref.objective, *(float(paths[f"{m}_objective"].min()) for m in METHODS))
        off = groups.norms(ref.w) == 0
        out["opt_value"].append(opt)
        for m in METHODS:
            out[f"t_{m}"].append(paths[f"{m}_t"])
            out[f"subopt_{m}"].append(paths[f"{m}_objective"] - opt)
            norms = paths[f"{m}_norms"][:, off]
            out[f"offsupport_{m}"].append(
                norms.max(axis=1) if off.any() else np.zeros(norms.shape[0])
            )
    data = {k: np.asarray(v) for k, v in out.items()}
    data.update(depths=np.asarray(config.depths), lam=np.float64(config.lam), step=np.float64(step))
    return data


def summary(data: dict[str, np.ndarray]) -> list[dict]:
    """Final suboptimality of each method (theory: 0 for the convergent ones)."""
    rows = []
    for i, d in enumerate(data["depths"]):
        for m in METHODS:
            sub = float(data[f"subopt_{m}"][i, -1])
            off = float(data[f"offsupport_{m}"][i, -1])
            rows.append(
                {
                    "quantity": f"{m}: final L_w - L_w*",
                    "setting": f"D={d}",
                    "theory": 0.0,
                    "measured": sub,
                    "ratio": float("nan"),
                    "note": f"largest off-support group norm {off:.2e}",
                    "passed": None,
                    "tol": None,
                }
            )
    return rows


def plot(data: dict[str, np.ndarray], ax=None):
    """Columns: depths; rows: suboptimality and off-support group norm, three methods each."""
    from matplotlib.transforms import blended_transform_factory

    from ._style import OKABE_ITO, axes_or_new, shared_legend, style

    depths = data["depths"]
    nd = depths.size
    colors = {
        "flow": OKABE_ITO["blue"],
        "prox": OKABE_ITO["green"],
        "subgradient": OKABE_ITO["vermillion"],
    }
    labels = {
        "flow": "D-Gating (gradient flow on $L$)",
        "prox": "proximal gradient on $L_w$",
        "subgradient": "subgradient on $L_w$",
    }
    with style():
        fig, axes = axes_or_new(ax, 2 * nd, ncols=nd, width=7.0, height=2.4)
        for i, depth in enumerate(depths):
            top, bot = axes[i], axes[nd + i]
            # Exact zeros of the off-support norm (proximal steps) have no place on a log axis:
            # they are drawn on a floor two decades below every positive value of the panel,
            # and the floor is named. Non-positive suboptimality is round-off: left out.
            off = {m: data[f"offsupport_{m}"][i] for m in METHODS}
            positive = np.concatenate([v[v > 0] for v in off.values()])
            floor = 10.0 ** (np.floor(np.log10(positive.min())) - 2) if positive.size else 1e-16
            for m in METHODS:
                t, sub = data[f"t_{m}"][i], data[f"subopt_{m}"][i]
                top.plot(
                    t, np.where(sub > 0, sub, np.nan), color=colors[m], label=labels[m], lw=1.2
                )
                bot.plot(t, np.where(off[m] > 0, off[m], floor), color=colors[m], lw=1.2)
            if any(np.any(v == 0) for v in off.values()):
                bot.text(
                    0.98,
                    floor,
                    rf"exact zeros, drawn at $10^{{{np.log10(floor):.0f}}}$",
                    transform=blended_transform_factory(bot.transAxes, bot.transData),
                    ha="right",
                    va="bottom",
                    fontsize=7,
                    color="0.3",
                )
                bot.set_ylim(bottom=floor / 10.0)
            for a in (top, bot):
                a.set_yscale("log")
                a.set_xlabel(r"$t$ (iteration $k$ at $t = k\eta$)")
            top.set_title(rf"$D = {depth}$, $\lambda = {float(data['lam']):g}$")
            top.set_ylabel(r"$L_w(w) - L_w^\star$")
            bot.set_ylabel(r"$\max_{j:\,w^\star_j = 0}\|w_j\|$")
        shared_legend(fig, axes[:1], own=ax is None, ncols=3, loc="upper right")
    return fig


SPEC = FigureSpec.from_module(
    __doc__,
    name="subgradient",
    label="F5",
    compute=compute,
    plot=plot,
    quick_config=Config(t_end=20.0, n_t=101),
    config=Config(),
    summary=summary,
)
