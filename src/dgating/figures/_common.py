r"""Helpers shared by the figure modules: the example problem, theory rates, flows."""

from __future__ import annotations

import numpy as np

__all__ = [
    "example_problem",
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

    ``quantity`` is ``"imbalance_rate"`` (:math:`4\lambda/D`), ``"sgd_contraction"``
    (:math:`(1 - 2\eta\lambda/D)^2`) or ``"sgd_vanishing_factor"`` (the per-step factor of a
    vanishing scalar group: the contraction for :math:`D \ge 3`, :math:`(1 - \eta\lambda)^2 -
    \eta^2 g^2` for :math:`D = 2`, which needs ``g``). The expression is derived at run time, so
    the number in a report comes from the derivation, not from a constant typed into the figure.

    Examples
    --------
    >>> theory_value("imbalance_rate", 4, lam=0.5)
    0.5
    """
    import sympy as sp

    from .. import theory

    derive = {
        "imbalance_rate": theory.imbalance_rate,
        "sgd_contraction": theory.sgd_contraction,
        "sgd_vanishing_factor": lambda d: theory.sgd_limit_factors(d).vanishing,
    }
    expr = derive[quantity](depth)
    subs = {s: values[s.name] for s in expr.free_symbols if s.name in values}
    missing = [s.name for s in expr.free_symbols if s.name not in values]
    if missing:
        raise ValueError(f"{quantity}({depth}) needs values for {missing}")
    return float(sp.N(expr.subs(subs)))


def flow(
    problem, depth: int, lam: float, *, decades: float, n_t: int, seed: int, init_scale: float
):
    r"""Gradient flow of the gated objective from the seeded random start of
    :func:`dgating.simulations.flow.initial_params` (scipy DOP853, rtol 1e-10, atol 1e-12), long
    enough for the imbalance to fall by ``decades`` decades at the derived rate.

    Returns ``(rate, result)``: :math:`4\lambda/D` from :mod:`dgating.theory` and the
    :class:`~dgating.simulations.flow.FlowResult` on ``n_t`` equally spaced times.
    """
    from ..objectives import GatedObjective
    from ..simulations.flow import initial_params, integrate_flow

    rate = theory_value("imbalance_rate", depth, lam=lam)
    t_end = decades * np.log(10.0) / rate
    obj = GatedObjective(problem, depth, lam)
    p0 = initial_params(obj, init="random", seed=seed, init_scale=init_scale)
    t_eval = np.linspace(0.0, t_end, n_t)
    return rate, integrate_flow(obj, p0, (0.0, t_end), t_eval=t_eval)
