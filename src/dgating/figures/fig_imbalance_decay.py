r"""Imbalance decay: exactly exponential at the rate 4 lam / D
========================================================

Supports docs/theory.md [T-imbalance-flow]: along the gradient flow of the gated objective every
imbalance :math:`\Delta_{j,d} = \|\omega_j\|^2 - \gamma_{j,d}^2` obeys
:math:`\dot\Delta_{j,d} = -\frac{4\lambda}{D}\Delta_{j,d}` for any loss, so
:math:`\sum_{j,d}|\Delta_{j,d}(t)| = e^{-4\lambda t/D}\sum_{j,d}|\Delta_{j,d}(0)|`. Measured
trajectories (solid, integrated with DOP853 at ``rtol=1e-10``) for several :math:`(D, \lambda)` lie
on the rate derived symbolically by :mod:`dgating.theory` (dashed) down to the integration
tolerance; the right panel shows the pointwise relative deviation from the closed form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import FigureSpec, summary_row

__all__ = ["SPEC", "Config", "compute", "plot", "summary"]


@dataclass(frozen=True)
class Config:
    """Flows on the bundled example problem from the seeded Gaussian start
    (:func:`dgating.simulations.flow.initial_params`, ``init="random"``); each runs until the
    predicted imbalance has fallen by ``decades`` powers of ten."""

    depths: tuple[int, ...] = (2, 3, 4)
    lams: tuple[float, ...] = (0.2, 1.0)
    seed: int = 0
    init_scale: float = 0.5
    decades: float = 10.0
    n_t: int = 201


def compute(config: Config) -> dict[str, np.ndarray]:
    """Keys ``depth, lam, t, imbalance_sum, theory_sum, rel_error, theory_rate, measured_rate``
    (one row per :math:`(D, \\lambda)`; ``t`` has shape ``(n_configs, n_t)``)."""
    from ..simulations.rates import measure_rate
    from ._common import example_problem, flow

    problem = example_problem()
    rows = [(d, lam) for d in config.depths for lam in config.lams]
    n = len(rows)
    out = {k: np.zeros((n, config.n_t)) for k in ("t", "imbalance_sum", "theory_sum", "rel_error")}
    depth_arr, lam_arr = np.zeros(n, int), np.zeros(n)
    theory_rate, measured_rate = np.zeros(n), np.zeros(n)
    for i, (depth, lam) in enumerate(rows):
        rate, res = flow(
            problem,
            depth,
            lam,
            decades=config.decades,
            n_t=config.n_t,
            seed=config.seed,
            init_scale=config.init_scale,
        )
        imb = res.imbalance.reshape(res.t.size, -1)
        pred = imb[0] * np.exp(-rate * res.t)[:, None]
        total = np.abs(imb).sum(axis=1)
        out["t"][i] = res.t
        out["imbalance_sum"][i] = total
        out["theory_sum"][i] = np.abs(imb[0]).sum() * np.exp(-rate * res.t)
        out["rel_error"][i] = np.max(np.abs(imb - pred), axis=1) / np.abs(imb[0]).max()
        depth_arr[i], lam_arr[i] = depth, lam
        theory_rate[i] = rate
        # Automatic window: past the transient, clear of the integration-error floor.
        measured_rate[i] = measure_rate(res.t, total).rate
    return {
        "depth": depth_arr,
        "lam": lam_arr,
        **out,
        "theory_rate": theory_rate,
        "measured_rate": measured_rate,
    }


def summary(data: dict[str, np.ndarray]) -> list[dict]:
    """Measured against derived imbalance rates, one row per :math:`(D, \\lambda)`."""
    return [
        summary_row(
            "imbalance decay rate (flow)",
            f"D={d}, lam={lam:g}",
            th,
            me,
            "4 lam/D from dgating.theory; fit of log sum|Delta| vs t",
            tol=1e-6,  # the decay is exact; the fit error is set by the ODE tolerance (1e-10)
        )
        for d, lam, th, me in zip(
            data["depth"], data["lam"], data["theory_rate"], data["measured_rate"]
        )
    ]


def plot(data: dict[str, np.ndarray], ax=None):
    """Left: normalised total imbalance, measured (solid) and theory (dashed); right: deviation."""
    from ._style import axes_or_new, depth_color, shared_legend, style

    lams = np.unique(data["lam"])
    styles = ["-", "-.", ":", (0, (5, 1))]
    with style():
        fig, (a, b) = axes_or_new(ax, 2, width=7.0, height=2.8)
        for i in range(data["depth"].size):
            d, lam = int(data["depth"][i]), float(data["lam"][i])
            ls = styles[int(np.searchsorted(lams, lam)) % len(styles)]
            t, tot = data["t"][i], data["imbalance_sum"][i]
            a.plot(
                t,
                tot / tot[0],
                color=depth_color(d),
                ls=ls,
                lw=1.8,
                label=rf"$D={d}$, $\lambda={lam:g}$",
            )
            a.plot(t, data["theory_sum"][i] / tot[0], color="k", ls="--", lw=0.8)
            # t = 0 is exact by construction. A deviation that is exactly 0 has no place on a log
            # axis: it is left out of the line and marked by a triangle on the bottom spine.
            err = data["rel_error"][i][1:]
            b.plot(t[1:], np.where(err > 0, err, np.nan), color=depth_color(d), ls=ls)
            zero = err == 0
            if zero.any():
                b.plot(
                    t[1:][zero],
                    np.zeros(int(zero.sum())),
                    "v",
                    color=depth_color(d),
                    ms=4,
                    clip_on=False,
                    transform=b.get_xaxis_transform(),
                    label="deviation exactly 0 (on the axis)",
                )
        a.plot([], [], "k--", lw=0.8, label=r"$e^{-4\lambda t/D}$ (theory)")
        a.set_yscale("log")
        a.set_xlabel(r"$t$")
        a.set_ylabel(r"$\sum_{j,d}|\Delta_{j,d}(t)| \,/\, \sum_{j,d}|\Delta_{j,d}(0)|$")
        a.set_title("imbalance along the gradient flow")
        a.legend(loc="upper right", ncol=1)
        b.set_yscale("log")
        b.set_xlabel(r"$t$")
        b.set_ylabel(
            r"$\max_{j,d}|\Delta_{j,d}(t) - e^{-4\lambda t/D}\Delta_{j,d}(0)|"
            r"\,/\,\max_{j,d}|\Delta_{j,d}(0)|$"
        )
        b.set_title("deviation from the closed form")
        if b.get_legend_handles_labels()[1]:
            shared_legend(fig, [b], own=False, loc="upper right")
    return fig


SPEC = FigureSpec.from_module(
    __doc__,
    name="imbalance_decay",
    label="F2",
    compute=compute,
    plot=plot,
    quick_config=Config(depths=(2, 4), lams=(1.0,), decades=6.0, n_t=61),
    config=Config(),
    summary=summary,
)
