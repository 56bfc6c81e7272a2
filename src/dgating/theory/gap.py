r"""The objective gap :math:`L - L_w` and its asymptotic decay rate by group class.

**Identity** (docs/theory.md [T-gap]). With :math:`a_0 = \|\omega_j\|^2`, :math:`a_d =
\gamma_{j,d}^2`,

.. math::
    L - L_w = \lambda \sum_j (AM_j - GM_j), \qquad
    AM_j - GM_j \le \frac{D-1}{D}\sum_d |\Delta_{j,d}|
    = \frac{D-1}{D}\, e^{-4\lambda t/D}\sum_d |\Delta_{j,d}(0)|.

**Rates** along the gradient flow with :math:`\lambda > 0` (derived in :func:`gap_rates`):

* *surviving* groups (:math:`\|w_j\| \to` a non-zero limit): :math:`AM - GM` is quadratic in the
  imbalances, rate :math:`2 \cdot 4\lambda/D = 8\lambda/D`;
* *vanishing* groups, :math:`D \ge 3`: the Hessian at 0 is :math:`\frac{2\lambda}{D} I`, every
  :math:`a_k \sim c_k e^{-4\lambda t/D}` and :math:`AM - GM` is 1-homogeneous: rate
  :math:`4\lambda/D`;
* *vanishing* groups, :math:`D = 2`: the Hessian block at 0 has eigenvalues
  :math:`\lambda \pm \|g_j^*\|` (and :math:`\lambda`), :math:`AM - GM = \Delta^2 / (2(\sqrt{a_0} +
  \sqrt{a_1})^2)`, so the rate is :math:`2\cdot 2\lambda - 2(\lambda - g) = 2\lambda + 2g` with
  :math:`g = \|g_j^*\| \le \lambda`.

The gap of a problem decays at the minimum of the rates of the classes present.

Examples
--------
>>> gap_rates(3)
{'surviving': 8*lam/3, 'vanishing': 4*lam/3}
>>> gap_rates(2)
{'surviving': 4*lam, 'vanishing': 2*g + 2*lam}
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from .._validation import check_depth, check_positive
from .balancedness import imbalance_rate
from .parametrization import dgating_parametrization
from .steps import Step, check_identity
from .symbols import eps, g, lam, t

__all__ = [
    "GapRateResult",
    "check_gap_rate",
    "gap_bound",
    "gap_identity",
    "gap_rates",
    "surviving_gap_rate",
    "vanishing_gap_rate",
]


def gap_identity(depth: int, group_size: int = 1) -> tuple[Step, ...]:
    r"""Check :math:`L - L_w = \lambda (AM - GM)` for one group with an undefined :math:`L_0`.

    Examples
    --------
    >>> [step.holds for step in gap_identity(3, 2)]
    [True]
    """
    spec = dgating_parametrization(check_depth(depth), group_size)
    D = spec.depth
    omega = spec.factors[0].symbols
    gates = [f.symbols[0] for f in spec.factors[1:]]
    loss = sp.Function("L0")(*spec.weights)
    norm_w_sq = sp.factor(sp.Add(*(w**2 for w in spec.weights)))
    L = loss + lam * spec.penalty
    L_w = loss + lam * norm_w_sq ** sp.Rational(1, D)
    a = [sp.Add(*(o**2 for o in omega))] + [c**2 for c in gates]
    am = sp.Add(*a) / D
    gm = sp.Mul(*a) ** sp.Rational(1, D)
    return (check_identity("L - L_w = lam (AM - GM)", L - L_w, lam * (am - gm)),)


def gap_bound(depth: int) -> tuple[sp.Expr, tuple[Step, ...]]:
    r"""Derive the constant :math:`C_D` in :math:`AM - GM \le C_D \sum_d |\Delta_d|`.

    :math:`GM \ge \min_k a_k`, so :math:`AM - GM \le AM - a_m` for the smallest :math:`a_m`.
    Each :math:`AM - a_m` is a linear combination :math:`\sum_d c_{m,d}\Delta_d` (checked), hence
    :math:`C_D = \max_{m,d} |c_{m,d}|`.

    Examples
    --------
    >>> gap_bound(4)[0]
    3/4
    """
    D = check_depth(depth)
    A = sp.Symbol("a_0", positive=True)
    deltas = sp.symbols(f"Delta_1:{D}", real=True)
    a = [A] + [A - dl for dl in deltas]
    am = sp.Add(*a) / D
    steps = []
    coeffs = []
    for m, am_ in enumerate(a):
        diff = sp.expand(am - am_)
        cs = [diff.coeff(dl) for dl in deltas]
        steps.append(
            check_identity(
                f"AM - a_{m} in imbalances", diff, sp.Add(*(c * dl for c, dl in zip(cs, deltas)))
            )
        )
        coeffs.extend(abs(c) for c in cs)
    bound = sp.Max(*coeffs)
    steps.append(check_identity("C_D = (D - 1)/D", bound, sp.Rational(D - 1, D)))
    return bound, tuple(steps)


@dataclass(frozen=True)
class GapRateResult:
    r"""Asymptotic gap of one group class.

    Attributes
    ----------
    group_class : {"surviving", "vanishing"}
    rate : sympy.Expr
        :math:`\rho` with :math:`AM - GM \asymp e^{-\rho t}`.
    asymptotic : sympy.Expr
        The leading term of :math:`AM - GM` as a function of ``t``.
    steps : tuple of Step
    """

    group_class: str
    rate: sp.Expr
    asymptotic: sp.Expr
    steps: tuple[Step, ...]


def check_gap_rate(asymptotic: sp.Expr, rate: sp.Expr, name: str = "") -> Step:
    r"""Check :math:`-\frac{d}{dt}\log(\text{asymptotic}) = \text{rate}`.

    Examples
    --------
    >>> from dgating.theory.symbols import lam, t
    >>> check_gap_rate(5 * sp.exp(-8 * lam * t / 3), 8 * lam / 3).holds
    True
    >>> check_gap_rate(5 * sp.exp(-8 * lam * t / 3), 4 * lam / 3).holds  # wrong rate
    False
    """
    lhs = -sp.diff(sp.expand_log(sp.log(asymptotic), force=True), t)
    return check_identity(name or f"-d/dt log(gap) = {rate}", lhs, rate)


@cache
def surviving_gap_rate(depth: int) -> GapRateResult:
    r"""Rate of :math:`AM - GM` for a group whose norm tends to a non-zero limit.

    With :math:`a_0 = A` and :math:`a_d = A - \varepsilon\delta_d` (:math:`\Delta_d =
    \varepsilon\delta_d`), a series in :math:`\varepsilon` gives no linear term and the quadratic
    term :math:`\frac{\varepsilon^2}{2A}\operatorname{var}(0, \delta_1, \dots, \delta_{D-1})`,
    positive unless all :math:`\Delta_d = 0`. Along the flow :math:`\varepsilon = e^{-\rho t}`
    exactly (:math:`\rho = 4\lambda/D`) and :math:`A(t) \to A^* > 0`, so the rate is
    :math:`2\rho`.

    Examples
    --------
    >>> surviving_gap_rate(4).rate
    2*lam
    """
    D = check_depth(depth)
    A = sp.Symbol("A", positive=True)
    delta = (sp.S.Zero,) + sp.symbols(f"delta_1:{D}", real=True)
    a = [A - eps * dl for dl in delta]
    am = sp.Add(*a) / D
    # GM = A prod_k (1 - eps delta_k / A)^(1/D); expand each factor, then the product.
    gm = A
    for dl in delta[1:]:
        factor = sp.series((1 - eps * dl / A) ** sp.Rational(1, D), eps, 0, 3).removeO()
        prod = sp.expand(gm * factor)
        gm = sp.Add(*(prod.coeff(eps, k) * eps**k for k in range(3)))  # truncate at O(eps^3)
    series = sp.expand(am - gm)
    c0, c1, c2 = (series.coeff(eps, k) for k in range(3))
    mean = sp.Add(*delta) / D
    var = sp.Add(*(dl**2 for dl in delta)) / D - mean**2
    rho = imbalance_rate(D)
    asym = c2 * sp.exp(-2 * rho * t)
    steps = [
        check_identity("AM - GM at eps = 0", c0, 0),
        check_identity("no linear term in the imbalances", c1, 0),
        check_identity("quadratic term = var(0, delta_1..)/(2A)", c2, var / (2 * A)),
        check_identity("Delta(t) = eps delta with eps = exp(-rho t)", rho, imbalance_rate(D)),
    ]
    rate = sp.factor(-sp.diff(sp.log(asym), t))
    steps.append(check_gap_rate(asym, rate, "surviving: -d/dt log(gap) = 2 rho"))
    steps.append(check_identity("surviving rate = 2 x imbalance rate", rate, 2 * rho))
    return GapRateResult("surviving", rate, asym, tuple(steps))


def _hessian_at_zero(depth: int, group_size: int) -> tuple[sp.Matrix, tuple]:
    r"""Hessian of :math:`L = L_0(w(\theta)) + \frac{\lambda}{D}\|\theta\|^2` at 0.

        Chain rule for a generic :math:`L_0` with gradient ``g_i`` and Hessian ``h_i_k`` at
        :math:`w = 0`: :math:`
    abla^2 L = J^	op h J + \sum_i g_i
    abla^2 w_i + 
rac{2\lambda}{D} I`.
    """
    spec = dgating_parametrization(depth, group_size)
    theta = spec.theta
    p = spec.n_weights
    gs = tuple(sp.Symbol(f"g_{lab[2:]}", real=True) for lab in spec.weight_labels)
    h = sp.Matrix(p, p, lambda i, k: sp.Symbol(f"h_{min(i, k) + 1}_{max(i, k) + 1}", real=True))
    zero = {x: 0 for x in theta}
    J = sp.Matrix(spec.weights).jacobian(theta).subs(zero)
    curvature = sp.hessian(sp.Add(*(gi * w for gi, w in zip(gs, spec.weights))), theta).subs(zero)
    H = J.T * h * J + curvature + sp.hessian(lam * spec.penalty, theta)
    return H, gs


@cache
def vanishing_gap_rate(depth: int, group_size: int = 1) -> GapRateResult:
    r"""Rate of :math:`AM - GM` for a group that converges to 0.

    The linearisation of the flow at :math:`(\omega_j, \gamma_j) = 0` is
    :math:`\dot\theta = -H\theta` with :math:`H` the Hessian of :math:`L` there (computed for an
    undefined :math:`L_0`; ``g_i`` are the entries of :math:`g_j^* = \nabla_{w_j} L_0`).

    * :math:`D \ge 3`: :math:`H = \frac{2\lambda}{D} I` (the coupling :math:`P_j g_j` is of order
      :math:`D - 1 \ge 2`, and no resonance :math:`\mu = m\mu`, :math:`m \ge 2`, exists), so
      :math:`a_k = c_k e^{-4\lambda t/D}(1 + o(1))`; :math:`AM - GM` is 1-homogeneous in
      :math:`a` and :math:`c_0 - c_d = \Delta_d(0) \ne 0`: rate :math:`4\lambda/D`.
    * :math:`D = 2`: the slowest mode, rate :math:`\lambda - g`, is balanced
      (:math:`\omega \propto g_j^*`, :math:`\gamma = -g`), so
      :math:`\sqrt{a_0} + \sqrt{a_1} \sim 2c\, e^{-(\lambda - g)t}` while
      :math:`\Delta \propto e^{-2\lambda t}`: rate :math:`2\lambda + 2g`
      (valid for :math:`g < \lambda`; the zero group is a local minimum iff :math:`g \le \lambda`).

    Examples
    --------
    >>> vanishing_gap_rate(5).rate
    4*lam/5
    """
    D = check_depth(depth)
    p = int(check_positive(group_size, "group_size", integer=True))
    H, gs = _hessian_at_zero(D, p)
    n = H.shape[0]
    rho = imbalance_rate(D)
    steps: list[Step] = []
    if D >= 3:
        mu = 2 * lam / D
        steps.append(check_identity("Hessian at 0 = (2 lam/D) I", H, mu * sp.eye(n)))
        c = sp.symbols(f"c_0:{D}", positive=True)
        s = sp.Symbol("s", positive=True)
        amgm = sp.Add(*c) / D - sp.Mul(*c) ** sp.Rational(1, D)
        scaled = amgm.xreplace({ck: s * ck for ck in c})
        steps.append(check_identity("AM - GM is 1-homogeneous", scaled, s * amgm))
        steps.append(check_identity("imbalances decay like the a_k (rho = 2 mu)", rho, 2 * mu))
        asym = amgm * sp.exp(-2 * mu * t)
    else:
        x = sp.Symbol("x")
        norm_sq = sp.Add(*(gi**2 for gi in gs))
        steps.append(
            check_identity(
                "Hessian at 0",
                H,
                sp.Matrix(
                    sp.BlockMatrix(
                        [[lam * sp.eye(p), sp.Matrix(gs)], [sp.Matrix(gs).T, sp.Matrix([[lam]])]]
                    )
                ),
            )
        )
        # the characteristic polynomial depends on g_j* only through g = ||g_j*||
        charpoly = sp.expand(H.charpoly(x).as_expr())
        charpoly = sp.expand(charpoly.subs(gs[0] ** 2, g**2 - (norm_sq - gs[0] ** 2)))
        steps.append(
            check_identity(
                "charpoly is a function of ||g_j*|| only",
                sp.Integer(len(charpoly.free_symbols & set(gs))),
                0,
            )
        )
        eig = sp.roots(sp.factor(charpoly), x)
        mu = next(e for e in eig if all((o - e).is_nonnegative for o in eig))
        steps.append(check_identity("slowest decay rate of the linearisation", mu, lam - g))
        v = sp.Matrix([*gs, -g])
        residual = (H * v - mu * v).subs(g, sp.sqrt(norm_sq))
        steps.append(
            check_identity(
                "slow mode (g_j*, -||g_j*||) is an eigenvector", residual, sp.zeros(n, 1)
            )
        )
        steps.append(
            check_identity(
                "slow mode is balanced: ||omega||^2 = gamma^2",
                norm_sq,
                (v[-1] ** 2).subs(g, sp.sqrt(norm_sq)),
            )
        )
        a0, a1 = sp.symbols("a_0 a_1", positive=True)
        steps.append(
            check_identity(
                "D = 2: AM - GM = Delta^2 / (2 (sqrt(a0) + sqrt(a1))^2)",
                (a0 + a1) / 2 - sp.sqrt(a0 * a1),
                (a0 - a1) ** 2 / (2 * (sp.sqrt(a0) + sp.sqrt(a1)) ** 2),
            )
        )
        delta0, c0 = sp.Symbol("Delta_0", positive=True), sp.Symbol("c", positive=True)
        asym = (delta0 * sp.exp(-rho * t)) ** 2 / (2 * (2 * c0 * sp.exp(-mu * t)) ** 2)
    rate = sp.factor(-sp.diff(sp.expand_log(sp.log(asym), force=True), t))
    rate = sp.expand(rate)
    steps.append(check_gap_rate(asym, rate, "vanishing: -d/dt log(gap)"))
    return GapRateResult("vanishing", rate, asym, tuple(steps))


def gap_rates(depth: int) -> dict[str, sp.Expr]:
    r"""Asymptotic decay rates of :math:`AM_j - GM_j` by group class, derived symbolically.

    Parameters
    ----------
    depth : int
        :math:`D \ge 2`.

    Returns
    -------
    dict
        ``{"surviving": rate, "vanishing": rate}`` in the symbols ``lam`` (and ``g`` =
        :math:`\|g_j^*\|` for :math:`D = 2`) of :mod:`dgating.theory.symbols`.

    Examples
    --------
    >>> gap_rates(4)["vanishing"]
    lam
    """
    D = check_depth(depth)
    # a fresh dict per call: the cached results must not be mutated by callers
    return {"surviving": surviving_gap_rate(D).rate, "vanishing": vanishing_gap_rate(D).rate}
