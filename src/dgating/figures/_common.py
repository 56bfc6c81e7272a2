r"""Helpers shared by the figure modules: the example problem, theory rates, rate fits, flows."""

from __future__ import annotations

import numpy as np

__all__ = [
    "example_problem",
    "fit_rate",
    "flow",
    "theory_value",
]


def example_problem():
    """The bundled example (``dgating/data/example.npz``: 100 samples, 10 groups of 4)."""
    from importlib.resources import as_file, files

    from ..problem import load_problem

    with as_file(files("dgating") / "data" / "example.npz") as path:
        return load_problem(path)


def theory_value(quantity: str, depth: int, **values: float) -> float:
    r"""A rate derived by :mod:`dgating.theory` (sympy), evaluated at ``values``.

    ``quantity`` is ``"imbalance_rate"`` (:math:`4\lambda/D`) or ``"sgd_contraction"``
    (:math:`(1 - 2\eta\lambda/D)^2`). The expression is derived at run time, so the number in a
    report comes from the derivation, not from a constant typed into the figure.

    Examples
    --------
    >>> theory_value("imbalance_rate", 4, lam=0.5)
    0.5
    """
    import sympy as sp

    expr = _theory_function(quantity)(depth)
    subs = {s: values[s.name] for s in expr.free_symbols if s.name in values}
    missing = [s.name for s in expr.free_symbols if s.name not in values]
    if missing:
        raise ValueError(f"{quantity}({depth}) needs values for {missing}")
    return float(sp.N(expr.subs(subs)))


def _theory_function(name: str):
    import importlib

    for mod in ("dgating.theory", "dgating.theory.balancedness", "dgating.theory.gap"):
        try:
            fn = getattr(importlib.import_module(mod), name, None)
        except ImportError:
            continue
        if fn is not None:
            return fn
    raise ImportError(f"dgating.theory provides no {name}()")


def fit_rate(t: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> float:
    r"""Decay rate :math:`r` of :math:`y \approx C e^{-r t}`: minus the least-squares slope of
    :math:`\log y` against :math:`t` over ``mask`` (and ``y > 0``); ``nan`` with < 3 points.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 5, 50)
    >>> round(fit_rate(t, 3 * np.exp(-0.7 * t)), 10)
    0.7
    """
    t, y = np.asarray(t, float), np.asarray(y, float)
    ok = y > 0
    if mask is not None:
        ok &= mask
    if ok.sum() < 3:
        return float("nan")
    slope = np.polyfit(t[ok], np.log(y[ok]), 1)[0]
    return float(-slope)


def flow(
    problem,
    depth: int,
    lam: float,
    t_end: float,
    n_t: int,
    *,
    seed: int,
    init: str,
    init_scale: float,
):
    """Gradient flow of the gated objective from the seeded unbalanced start of
    :func:`dgating.simulations.flow.initial_params` (scipy DOP853, rtol 1e-10, atol 1e-12)."""
    from ..objectives import GatedObjective
    from ..simulations.flow import initial_params, integrate_flow

    obj = GatedObjective(problem, depth, lam)
    p0 = initial_params(obj, init=init, seed=seed, init_scale=init_scale)
    t_eval = np.linspace(0.0, t_end, n_t)
    return obj, integrate_flow(obj, p0, (0.0, t_end), t_eval=t_eval)
