r"""SGD: geometric imbalance decay and a steady-state imbalance of order eta
=======================================================================

Supports docs/theory.md [T-sgd]: with step :math:`\eta` and any minibatch gradient,
:math:`\Delta^+_{j,d} = (1 - 2\eta\lambda/D)^2\Delta_{j,d} + \eta^2(\|P_j\hat g_j\|^2 -
(P_{j,-d}\langle\hat g_j,\omega_j\rangle)^2)`. Left: for scalar groups the recursion is purely
multiplicative, and for :math:`D \ge 3` the imbalance of the groups that vanish contracts by exactly
the factor :math:`(1 - 2\eta\lambda/D)^2` derived by :mod:`dgating.theory` (dashed) under minibatch
SGD, since the other gates vanish with the group (at :math:`D = 2` there is no other gate and the
factor is :math:`(1 - \eta\lambda)^2 - \eta^2\hat g_j^2`); the surviving groups, blue, are drawn
on top of them. Right:
for vector groups, minibatch noise keeps the imbalance at a steady state that grows linearly in
:math:`\eta` (started balanced, averaged over the second half of a fixed horizon :math:`K\eta`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import FigureSpec, summary_row

__all__ = ["SPEC", "Config", "compute", "plot", "summary"]


@dataclass(frozen=True)
class Config:
    """Scalar groups: the example design with one group per feature, minibatch SGD with step
    ``eta`` for ``n_steps``; vector groups: the example problem (groups of 4), steps ``etas`` over
    the flow time ``horizon``. All draws from ``numpy.random.default_rng(seed)``."""

    depth: int = 3
    lam: float = 0.5
    eta: float = 0.05
    n_steps: int = 1500
    batch_size: int = 10
    etas: tuple[float, ...] = (0.0025, 0.005, 0.01, 0.02, 0.04)
    horizon: float = 30.0
    seed: int = 0
    init_scale: float = 0.5


def compute(config: Config) -> dict[str, np.ndarray]:
    """Keys ``steps, imbalance, vanishing, theory_factor, measured_factor, recursion_error, etas,
    steady_imbalance, steady_slope, depth, lam, eta``."""
    from ..objectives import GatedObjective
    from ..problem import GroupedProblem
    from ..simulations.discrete import imbalance_contraction, run_sgd, steady_state_imbalance
    from ..simulations.flow import initial_params
    from ._common import example_problem, theory_value

    base = example_problem()
    scalar = GroupedProblem(base.X, base.y, np.arange(base.n_features))
    obj = GatedObjective(scalar, config.depth, config.lam)
    p0 = initial_params(obj, init="random", seed=config.seed, init_scale=config.init_scale)
    res = run_sgd(
        obj,
        p0,
        eta=config.eta,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        seed=config.seed,
    )
    w_end = res.omega[-1] * scalar.groups.expand(res.gates[-1].prod(axis=1))
    from ..solvers import solve_prox

    ref = solve_prox(scalar, config.depth, config.lam, w0=w_end)
    vanishing = scalar.groups.norms(ref.w) == 0
    theory = theory_value("sgd_vanishing_factor", config.depth, lam=config.lam, eta=config.eta)
    measured = np.array([imbalance_contraction(res, j, 0) for j in np.flatnonzero(vanishing)])

    grouped = GatedObjective(base, config.depth, config.lam)
    q0 = initial_params(grouped, init="random", seed=config.seed, init_scale=config.init_scale)
    steady = steady_state_imbalance(
        grouped,
        q0,
        np.asarray(config.etas),
        horizon=config.horizon,
        batch_size=config.batch_size,
        seed=config.seed,
    )
    return {
        "steps": res.steps,
        "imbalance": np.abs(res.imbalance[:, :, 0]),
        "vanishing": vanishing,
        "theory_factor": np.float64(theory),
        "measured_factor": measured,
        "recursion_error": np.float64(res.recursion_error.max()),
        "etas": steady["eta"],
        "steady_imbalance": steady["imbalance"],
        "steady_slope": np.float64(steady["slope"]),
        "depth": np.int64(config.depth),
        "lam": np.float64(config.lam),
        "eta": np.float64(config.eta),
    }


def summary(data: dict[str, np.ndarray]) -> list[dict]:
    """Contraction factor of vanishing scalar groups, steady-state slope, recursion residual."""
    d, lam, eta = int(data["depth"]), float(data["lam"]), float(data["eta"])
    setting = f"D={d}, lam={lam:g}, eta={eta:g}"
    rows = []
    if data["measured_factor"].size:
        rows.append(
            summary_row(
                "SGD imbalance contraction per step (vanishing scalar groups)",
                setting,
                float(data["theory_factor"]),
                float(np.median(data["measured_factor"])),
                f"median over {data['measured_factor'].size} groups; theory: derived limit factor "
                "(1 - 2 eta lam/D)^2 for D >= 3",
                tol=1e-3,  # fitted over a window with O(eta^2 g^2 P^2) corrections before vanishing
            )
        )
    rows.append(
        summary_row(
            "steady-state imbalance vs eta: log-log slope",
            f"D={d}, lam={lam:g}",
            1.0,
            float(data["steady_slope"]),
            "Delta* ~ eta D E[noise] / (4 lam)",
            tol=0.25,
        )
    )  # a noisy average over a finite horizon
    rows.append(
        {
            "quantity": "exact SGD recursion: max residual",
            "setting": setting,
            "theory": 0.0,
            "measured": float(data["recursion_error"]),
            "ratio": float("nan"),
            "note": "relative, per step",
            "passed": bool(float(data["recursion_error"]) < 1e-10),
            "tol": 1e-10,
        }
    )
    return rows


def plot(data: dict[str, np.ndarray], ax=None):
    """Left: |Delta| of scalar groups vs step with the theoretical contraction; right: steady
    state vs eta.

    Scalar-group imbalances contract by the same factor whether the group survives or not, so
    the few surviving groups lie inside the band of vanishing ones: they are drawn on top, wider.
    """
    from ._style import OKABE_ITO, axes_or_new, shared_legend, style

    with style():
        fig, (a, b) = axes_or_new(ax, 2, width=7.0, height=2.8)
        k = data["steps"]
        imb, van = data["imbalance"], data["vanishing"]
        for j in np.flatnonzero(van):
            y = np.where(imb[:, j] > 0, imb[:, j], np.nan)
            a.plot(k, y, color=OKABE_ITO["vermillion"], lw=0.6)
        for j in np.flatnonzero(~van):
            # Delta = omega^2 - gamma^2 of a surviving group is a difference of O(1) squares: below
            # about 100 eps |Delta_j(0)| it is round-off, so the curve stops there.
            below = np.flatnonzero(imb[:, j] <= 100.0 * np.finfo(float).eps * imb[0, j])
            stop = int(below[0]) if below.size else k.size
            a.plot(k[:stop], imb[:stop, j], color=OKABE_ITO["blue"], lw=1.6, zorder=3)
        c = float(data["theory_factor"])
        if van.any():
            j0 = int(np.flatnonzero(van)[np.argmax(imb[0, van])])
            a.plot(
                k,
                imb[0, j0] * c**k,
                "k--",
                lw=1.2,
                zorder=4,
                label=rf"$(1 - 2\eta\lambda/D)^{{2k}}$ = ${c:.4f}^k$",
            )
        a.plot([], [], color=OKABE_ITO["vermillion"], lw=0.6, label="vanishing scalar groups")
        a.plot(
            [], [], color=OKABE_ITO["blue"], lw=1.6, label="surviving scalar groups (to round-off)"
        )
        a.set_yscale("log")
        # Down to a decade below the smallest final imbalance of the vanishing groups (those of
        # surviving groups end in round-off); min(initial=...) would cap it.
        last = imb[-1][(van if van.any() else ~van) & (imb[-1] > 0)]
        a.set_ylim(0.1 * float(last.min()) if last.size else 1e-30, 10.0 * float(imb[0].max()))
        a.set_xlabel(r"SGD step $k$")
        a.set_ylabel(r"$|\Delta_{j,1}^{(k)}|$")
        a.set_title(
            rf"scalar groups: $D={int(data['depth'])}$, $\lambda={float(data['lam']):g}$, "
            rf"$\eta={float(data['eta']):g}$"
        )
        shared_legend(fig, [a], own=ax is None, ncols=3, loc="lower left")
        etas, st = data["etas"], data["steady_imbalance"]
        b.loglog(etas, st, "o-", color=OKABE_ITO["blue"], label="measured")
        b.loglog(
            etas,
            st[0] * etas / etas[0],
            "k--",
            lw=1,
            label=rf"slope 1 (fitted {float(data['steady_slope']):.2f})",
        )
        from matplotlib.ticker import NullFormatter

        # One labelled tick per simulated step size: a log axis spanning less than a decade
        # would otherwise show a single label.
        b.set_xticks(etas, [f"{e:g}" for e in etas])
        b.xaxis.set_minor_formatter(NullFormatter())
        b.set_xlabel(r"step $\eta$")
        b.set_ylabel(r"steady-state $\max_{j,d}|\Delta_{j,d}|$")
        b.set_title("groups of 4: steady state under noise")
        b.legend(loc="upper left")
    return fig


SPEC = FigureSpec.from_module(
    __doc__,
    name="sgd",
    label="F8",
    compute=compute,
    plot=plot,
    quick_config=Config(n_steps=600, etas=(0.005, 0.01, 0.02, 0.04), horizon=10.0),
    config=Config(),
    summary=summary,
)
