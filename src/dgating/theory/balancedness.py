r"""Balancedness: the imbalance identity, its exact decay along the flow and under (S)GD.

For D-Gating, :math:`\Delta_{j,d} = \|\omega_j\|^2 - \gamma_{j,d}^2` satisfies, for every loss,

.. math::
    \langle \omega_j, \partial_{\omega_j} L\rangle - \gamma_{j,d}\,\partial_{\gamma_{j,d}} L
    = \frac{2\lambda}{D}\Delta_{j,d}, \qquad
    \dot\Delta_{j,d} = -\frac{4\lambda}{D}\Delta_{j,d}, \qquad
    \Delta_{j,d}(t) = e^{-4\lambda t/D}\Delta_{j,d}(0),

and one step of (S)GD with step :math:`\eta` and any gradient estimate :math:`\hat g_j` gives

.. math::
    \Delta^+_{j,d} = \Big(1 - \frac{2\eta\lambda}{D}\Big)^2 \Delta_{j,d}
    + \eta^2\big(\|P_j \hat g_j\|^2 - (P_{j,-d}\langle \hat g_j, \omega_j\rangle)^2\big).

The functions below *derive* the rate, the solution and the contraction factor from the generic
gated objective (:func:`~dgating.theory.parametrization.flow_derivative`), they do not assume them.

Examples
--------
>>> imbalance_rate(3)
4*lam/3
>>> sgd_contraction(4)
(-eta*lam/2 + 1)**2
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import sympy as sp

from .._validation import InvalidParameterError, check_depth
from .parametrization import (
    Parametrization,
    dgating_parametrization,
    flow_derivative,
    loss_gradient_symbols,
)
from .steps import Step, check_identity
from .symbols import eta, g, lam, t

__all__ = [
    "ImbalanceResult",
    "SGDLimitFactors",
    "SGDResult",
    "balancedness_identity",
    "imbalance_dynamics",
    "imbalance_rate",
    "imbalance_rate_of",
    "sgd_contraction",
    "sgd_limit_factors",
    "sgd_recursion",
    "stated_sgd_limit_factors",
]


def _first_law(spec: Parametrization) -> sp.Expr:
    from .conservation import candidate_laws

    return candidate_laws(spec)[0]


@lru_cache(maxsize=128)
def imbalance_rate_of(spec: Parametrization, law: sp.Expr | None = None) -> sp.Expr:
    r"""Derive the rate :math:`\rho` with :math:`\dot h = -\rho h` for an imbalance ``law``.

    :math:`\rho = -\dot h / h` is computed for an undefined :math:`L_0`; an
    :class:`~dgating._validation.InvalidParameterError` is raised if it is not a constant (then
    ``law`` is not an exponentially decaying imbalance).
    """
    h = _first_law(spec) if law is None else law
    ratio = sp.factor(sp.cancel(-sp.expand(flow_derivative(spec, h, lam)) / h))
    if ratio.free_symbols - {lam} or ratio.has(sp.Subs, sp.Derivative):
        raise InvalidParameterError(
            f"`law` must decay exponentially along the flow; got d/dt h / h = {-ratio}."
        )
    return ratio


@cache
def imbalance_rate(depth: int) -> sp.Expr:
    r"""The exact decay rate :math:`4\lambda/D` of :math:`\Delta_{j,d}` along the gradient flow.

    Examples
    --------
    >>> imbalance_rate(2)
    2*lam
    """
    return imbalance_rate_of(dgating_parametrization(check_depth(depth), 1))


def balancedness_identity(depth: int, group_size: int = 1) -> tuple[Step, ...]:
    r"""The identities :math:`\langle\omega, \partial_\omega L\rangle - \gamma_d \partial_{\gamma_d}
    L = \frac{2\lambda}{D}\Delta_d` (docs/theory.md [T-balance]) for an undefined :math:`L_0`, one
    per gate.

    Examples
    --------
    >>> [step.holds for step in balancedness_identity(3, 2)]
    [True, True]
    """
    spec = dgating_parametrization(check_depth(depth), group_size)
    omega, gates = spec.factors[0].symbols, [f.symbols[0] for f in spec.factors[1:]]
    loss = sp.Function("L0")(*spec.weights)
    L = loss + lam * spec.penalty
    sq = sp.Add(*(o**2 for o in omega))
    steps = []
    for d, c in enumerate(gates):
        lhs = sp.Add(*(o * L.diff(o) for o in omega)) - c * L.diff(c)
        lhs = loss_gradient_symbols(spec, lhs)
        steps.append(
            check_identity(
                f"<omega, dL/domega> - gamma_{d + 1} dL/dgamma_{d + 1} = (2 lam/D) Delta_{d + 1}",
                lhs,
                2 * lam / spec.depth * (sq - c**2),
            )
        )
    return tuple(steps)


@dataclass(frozen=True)
class ImbalanceResult:
    r"""Imbalance dynamics along the gradient flow.

    Attributes
    ----------
    rate : sympy.Expr
        :math:`\rho` in :math:`\dot\Delta = -\rho\Delta`.
    solution : sympy.Expr
        :math:`\Delta(t)` from ``sympy.dsolve`` with :math:`\Delta(0) = \Delta_0`.
    steps : tuple of Step
    """

    rate: sp.Expr
    solution: sp.Expr
    steps: tuple[Step, ...]


def imbalance_dynamics(spec: Parametrization) -> ImbalanceResult:
    r"""Derive :math:`\dot\Delta = -\rho\Delta` for the first imbalance of ``spec`` and solve it.

    Examples
    --------
    >>> from dgating.theory.parametrization import dgating_parametrization
    >>> res = imbalance_dynamics(dgating_parametrization(4, 2))
    >>> res.rate, res.solution
    (lam, Delta_0*exp(-lam*t))
    """
    h = _first_law(spec)
    rate = imbalance_rate_of(spec)
    fn = sp.Function("Delta")
    delta0 = sp.Symbol("Delta_0", real=True)
    sol = sp.dsolve(sp.Eq(fn(t).diff(t), -rate * fn(t)), fn(t), ics={fn(0): delta0}).rhs
    steps = (
        check_identity(
            f"d/dt ({h}) = -({rate}) ({h}) for every L0",
            loss_gradient_symbols(spec, sp.expand(flow_derivative(spec, h, lam))),
            -rate * h,
        ),
        check_identity("dsolve: Delta(t) solves the ODE", sol.diff(t), -rate * sol),
        check_identity("dsolve: initial value", sol.subs(t, 0), delta0),
    )
    return ImbalanceResult(rate, sol, steps)


@dataclass(frozen=True)
class SGDResult:
    r"""One step of (S)GD on an imbalance :math:`h`: :math:`h^+ = c\,h + \eta^2 R`.

    Attributes
    ----------
    law : sympy.Expr
        The imbalance :math:`h`.
    contraction : sympy.Expr
        :math:`c` (free of the parameters), e.g. :math:`(1 - 2\eta\lambda/D)^2`.
    remainder : sympy.Expr
        :math:`R` (the :math:`O(\eta^2)` term divided by :math:`\eta^2`), in the gradient
        estimates ``ghat_i``.
    multiplicative : bool
        Whether :math:`R` is a polynomial multiple of :math:`h` (the recursion is then purely
        multiplicative, as for scalar groups).
    step_range : sympy.Set
        The step sizes :math:`\eta > 0` with :math:`c < 1`.
    steps : tuple of Step
    """

    law: sp.Expr
    contraction: sp.Expr
    remainder: sp.Expr
    multiplicative: bool
    step_range: sp.Set
    steps: tuple[Step, ...]


def sgd_recursion(spec: Parametrization) -> SGDResult:
    r"""Derive the exact one-step recursion of the first imbalance of ``spec`` under (S)GD.

    The update is :math:`\theta^+ = \theta - \eta(\partial w^\top \hat g + \frac{2\lambda}{D}
    \theta)` with free symbols :math:`\hat g_i` (any minibatch gradient). The contraction is
    :math:`c = h^+|_{\hat g = 0} / h`; the rest is checked to be :math:`O(\eta^2)`.

    Examples
    --------
    >>> from dgating.theory.parametrization import dgating_parametrization
    >>> res = sgd_recursion(dgating_parametrization(3, 1))
    >>> res.contraction, res.multiplicative, res.step_range
    ((-2*eta*lam/3 + 1)**2, True, Interval.open(0, 3/lam))
    """
    h = _first_law(spec)
    ghat = sp.symbols(" ".join(f"ghat_{lab[2:]}" for lab in spec.weight_labels) + " ,", real=True)
    decay = 2 * lam / spec.depth
    update = {}
    for x in spec.theta:
        grad = sp.Add(*(gi * w.diff(x) for gi, w in zip(ghat, spec.weights)))
        update[x] = x - eta * (grad + decay * x)
    h_plus = sp.expand(h.xreplace(update))
    contraction = sp.factor(sp.cancel(h_plus.subs({gi: 0 for gi in ghat}) / h))
    if contraction.free_symbols - {eta, lam}:
        raise InvalidParameterError(
            f"the imbalance {h} does not contract geometrically; got factor {contraction}."
        )
    poly = sp.Poly(sp.expand(contraction), eta)
    roots = sp.roots(poly)
    if poly.degree() == 2 and len(roots) == 1 and poly.eval(0) == 1:
        # a double root eta_0: write c = (1 - eta/eta_0)^2, the form of docs/theory.md [T-sgd]
        (eta0,) = roots
        contraction = (1 - eta / eta0) ** 2
    rest = sp.expand(h_plus - contraction * h)
    remainder = sp.expand(rest / eta**2)
    # h+ - c h vanishes at eta = 0 by construction; its O(eta) part is the discrete trace of the
    # conservation law (it vanishes only because h is conserved at lam = 0), so it is checked.
    steps = [check_identity("no O(eta^1) remainder: h+ = c h + O(eta^2)", rest.coeff(eta, 1), 0)]
    quotient = sp.cancel(remainder / h)
    multiplicative = sp.denom(quotient) == 1 or not sp.denom(quotient).free_symbols
    step_range = _contraction_range(contraction)
    if spec.name == "dgating" and len(spec.factors[1].labels) == 1:
        omega = spec.factors[0].symbols
        gates = [f.symbols[0] for f in spec.factors[1:]]
        P = sp.Mul(*gates)
        P_minus = sp.Mul(*gates[1:])
        inner = sp.Add(*(gi * o for gi, o in zip(ghat, omega)))
        theory = sp.Add(*((P * gi) ** 2 for gi in ghat)) - (P_minus * inner) ** 2
        steps.append(
            check_identity(
                "R = ||P ghat||^2 - (P_{-d} <ghat, omega>)^2 ([T-sgd])", remainder, theory
            )
        )
    return SGDResult(h, contraction, remainder, bool(multiplicative), step_range, tuple(steps))


@lru_cache(maxsize=64)
def _contraction_range(contraction: sp.Expr) -> sp.Set:
    r"""Step sizes :math:`\eta > 0` with ``contraction < 1`` (cached: it depends on D only)."""
    return sp.solve_univariate_inequality(contraction < 1, eta, relational=False)


@cache
def sgd_contraction(depth: int) -> sp.Expr:
    r"""The contraction factor :math:`(1 - 2\eta\lambda/D)^2` of :math:`\Delta_{j,d}` per step.

    Examples
    --------
    >>> sgd_contraction(2)
    (-eta*lam + 1)**2
    """
    return sgd_recursion(dgating_parametrization(check_depth(depth), 1)).contraction


@dataclass(frozen=True)
class SGDLimitFactors:
    r"""Per-step factor of the imbalance of a *scalar* group near its limit under GD.

    For :math:`p_j = 1` the recursion is multiplicative, :math:`\Delta^+ = f\,\Delta` with
    :math:`f = c + \eta^2 R/\Delta` (:func:`sgd_recursion`). Its limits:

    Attributes
    ----------
    per_step : sympy.Expr
        :math:`f` in the parameters and the gradient estimate ``ghat``.
    vanishing : sympy.Expr
        :math:`f` at a group that converges to 0 with :math:`\hat g \to g^*`,
        :math:`|g^*| = g`: :math:`(1 - 2\eta\lambda/D)^2` for :math:`D \ge 3` (the other gates
        vanish) and :math:`(1 - \eta\lambda)^2 - \eta^2 g^2` for :math:`D = 2` (no other gate).
    surviving : sympy.Expr
        :math:`f` at a balanced stationary point with :math:`w \ne 0` (full-batch GD):
        :math:`1 - 4\eta\lambda/D`, the explicit Euler factor of the flow rate.
    hypotheses : tuple of str
    steps : tuple of Step
    """

    per_step: sp.Expr
    vanishing: sp.Expr
    surviving: sp.Expr
    hypotheses: tuple[str, ...]
    steps: tuple[Step, ...]


def stated_sgd_limit_factors(depth: int) -> dict[str, sp.Expr]:
    r"""The limit factors of scalar groups as stated in the theory ([T-sgd]), to be checked.

    Examples
    --------
    >>> stated_sgd_limit_factors(2)["vanishing"]
    -eta**2*g**2 + (-eta*lam + 1)**2
    """
    D = check_depth(depth)
    c = (1 - 2 * eta * lam / D) ** 2
    vanishing = (1 - eta * lam) ** 2 - eta**2 * g**2 if D == 2 else c
    return {"vanishing": vanishing, "surviving": 1 - 4 * eta * lam / D}


@cache
def sgd_limit_factors(depth: int) -> SGDLimitFactors:
    r"""Derive the per-step imbalance factor of scalar groups at their limits ([T-sgd]).

    The exact factor :math:`f = c + \eta^2 R/\Delta` is evaluated (1) at the origin with the
    gradient estimate at its limit :math:`g^*` (a vanishing group under full-batch GD) and (2) at a
    balanced stationary point :math:`|\gamma_d| = |\omega|`,
    :math:`g^* = -\frac{2\lambda}{D}\omega/P` (a surviving group); both are compared with
    :func:`stated_sgd_limit_factors`.

    Examples
    --------
    >>> res = sgd_limit_factors(2)
    >>> sp.expand(res.vanishing)
    -eta**2*g**2 + eta**2*lam**2 - 2*eta*lam + 1
    >>> res.surviving
    -2*eta*lam + 1
    """
    D = check_depth(depth)
    spec = dgating_parametrization(D, 1)
    rec = sgd_recursion(spec)
    per_step = sp.expand(rec.contraction + eta**2 * sp.cancel(rec.remainder / rec.law))
    (ghat,) = sorted(per_step.free_symbols - set(spec.theta) - {eta, lam}, key=str)
    (omega,) = spec.factors[0].symbols
    gates = [f.symbols[0] for f in spec.factors[1:]]
    vanishing = sp.factor(per_step.subs({x: 0 for x in spec.theta}).subs(ghat, g))
    n = sp.Symbol("n", positive=True)  # |omega| = |gamma_d| at the balanced limit
    stationary = {ghat: -2 * lam / D * n / n ** (D - 1), omega: n, **{c: n for c in gates}}
    surviving = sp.factor(per_step.subs(stationary))
    stated = stated_sgd_limit_factors(D)
    steps = (
        check_identity(
            "scalar groups: Delta+ / Delta is free of omega once Delta factors out",
            sp.Integer(int(rec.multiplicative)),
            1,
        ),
        check_identity(
            "factor at a vanishing scalar group = stated", vanishing, stated["vanishing"]
        ),
        check_identity(
            "factor at a surviving scalar group = stated", surviving, stated["surviving"]
        ),
    )
    hypotheses = (
        "scalar group (p_j = 1): the recursion is multiplicative",
        "vanishing: full-batch GD, the group's parameters tend to 0 and ghat_j -> g_j*, |g_j*| = g",
        "surviving: full-batch GD converging to a balanced stationary point with w_j != 0",
    )
    return SGDLimitFactors(per_step, vanishing, surviving, hypotheses, steps)
