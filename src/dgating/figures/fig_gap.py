r"""Objective gap L - L_w: the bound and the per-class asymptotic rates
=================================================================

Supports docs/theory.md [T-gap]: along the flow the gap :math:`L - L_w = \lambda\sum_j(AM_j - GM_j)`
stays below :math:`\lambda\frac{D-1}{D}\sum_{j,d}|\Delta_{j,d}(0)|e^{-4\lambda t/D}` (dashed), but
the groups decay at different asymptotic rates: a group that stays non-zero has
:math:`AM_j - GM_j = O(\Delta^2)`, rate :math:`8\lambda/D`; a vanishing group decays with the
bound's rate :math:`4\lambda/D` for :math:`D \ge 3` (all its factors shrink like
:math:`e^{-2\lambda t/D}`) and at :math:`2(\lambda + \|\nabla_j L_0(w^\star)\|)` for :math:`D = 2`
(its factors approach the balanced slow eigendirection, rate :math:`\lambda - \|\nabla_j L_0\|`).
Thin lines are per-group gaps (blue: support, vermillion: vanishing groups); the wide grey bands
under them have the theoretical slopes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import FigureSpec, summary_row

__all__ = ["SPEC", "Config", "compute", "group_gap_rates", "plot", "summary"]


@dataclass(frozen=True)
class Config:
    """Flows on the bundled example problem (seeded Gaussian start), until the bound has fallen
    by ``decades`` powers of ten; rates are fitted where :math:`e^{-4\\lambda t/D}` lies in
    ``[10^-fit_end, 10^-fit_start]``."""

    depths: tuple[int, ...] = (2, 3, 4)
    lam: float = 0.5
    seed: int = 0
    init_scale: float = 0.5
    decades: float = 10.0
    fit_start: float = 4.0
    fit_end: float = 8.0
    n_t: int = 301


def group_gap_rates(
    depth: int, lam: float, nonzero: np.ndarray, grad_norms: np.ndarray
) -> np.ndarray:
    r"""Asymptotic decay rate of :math:`AM_j - GM_j` for every group, from the symbolic
    :func:`dgating.theory.gap.gap_rates` (class ``"surviving"`` or ``"vanishing"``, with
    :math:`g = \|\nabla_j L_0(w^\star)\|` where the rate depends on it).

    .. math::
        r_j = \frac{8\lambda}{D}\ (w_j^\star \ne 0), \qquad
        r_j = \frac{4\lambda}{D}\ (w_j^\star = 0,\ D \ge 3), \qquad
        r_j = 2(\lambda + \|\nabla_j L_0(w^\star)\|)\ (w_j^\star = 0,\ D = 2).

    Examples
    --------
    >>> import numpy as np
    >>> group_gap_rates(4, 1.0, np.array([True, False]), np.array([0.0, 0.3])).tolist()
    [2.0, 1.0]
    >>> [round(float(x), 12) for x in group_gap_rates(2, 1.0, np.array([False]), np.array([0.3]))]
    [2.6]
    """
    import sympy as sp

    from ..theory.gap import gap_rates

    rates = gap_rates(depth)

    def value(expr: sp.Expr, gj: float) -> float:
        subs = {s: {"lam": lam, "g": gj}[s.name] for s in expr.free_symbols}
        return float(expr.subs(subs))

    return np.array(
        [
            value(rates["surviving" if nz else "vanishing"], float(gj))
            for nz, gj in zip(np.asarray(nonzero, bool), np.asarray(grad_norms, float))
        ]
    )


def compute(config: Config) -> dict[str, np.ndarray]:
    """Keys ``depths, lam, t, gap, bound, gap_groups, nonzero, theory_rates, measured_rates``
    (per depth; per-group arrays have shape ``(n_depths, ..., n_groups)``)."""
    from ..simulations.rates import gap_bound, measure_rate
    from ._common import example_problem, flow

    problem = example_problem()
    nd, J = len(config.depths), problem.n_groups
    t = np.zeros((nd, config.n_t))
    gap, bound = np.zeros((nd, config.n_t)), np.zeros((nd, config.n_t))
    gap_groups = np.zeros((nd, config.n_t, J))
    nonzero = np.zeros((nd, J), bool)
    theory_rates, measured = np.zeros((nd, J)), np.zeros((nd, J))
    lam = config.lam
    for i, depth in enumerate(config.depths):
        rate, res = flow(
            problem,
            depth,
            lam,
            decades=config.decades,
            n_t=config.n_t,
            seed=config.seed,
            init_scale=config.init_scale,
        )
        t[i], gap[i], gap_groups[i] = res.t, res.gap, res.gap_groups
        bound[i] = gap_bound(res)
        # A group of the limit's support has a converged norm; a vanishing one keeps shrinking
        # geometrically (for q < 1 one prox step is no test: it can revive a tiny group).
        half = res.group_norms[res.t.size // 2]
        nonzero[i] = res.group_norms[-1] >= 0.5 * half
        w_end = res.omega[-1] * problem.groups.expand(res.gates[-1].prod(axis=1))
        grad_norms = problem.groups.norms(problem.grad(w_end))
        theory_rates[i] = group_gap_rates(depth, lam, nonzero[i], grad_norms)
        # Fit while the imbalance decays from 10^-fit_start to 10^-fit_end of its start.
        window = (config.fit_start * np.log(10.0) / rate, config.fit_end * np.log(10.0) / rate)
        for j in range(J):
            measured[i, j] = measure_rate(res.t, res.gap_groups[:, j], window=window).rate
    return {
        "depths": np.asarray(config.depths),
        "lam": np.float64(lam),
        "t": t,
        "gap": gap,
        "bound": bound,
        "gap_groups": gap_groups,
        "nonzero": nonzero,
        "theory_rates": theory_rates,
        "measured_rates": measured,
    }


def summary(data: dict[str, np.ndarray]) -> list[dict]:
    """Per depth: max of gap/bound (theory: at most 1), and the median rate of each class."""
    rows = []
    lam = float(data["lam"])
    for i, depth in enumerate(data["depths"]):
        pos = data["bound"][i] > 0
        ratio = float(np.max(data["gap"][i][pos] / data["bound"][i][pos]))
        rows.append(
            summary_row(
                "max_t gap / bound",
                f"D={depth}, lam={lam:g}",
                1.0,
                ratio,
                "a bound: must be <= 1",
                upper=True,
            )
        )
        for cls, mask in (("support", data["nonzero"][i]), ("vanishing", ~data["nonzero"][i])):
            if not mask.any():
                continue
            th = float(np.median(data["theory_rates"][i][mask]))
            me = float(np.median(data["measured_rates"][i][mask]))
            rows.append(
                summary_row(
                    f"gap rate, {cls} groups",
                    f"D={depth}, lam={lam:g}, {int(mask.sum())} groups",
                    th,
                    me,
                    "median over groups of the fitted asymptotic slope",
                    # Asymptotic rates fitted on a finite window: sub-leading terms bias the slope.
                    tol=0.05,
                )
            )
    return rows


def plot(data: dict[str, np.ndarray], ax=None):
    """One panel per depth: total gap, bound, per-group gaps and theoretical slopes."""
    from ._style import OKABE_ITO, axes_or_new, shared_legend, style

    depths = data["depths"]
    nd = depths.size
    lam = float(data["lam"])
    cols = {True: OKABE_ITO["blue"], False: OKABE_ITO["vermillion"]}
    guide_style = dict(color="0.55", lw=4.5, alpha=0.45, solid_capstyle="butt", zorder=2)
    with style():
        fig, axes = axes_or_new(ax, nd, width=7.5, height=2.8)
        for i, depth in enumerate(depths):
            a, t = axes[i], data["t"][i]
            floor = 1e-30
            for j in range(data["gap_groups"].shape[-1]):
                nz = bool(data["nonzero"][i, j])
                g = data["gap_groups"][i, :, j]
                a.plot(t, np.maximum(g, floor), color=cols[nz], lw=0.8, zorder=3)
                # Theoretical slope through the end of the fit window of this group: a wide pale
                # band under the curve, so that the measured curve stays visible on top of it.
                end = int(0.8 * t.size)
                if g[end] > floor:
                    seg = slice(int(0.55 * t.size), int(0.95 * t.size))
                    guide = g[end] * np.exp(-data["theory_rates"][i, j] * (t[seg] - t[end]))
                    a.plot(t[seg], guide, **guide_style)
            a.plot(t, np.maximum(data["gap"][i], floor), color="k", lw=1.8, label=r"$L - L_w$")
            a.plot(
                t,
                data["bound"][i],
                "--",
                color=OKABE_ITO["orange"],
                lw=1.6,
                label=r"bound $\lambda\,(D-1)/D\,\sum|\Delta(0)|\,e^{-4\lambda t/D}$",
            )
            a.set_yscale("log")
            a.set_ylim(bottom=max(floor, float(np.min(data["bound"][i])) * 1e-12))
            a.set_xlabel(r"$t$")
            a.set_title(rf"$D = {depth}$, $\lambda = {lam:g}$")
        axes[0].set_ylabel(r"$L - L_w$, $\lambda(AM_j - GM_j)$")
        axes[0].plot([], [], color=cols[True], lw=0.8, label="group in support")
        axes[0].plot([], [], color=cols[False], lw=0.8, label="vanishing group")
        axes[0].plot([], [], label="theoretical slope (band under each group)", **guide_style)
        shared_legend(fig, axes[:1], own=ax is None, ncols=3, loc="lower left")
    return fig


SPEC = FigureSpec.from_module(
    __doc__,
    name="gap",
    label="F3",
    compute=compute,
    plot=plot,
    quick_config=Config(depths=(2, 4), decades=8.0, fit_start=3.0, fit_end=6.0, n_t=121),
    config=Config(),
    summary=summary,
)
