r"""Sparsity-accuracy trade-offs of D-Gating on small networks (digits, wine, ResNet)
==================================================================================

Puts the practical use of D-Gating (docs/theory.md [C-conventions] and [T-zero-groups]) on record
without presupposing a winner: plain minibatch SGD with coupled weight decay :math:`2\lambda/D` on
the gated network removes whole groups (hidden neurons for digits, input features for wine, batch
norm channels of a small ResNet on digits, whose exported model is physically smaller), and each
:math:`(D, \lambda)` gives one point of test accuracy against the fraction of groups removed (a
relative threshold, since under SGD vanishing groups decay geometrically and never reach zero). The
baselines are SGD on :math:`L_w` with subgradients, proximal SGD (exact zeros) and magnitude pruning
at matched sparsity (:mod:`dgating.nn.experiments`; the ResNet is compared with proximal SGD and
magnitude pruning only); points are means over seeds with one standard deviation as error bars,
lines join only neighbouring settings, with short training budgets, so the ranking of the methods is
a measurement of this configuration only.
"""

from __future__ import annotations

import numpy as np

from .registry import FigureSpec

__all__ = ["SPEC", "compute", "plot", "summary"]


def compute(config) -> dict[str, np.ndarray]:
    """Run :func:`dgating.nn.experiments.run_experiments` with ``config`` (an
    :class:`~dgating.nn.experiments.ExperimentConfig`); the tidy rows become one column each
    (``dataset`` and ``method`` as strings)."""
    from ..nn.experiments import COLUMNS, run_experiments

    rows = run_experiments(config, progress=True)
    text = ("dataset", "method")
    out = {k: np.array([r[k] for r in rows], dtype=str) for k in text}
    for k in COLUMNS:
        if k not in text:
            out[k] = np.array([np.nan if r.get(k) is None else float(r[k]) for r in rows])
    return out


def _means(data: dict[str, np.ndarray], dataset: str, method: str):
    """``(depth, lam, sparsity, accuracy, sparsity_std, accuracy_std)`` per setting (over seeds)."""
    sel = (data["dataset"] == dataset) & (data["method"] == method)
    keys = sorted({(d, lam) for d, lam in zip(data["depth"][sel], data["lam"][sel])})
    out = []
    for d, lam in keys:
        s = sel & (data["depth"] == d) & (data["lam"] == lam)
        sp, acc = data["sparsity"][s], data["accuracy"][s]
        out.append((int(d), float(lam), sp.mean(), acc.mean(), sp.std(), acc.std()))
    return out


#: Neighbouring points further apart than this (in sparsity) are not joined by a line.
MAX_GAP = 0.25


def _broken(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """The polyline with a NaN inserted wherever consecutive x differ by more than MAX_GAP."""
    bx, by = [], []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if i and abs(x - xs[i - 1]) > MAX_GAP:
            bx.append(np.nan)
            by.append(np.nan)
        bx.append(x)
        by.append(y)
    return bx, by


def summary(data: dict[str, np.ndarray]) -> list[dict]:
    """Per dataset and depth: the best test accuracy of D-Gating among settings with at least
    half of the groups removed, against magnitude pruning at the same sparsity (informative)."""
    rows = []
    for ds in np.unique(data["dataset"]):
        for d in np.unique(data["depth"][data["method"] == "dgating"]):
            pts = [p for p in _means(data, ds, "dgating") if p[0] == d]
            mags = {(p[0], p[1]): p for p in _means(data, ds, "magnitude")}
            sparse = [p for p in pts if p[2] >= 0.5]
            if not sparse:
                continue
            best = max(sparse, key=lambda p: p[3])
            mag = mags.get((best[0], best[1]))
            rows.append(
                {
                    "quantity": f"{ds}: test accuracy at sparsity {best[2]:.2f}",
                    "setting": f"D={int(d)}, lam={best[1]:g}",
                    "theory": float("nan") if mag is None else mag[3],
                    "measured": best[3],
                    "ratio": float("nan") if mag is None or mag[3] == 0 else best[3] / mag[3],
                    "note": "theory column: magnitude pruning at the same sparsity (baseline)",
                    "passed": None,
                    "tol": None,
                }
            )
    return rows


def plot(data: dict[str, np.ndarray], ax=None):
    """One panel per dataset: test accuracy against sparsity, mean over seeds with one standard
    deviation as error bars; colour = depth (D-Gating, lines join settings ordered by lam, broken
    at gaps wider than :data:`MAX_GAP`), black/purple/orange markers = baselines."""
    from ._style import OKABE_ITO, axes_or_new, depth_color, style

    datasets = list(dict.fromkeys(data["dataset"].tolist()))
    base_style = {
        "subgradient": ("X", OKABE_ITO["black"]),
        "proximal": ("P", OKABE_ITO["purple"]),
        "magnitude": ("s", OKABE_ITO["orange"]),
    }
    with style():
        n_panels = max(len(datasets), 1)
        fig, axes = axes_or_new(ax, n_panels, width=max(7.0, 3.3 * n_panels), height=2.9)
        for i, (a, ds) in enumerate(zip(axes, datasets)):
            depths = sorted({p[0] for p in _means(data, ds, "dgating")})
            for d in depths:
                pts = sorted(
                    (p for p in _means(data, ds, "dgating") if p[0] == d), key=lambda p: p[1]
                )
                xs, ys = [p[2] for p in pts], [p[3] for p in pts]
                a.plot(*_broken(xs, ys), "-", color=depth_color(d), lw=1.2)
                a.errorbar(
                    xs,
                    ys,
                    xerr=[p[4] for p in pts],
                    yerr=[p[5] for p in pts],
                    fmt="o",
                    color=depth_color(d),
                    ms=5,
                    capsize=2,
                    label=rf"D-Gating $D={d}$",
                )
            for m, (mk, col) in base_style.items():
                pts = _means(data, ds, m)
                if pts:
                    a.errorbar(
                        [p[2] for p in pts],
                        [p[3] for p in pts],
                        xerr=[p[4] for p in pts],
                        yerr=[p[5] for p in pts],
                        fmt=mk,
                        color=col,
                        ms=5,
                        capsize=2,
                        label=m,
                    )
            a.set_xlabel("sparsity (fraction of groups removed)")
            if i == 0:
                a.set_ylabel("test accuracy")
            a.set_xlim(-0.03, 1.03)
            a.set_title(ds)
        if datasets and ax is None:
            handles = {}
            for a in axes:
                for h, lab in zip(*a.get_legend_handles_labels()):
                    handles.setdefault(lab, h)
            fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=6)
        elif datasets:
            axes[0].legend(loc="lower left", fontsize=6.5)
    return fig


def _configs():
    # The default is the experiment of record (dgating.nn.experiments.ExperimentConfig(): 5 seeds,
    # 7 lams, 40 epochs on digits and 200 on wine; the ResNet on digits with its own grid), so the
    # figure shows what `dgating nn-experiment` reports.
    from ..nn.experiments import ExperimentConfig, quick_config

    return ExperimentConfig(), quick_config()


_DEFAULT, _QUICK = _configs()

SPEC = FigureSpec.from_module(
    __doc__,
    name="nn_tradeoff",
    label="F10",
    compute=compute,
    plot=plot,
    quick_config=_QUICK,
    config=_DEFAULT,
    summary=summary,
)
