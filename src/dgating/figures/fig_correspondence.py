r"""Minima correspondence: the gated and the proximal routes from the same starts
============================================================================

Supports docs/theory.md [T-minima] (Theorem 1): from the same random starts
(:func:`dgating.proofs_check.multistart.run_multistart`), the minimiser of the smooth gated
objective :math:`L` (collapsed) and the proximal-gradient minimiser of :math:`L_w` are both
certified local minimisers of :math:`L_w` (first order, zero groups, reduced Hessian). For the
convex :math:`D = 2` they coincide; for :math:`D \ge 3` (non-convex) the two routes sometimes stop
at different certified local minima with different values, which the correspondence allows: it maps
local minima to local minima, not one algorithm's path to the other's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import FigureSpec, summary_row

__all__ = ["SPEC", "Config", "compute", "plot", "summary"]


@dataclass(frozen=True)
class Config:
    """Problems of :mod:`dgating.proofs_check.problems` (their own :math:`\\lambda` per depth),
    depths and seeds ``0 .. n_starts-1`` of the random starts."""

    problems: tuple[str, ...] = ("reg_tall", "reg_wide", "logistic")
    depths: tuple[int, ...] = (2, 3, 4)
    n_starts: int = 6
    match_tol: float = 1e-6


def compute(config: Config) -> dict[str, np.ndarray]:
    """Tidy per-start columns: ``problem, depth, lam, seed, objective_gated, objective_prox,
    distance, same, certified_gated, certified_prox, support_gated, support_prox``."""
    from ..proofs_check.multistart import run_multistart
    from ..proofs_check.problems import get_problem

    per_start = (
        "objective_gated",
        "objective_prox",
        "distance",
        "same",
        "certified_gated",
        "certified_prox",
        "support_gated",
        "support_prox",
    )
    cols: dict[str, list] = {k: [] for k in ("problem", "depth", "lam", "seed", *per_start)}
    for name in config.problems:
        spec = get_problem(name)
        problem = spec.problem()
        for depth in config.depths:
            lam = spec.lam(depth)
            ms = run_multistart(
                problem,
                depth,
                lam,
                seeds=range(config.n_starts),
                init_scale=spec.init_scale,
                match_tol=config.match_tol,
                name=name,
            )
            n = len(ms.seeds)
            cols["problem"] += [name] * n
            cols["depth"] += [depth] * n
            cols["lam"] += [lam] * n
            cols["seed"] += list(ms.seeds)
            for k in per_start:
                cols[k] += list(np.asarray(getattr(ms, k)))
    out = {k: np.asarray(v) for k, v in cols.items()}
    out["problem"] = out["problem"].astype(str)
    out["match_tol"] = np.float64(config.match_tol)
    return out


def summary(data: dict[str, np.ndarray]) -> list[dict]:
    """Per depth: fraction of certified minimisers of each route (theory 1) and, for the convex
    D = 2, the fraction of starts where the routes agree (theory 1)."""
    rows = []
    for d in np.unique(data["depth"]):
        sel = data["depth"] == d
        n = int(sel.sum())
        for route in ("gated", "prox"):
            rows.append(
                summary_row(
                    f"certified local minimisers of L_w, {route} route",
                    f"D={d}, {n} starts",
                    1.0,
                    float(np.mean(data[f"certified_{route}"][sel])),
                    "fraction of starts",
                    tol=0.0,
                )
            )
        rows.append(
            summary_row(
                "routes reach the same minimiser",
                f"D={d}, {n} starts",
                1.0,
                float(np.mean(data["same"][sel])),
                "convex: unique minimiser" if d == 2 else "non-convex: may differ (informative)",
                tol=0.0 if d == 2 else None,
            )
        )
    return rows


def plot(data: dict[str, np.ndarray], ax=None):
    """Distances and objective differences per start, by depth and problem; certified fractions.

    Problems are named by their description in :mod:`dgating.proofs_check.problems`; the bars
    are coloured by what they count (the depth is on the x axis); those below 1 carry their value.
    """
    from ..proofs_check.problems import get_problem
    from ._style import OKABE_ITO, PALETTE, axes_or_new, shared_legend, style

    depths = np.unique(data["depth"])
    problems = list(dict.fromkeys(data["problem"].tolist()))
    markers = ["o", "s", "^", "D", "v"]
    tol = float(data["match_tol"])
    with style():
        fig, (a, b, c) = axes_or_new(ax, 3, width=8.0, height=2.8)
        rng = np.random.default_rng(0)  # horizontal jitter only
        for k, name in enumerate(problems):
            for d in depths:
                sel = (data["problem"] == name) & (data["depth"] == d)
                x = d + 0.25 * (k - (len(problems) - 1) / 2) / max(len(problems), 1)
                x = x + rng.uniform(-0.03, 0.03, sel.sum())
                dist = np.maximum(data["distance"][sel], 1e-16)
                og, op = data["objective_gated"][sel], data["objective_prox"][sel]
                rel = (og - op) / (1.0 + np.abs(op))
                kw = dict(
                    color=PALETTE[k % len(PALETTE)],
                    marker=markers[k % len(markers)],
                    ls="none",
                    ms=4,
                    mfc="none",
                )
                label = get_problem(name).description if d == depths[0] else None
                a.plot(x, dist, label=label, **kw)
                b.plot(x, rel, **kw)
        a.axhline(tol, color="k", ls="--", lw=0.8, label=f"same minimiser below {tol:g}")
        a.set_yscale("log")
        a.set_ylabel(r"$\|w_{\rm gated} - w_{\rm prox}\| / \max(1, \|w_{\rm prox}\|)$")
        b.set_yscale("symlog", linthresh=1e-12)
        diffs = (data["objective_gated"] - data["objective_prox"]) / (
            1.0 + np.abs(data["objective_prox"])
        )
        ticks = [0.0, 1e-12, 1e-8, 1e-4, 1.0]
        if np.any(diffs < -1e-12):
            ticks = [-1.0, -1e-4, -1e-8] + ticks
        b.set_yticks(ticks)
        b.axhline(0.0, color="k", lw=0.6)
        b.set_ylabel(r"$(L_w(w_{\rm gated}) - L_w(w_{\rm prox})) / (1 + |L_w|)$")
        width = 0.26
        bars = (
            ("certified_gated", "gated route certified", OKABE_ITO["blue"]),
            ("certified_prox", "prox route certified", OKABE_ITO["sky"]),
            # D >= 3 is non-convex: two certified routes may stop at different local minima.
            (
                "same",
                "same minimiser (must for $D = 2$; need not for $D \\geq 3$, [T-minima])",
                OKABE_ITO["orange"],
            ),
        )
        for i, (key, lab, col) in enumerate(bars):
            frac = np.array([np.mean(data[key][data["depth"] == d]) for d in depths])
            rects = c.bar(depths + (i - 1) * width, frac, width, label=lab, color=col)
            # Fractions below 1 carry their value (labels on every bar would collide).
            c.bar_label(rects, [f"{f:.2f}" if f < 1 else "" for f in frac], fontsize=6.5, padding=1)
        c.set_ylim(0, 1.12)
        c.set_ylabel("fraction of starts")
        for x in (a, b, c):
            x.set_xticks(depths, [f"$D={d}$" for d in depths])
        a.set_title("distance between minimisers")
        b.set_title("objective difference")
        c.set_title("certificates")
        shared_legend(fig, [a, c], own=ax is None, ncols=2, loc="center left", fontsize=6.5)
    return fig


SPEC = FigureSpec.from_module(
    __doc__,
    name="correspondence",
    label="F7",
    compute=compute,
    plot=plot,
    quick_config=Config(problems=("reg_tall",), depths=(2, 3), n_starts=3),
    config=Config(),
    summary=summary,
)
