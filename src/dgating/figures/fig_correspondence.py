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
    """Distances and objective differences per start, by depth and problem; certified fractions."""
    from ._style import PALETTE, axes_or_new, depth_color, style

    depths = np.unique(data["depth"])
    problems = list(dict.fromkeys(data["problem"].tolist()))
    markers = ["o", "s", "^", "D", "v"]
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
                a.plot(x, dist, label=name if d == depths[0] else None, **kw)
                b.plot(x, rel, **kw)
        a.axhline(float(data["match_tol"]), color="k", ls="--", lw=0.8, label="match tolerance")
        a.set_yscale("log")
        a.set_ylabel(r"$\|w_{\rm gated} - w_{\rm prox}\| / \max(1, \|w_{\rm prox}\|)$")
        if ax is None:
            fig.legend(*a.get_legend_handles_labels(), loc="outside lower center", ncol=4)
        else:
            a.legend(loc="center left", fontsize=6.5)
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
        width = 0.25
        for i, (key, lab) in enumerate(
            (
                ("certified_gated", "gated certified"),
                ("certified_prox", "prox certified"),
                ("same", "same minimiser"),
            )
        ):
            frac = [np.mean(data[key][data["depth"] == d]) for d in depths]
            c.bar(
                depths + (i - 1) * width,
                frac,
                width,
                label=lab,
                color=[depth_color(d) for d in depths],
                alpha=[1.0, 0.65, 0.35][i],
                edgecolor="k",
                lw=0.5,
            )
        c.set_ylim(0, 1.15)
        c.set_ylabel("fraction of starts")
        c.legend(loc="upper center", ncol=3, fontsize=6, handlelength=1)
        for x in (a, b, c):
            x.set_xticks(depths, [f"$D={d}$" for d in depths])
        a.set_title("distance between minimisers")
        b.set_title("objective difference")
        c.set_title("certificates")
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
