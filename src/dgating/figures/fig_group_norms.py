r"""Group-norm trajectories: from a non-sparse regime into sparse optimisation
=========================================================================

Supports docs/theory.md [T-transition] and [T-zero-groups]: started from the dense ridge solution
with unbalanced factors, the gradient flow first sees a smooth, ridge-like penalty (the imbalance is
large), so every group stays non-zero; as :math:`\sum|\Delta_{j,d}|` decays like :math:`e^{-4\lambda
t/D}` the penalty becomes :math:`\lambda\|w_j\|^{2/D}` and the groups outside the support collapse
geometrically (top: :math:`\|w_j(t)\|`, vermillion for groups that vanish), never reaching exact
zero. Bottom: the number of groups above :math:`10^{-3}\max_j\|w_j\|` and the normalised imbalance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import FigureSpec, summary_row

__all__ = ["SPEC", "Config", "compute", "plot", "summary"]


@dataclass(frozen=True)
class Config:
    """Flows on the bundled example from ``init="ridge"`` (the ridge solution, lifted and
    unbalanced by log-normal gate rescalings of spread ``init_scale``), until the imbalance has
    fallen by ``decades`` powers of ten; output times are log-spaced from ``t_min``."""

    depths: tuple[int, ...] = (2, 3, 4)
    lam: float = 0.5
    seed: int = 0
    init_scale: float = 1.0
    decades: float = 8.0
    t_min: float = 1e-2
    n_t: int = 241
    rel_threshold: float = 1e-3


def compute(config: Config) -> dict[str, np.ndarray]:
    """Keys ``depths, lam, t, norms, n_active, imbalance, vanishing, n_support_solver``."""
    from ..objectives import GatedObjective
    from ..simulations.flow import initial_params, integrate_flow
    from ..solvers import solve_gated
    from ._common import example_problem, theory_value

    problem = example_problem()
    nd, J = len(config.depths), problem.n_groups
    t = np.zeros((nd, config.n_t))
    norms = np.zeros((nd, config.n_t, J))
    n_active = np.zeros((nd, config.n_t), int)
    imbalance = np.zeros((nd, config.n_t))
    vanishing = np.zeros((nd, J), bool)
    n_support = np.zeros(nd, int)
    for i, depth in enumerate(config.depths):
        rate = theory_value("imbalance_rate", depth, lam=config.lam)
        t_end = config.decades * np.log(10.0) / rate
        t_eval = np.concatenate([[0.0], np.geomspace(config.t_min, t_end, config.n_t - 1)])
        obj = GatedObjective(problem, depth, config.lam)
        p0 = initial_params(obj, init="ridge", seed=config.seed, init_scale=config.init_scale)
        res = integrate_flow(obj, p0, (0.0, t_end), t_eval=t_eval)
        t[i], norms[i] = res.t, res.group_norms
        top = res.group_norms.max(axis=1, keepdims=True)
        n_active[i] = (res.group_norms >= config.rel_threshold * top).sum(axis=1)
        imb = np.abs(res.imbalance).reshape(res.t.size, -1).sum(axis=1)
        imbalance[i] = imb / imb[0]
        half = res.group_norms[np.searchsorted(res.t, 0.5 * t_end)]
        vanishing[i] = res.group_norms[-1] < 0.5 * half
        # The limit's support from the solver started at the flow's end point (balanced lift).
        w_end = res.omega[-1] * problem.groups.expand(res.gates[-1].prod(axis=1))
        n_support[i] = len(
            solve_gated(problem, depth, config.lam, w0=w_end).support(problem.groups)
        )
    return {
        "depths": np.asarray(config.depths),
        "lam": np.float64(config.lam),
        "t": t,
        "norms": norms,
        "n_active": n_active,
        "imbalance": imbalance,
        "vanishing": vanishing,
        "n_support_solver": n_support,
    }


def summary(data: dict[str, np.ndarray]) -> list[dict]:
    """Groups surviving at the end of the flow against the support found by ``solve_gated``."""
    lam = float(data["lam"])
    return [
        summary_row(
            "support size: flow end vs solver",
            f"D={d}, lam={lam:g}",
            float(data["n_support_solver"][i]),
            float((~data["vanishing"][i]).sum()),
            "theory column: solve_gated support from the flow's end point",
        )
        for i, d in enumerate(data["depths"])
    ]


def plot(data: dict[str, np.ndarray], ax=None):
    """Top row: group norms per depth (log-log); bottom row: active groups and imbalance.

    Every panel of a row has the same ranges (the time axis of all panels, the norm axis of the
    top row, both axes of the bottom row), so that the depths can be compared by eye.
    """
    from ._style import OKABE_ITO, axes_or_new, shared_legend, style

    depths = data["depths"]
    nd = depths.size
    lam = float(data["lam"])
    n_groups = data["norms"].shape[-1]
    norms, imbalance = data["norms"][:, 1:], data["imbalance"][:, 1:]
    t_lim = (float(data["t"][:, 1].min()), float(data["t"][:, -1].max()))
    norm_lim = (max(1e-12, 0.5 * float(norms[:, -1].min())), 2.0 * float(norms.max()))
    imb_lim = (0.5 * float(imbalance[imbalance > 0].min()), 2.0)
    cols = {False: OKABE_ITO["blue"], True: OKABE_ITO["vermillion"]}
    imb_label = r"$\sum|\Delta(t)| \,/\, \sum|\Delta(0)|$"
    with style():
        fig, axes = axes_or_new(ax, 2 * nd, ncols=nd, width=7.5, height=2.3)
        twins = []
        for i, depth in enumerate(depths):
            top, bot = axes[i], axes[nd + i]
            t = data["t"][i][1:]
            for j in range(n_groups):
                top.plot(t, norms[i, :, j], color=cols[bool(data["vanishing"][i, j])], lw=0.9)
            top.set_yscale("log")
            top.set_ylim(*norm_lim)
            top.set_title(rf"$D = {depth}$, $\lambda = {lam:g}$")
            bot.step(
                t,
                data["n_active"][i, 1:],
                where="post",
                color="k",
                label=r"active groups: $\|w_j\| \geq 10^{-3}\max_k\|w_k\|$ (left axis)",
            )
            bot.set_ylim(0, n_groups + 0.5)
            twin = bot.twinx()
            twin.plot(
                t,
                imbalance[i],
                color=OKABE_ITO["orange"],
                ls="--",
                label=rf"imbalance {imb_label} (right axis)",
            )
            twin.set_yscale("log")
            twin.set_ylim(*imb_lim)
            twin.grid(False)
            twin.spines["right"].set_visible(True)
            twin.set_ylabel(imb_label, color=OKABE_ITO["orange"])
            twins.append(twin)
            for a in (top, bot):
                a.set_xscale("log")
                a.set_xlim(*t_lim)
                a.set_xlabel(r"$t$")
        axes[0].set_ylabel(r"$\|w_j(t)\|$")
        axes[nd].set_ylabel("active groups")
        axes[0].plot([], [], color=cols[False], lw=0.9, label="group in the support")
        axes[0].plot([], [], color=cols[True], lw=0.9, label="group that vanishes")
        shared_legend(fig, [axes[0], axes[nd], twins[0]], own=ax is None, ncols=2, loc="lower left")
    return fig


SPEC = FigureSpec.from_module(
    __doc__,
    name="group_norms",
    label="F4",
    compute=compute,
    plot=plot,
    quick_config=Config(depths=(2, 4), decades=5.0, n_t=81),
    config=Config(),
    summary=summary,
)
