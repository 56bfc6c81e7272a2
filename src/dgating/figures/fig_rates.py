r"""Measured over theoretical rates on a (D, lam) grid
=================================================

Supports docs/theory.md [T-imbalance-flow] and [T-gap] beyond single examples: for every depth
:math:`D` and strength :math:`\lambda` of the simulation sweep (:mod:`dgating.simulations.sweep`,
seeded random problems, several seeds), the decay rates measured on the gradient flow are divided by
the rates derived by :mod:`dgating.theory`. The imbalance rate :math:`4\lambda/D` is an exact law
and its ratio is 1 to integration accuracy (four decimals shown). The gap rates of surviving
(:math:`8\lambda/D`) and vanishing groups (:math:`4\lambda/D`, or :math:`2(\lambda + \|g_j^\star\|)`
for :math:`D = 2`) are asymptotic, fitted on a finite window: most ratios are within 1 %, but for
vanishing groups at :math:`D = 2` they can be several per cent off (up to about 8 % in the default
sweep), because those groups approach their asymptotic rate slowly and the window is partly
pre-asymptotic. Cells show the median ratio over seeds; the colour scale is symmetric about 1 and
covers every cell.
"""

from __future__ import annotations

import numpy as np

from .registry import FigureSpec, summary_row

__all__ = ["SPEC", "CLASSES", "compute", "plot", "summary"]

#: (key, measured column, theory column, label) for each rate class.
CLASSES = (
    ("imbalance", "rate_imbalance", "rate_imbalance_theory", r"imbalance, $4\lambda/D$"),
    (
        "surviving",
        "rate_gap_surviving",
        "rate_gap_surviving_theory",
        r"gap, surviving groups, $8\lambda/D$",
    ),
    ("vanishing", "rate_gap_vanishing", "rate_gap_vanishing_theory", "gap, vanishing groups"),
)


def compute(config) -> dict[str, np.ndarray]:
    """Run every configuration of the sweep ``config`` (a
    :class:`~dgating.simulations.sweep.SweepConfig`) in this process.

    Keys: ``depths, lams`` (grid axes); per class ``<key>`` (median ratio, shape
    ``(n_depths, n_lams)``); tidy per-configuration columns ``row_depth, row_lam, row_seed,
    row_<key>_measured, row_<key>_theory, row_status, row_seconds``.
    """
    from .._progress import progress_iter
    from ..simulations.sweep import run_configuration

    configs = config.configurations()
    rows = [run_configuration(c) for c in progress_iter(configs, "sweep")]
    depths = np.array(config.depths)
    lams = np.array(config.lams, dtype=float)

    def col(name: str) -> np.ndarray:
        return np.array([np.nan if r.get(name) is None else float(r[name]) for r in rows])

    out: dict[str, np.ndarray] = {
        "depths": depths,
        "lams": lams,
        "row_depth": col("depth").astype(int),
        "row_lam": col("lam"),
        "row_seed": col("seed").astype(int),
        "row_status": col("status").astype(int),
        "row_seconds": col("seconds"),
    }
    for key, meas, theo, _ in CLASSES:
        m, t = col(meas), col(theo)
        out[f"row_{key}_measured"], out[f"row_{key}_theory"] = m, t
        grid = np.full((depths.size, lams.size), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = m / t
        for i, d in enumerate(depths):
            for j, lam in enumerate(lams):
                sel = (out["row_depth"] == d) & (out["row_lam"] == lam) & np.isfinite(ratio)
                if sel.any():
                    grid[i, j] = np.median(ratio[sel])
        out[key] = grid
    return out


def summary(data: dict[str, np.ndarray]) -> list[dict]:
    """Per class: the median measured/theory ratio over all flows (a check) and the worst single
    configuration (informative: finite fit windows can be pre-asymptotic)."""
    rows = []
    # imbalance: an exact law, so only the ODE tolerance (rtol 1e-10) limits the fit. Gap rates
    # are asymptotic, fitted on a finite window whose start can be pre-asymptotic (slowly
    # converging group norms for D = 2 and small lam), so the check is on the median, at 2%.
    tols = {"imbalance": 1e-6, "surviving": 0.02, "vanishing": 0.02}
    for key, _, _, _ in CLASSES:
        m, t = data[f"row_{key}_measured"], data[f"row_{key}_theory"]
        ok = np.isfinite(m) & np.isfinite(t) & (t != 0)
        if not ok.any():
            continue
        ratio = m[ok] / t[ok]
        n = int(ok.sum())
        med = float(np.median(ratio))
        rows.append(
            summary_row(
                f"sweep: {key} rate, median measured/theory",
                f"{n} flows over (D, lam, seed)",
                1.0,
                med,
                "median over configurations of the ratio",
                tol=tols[key],
            )
        )
        worst = int(np.argmax(np.abs(ratio - 1.0)))
        where = (
            f"D={int(data['row_depth'][ok][worst])}, lam={data['row_lam'][ok][worst]:g}, "
            f"seed={int(data['row_seed'][ok][worst])}"
        )
        rows.append(
            summary_row(
                f"sweep: {key} rate, worst configuration",
                where,
                float(t[ok][worst]),
                float(m[ok][worst]),
                "informative: fit window may be pre-asymptotic",
            )
        )
    return rows


def plot(data: dict[str, np.ndarray], ax=None):
    """One annotated heat map of the median ratio per rate class."""
    from matplotlib.colors import TwoSlopeNorm

    from ._style import axes_or_new, style

    depths, lams = data["depths"], data["lams"]
    ratios = np.concatenate([data[key].ravel() for key, *_ in CLASSES])
    ratios = ratios[np.isfinite(ratios)]
    # A colour scale symmetric about 1 that covers every cell: at least +-5 %, widened to the
    # largest deviation rounded up to the next per cent, so no cell saturates.
    worst = float(np.max(np.abs(ratios - 1.0))) if ratios.size else 0.0
    half = max(0.05, np.ceil(100.0 * worst) / 100.0)
    with style():
        fig, axes = axes_or_new(ax, len(CLASSES), width=8.0, height=2.8)
        norm = TwoSlopeNorm(vcenter=1.0, vmin=1.0 - half, vmax=1.0 + half)
        im = None
        for a, (key, _, _, label) in zip(axes, CLASSES):
            grid = data[key]
            im = a.imshow(grid, cmap="PuOr_r", norm=norm, origin="lower", aspect="auto")
            for i in range(depths.size):
                for j in range(lams.size):
                    v = grid[i, j]
                    # White text on the darker outer 40 % of the colour scale.
                    dark = np.isfinite(v) and abs(v - 1.0) > 0.6 * half
                    a.text(
                        j,
                        i,
                        "—" if not np.isfinite(v) else f"{v:.4f}",
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="white" if dark else "black",
                    )
            a.set_xticks(range(lams.size), [f"{x:g}" for x in lams])
            a.set_yticks(range(depths.size), [str(d) for d in depths])
            a.set_xlabel(r"$\lambda$")
            a.set_ylabel(r"$D$")
            a.set_title(label)
            a.grid(False)
        if im is not None:
            fig.colorbar(im, ax=axes, label="measured / theory (median over seeds)", shrink=0.9)
    return fig


def _configs():
    from ..simulations.sweep import DEFAULT_SWEEP, QUICK_SWEEP

    return DEFAULT_SWEEP, QUICK_SWEEP


_DEFAULT, _QUICK = _configs()

SPEC = FigureSpec.from_module(
    __doc__,
    name="rates",
    label="F9",
    compute=compute,
    plot=plot,
    quick_config=_QUICK,
    config=_DEFAULT,
    summary=summary,
)
