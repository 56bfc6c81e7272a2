r"""The objective gap :math:`L - L_w` and its asymptotic decay rate by group class.

**Identity** (docs/theory.md [T-gap]). With :math:`a_0 = \|\omega_j\|^2` and
:math:`a_d = \gamma_{j,d}^2`,

.. math::
    L - L_w = \lambda \sum_j (AM_j - GM_j), \qquad
    AM_j - GM_j \le \frac{D-1}{D}\sum_d |\Delta_{j,d}|
    = \frac{D-1}{D}\, e^{-4\lambda t/D}\sum_d |\Delta_{j,d}(0)|.

**Rates** along the gradient flow with :math:`\lambda > 0`. They are *derived from the flow*: the
vector field is linearised at the limit of the group, its eigen-structure is computed by sympy,
and :math:`AM - GM` is expanded along the slowest modes. The exact imbalance decay
:math:`\Delta(t) = \Delta(0) e^{-\rho t}` comes from
:func:`~dgating.theory.balancedness.imbalance_dynamics`. Each derived rate is then compared with
the statement (:func:`stated_gap_rates`); the conditions under which it holds are returned as
explicit hypotheses.

* *surviving* groups (limit: a balanced stationary point with :math:`w_j^* \ne 0`): every
  :math:`\nabla\Delta_{j,d}` is an eigenvector of :math:`\nabla^2 L` with eigenvalue
  :math:`\rho`, :math:`AM - GM` is a positive definite quadratic form in the imbalances, so the
  rate is :math:`2\rho = 8\lambda/D`;
* *vanishing* groups, :math:`D \ge 3`: :math:`\nabla^2 L(0)` has the single eigenvalue
  :math:`\mu = \rho/2`, every :math:`a_k \sim \alpha_k e^{-2\mu t}` and :math:`AM - GM` is
  1-homogeneous: rate :math:`2\mu = 4\lambda/D`;
* *vanishing* groups, :math:`D = 2`: :math:`\nabla^2 L(0)` has the eigenvalues
  :math:`\lambda - g, \lambda, \lambda + g` (:math:`g = \|g_j^*\|`); the slow and the fast modes
  are balanced, :math:`AM - GM = \Delta^2 / (2(\sqrt{a_0} + \sqrt{a_1})^2)` with
  :math:`\sqrt{a_0} + \sqrt{a_1}` carried by the slow mode: rate
  :math:`2\rho - 2(\lambda - g) = 2\lambda + 2g`.

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
from .balancedness import imbalance_dynamics
from .parametrization import Parametrization, dgating_parametrization
from .steps import Step, check_identity, check_inequality
from .symbols import eps, g, lam, t

__all__ = [
    "GapRateResult",
    "gap_bound",
    "gap_identity",
    "gap_rates",
    "stated_gap_rates",
    "surviving_gap_rate",
    "vanishing_gap_rate",
]


def stated_gap_rates(depth: int) -> dict[str, sp.Expr]:
    r"""The asymptotic gap rates as stated in the theory (docs/theory.md [T-gap]), to be checked.

    :func:`surviving_gap_rate` and :func:`vanishing_gap_rate` derive the rates from the flow and
    compare them with these expressions; nothing here enters a derivation.

    Examples
    --------
    >>> stated_gap_rates(2)
    {'surviving': 4*lam, 'vanishing': 2*g + 2*lam}
    """
    D = check_depth(depth)
    vanishing = 2 * lam + 2 * g if D == 2 else 4 * lam / D
    return {"surviving": 8 * lam / D, "vanishing": vanishing}


def _am_gm(a: list[sp.Expr]) -> sp.Expr:
    return sp.Add(*a) / len(a) - sp.Mul(*a) ** sp.Rational(1, len(a))


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
    return (check_identity("L - L_w = lam (AM - GM)", L - L_w, lam * _am_gm(a)),)


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
    r"""Asymptotic gap of one group class, derived from the flow.

    Attributes
    ----------
    group_class : {"surviving", "vanishing"}
    rate : sympy.Expr
        The derived :math:`\rho_{gap}` with :math:`AM - GM \asymp e^{-\rho_{gap} t}`.
    stated : sympy.Expr
        The rate of :func:`stated_gap_rates`, compared with ``rate`` in the last step.
    leading : sympy.Expr
        The leading term of :math:`AM - GM` as a function of ``t``, built from derived
        quantities (the imbalance solution, the eigenvalues and eigenvectors).
    hypotheses : tuple of str
        The conditions under which ``leading`` is the leading term.
    steps : tuple of Step
        Checked steps; each depends on the derivation (none compares an expression with itself).
    """

    group_class: str
    rate: sp.Expr
    stated: sp.Expr
    leading: sp.Expr
    hypotheses: tuple[str, ...]
    steps: tuple[Step, ...]

    @property
    def holds(self) -> bool:
        """Whether every step holds (the last one compares the derived and the stated rate)."""
        return all(step.holds for step in self.steps)


def _decay_rate(leading: sp.Expr) -> sp.Expr:
    r""":math:`-\frac{d}{dt}\log(\text{leading})`, simplified (constant for an exponential)."""
    return sp.expand(sp.simplify(-sp.diff(sp.expand_log(sp.log(leading), force=True), t)))


def _linearisation(spec: Parametrization) -> tuple[sp.Matrix, sp.Matrix, tuple[sp.Symbol, ...]]:
    r"""Hessian and gradient of :math:`L = L_0(w(\theta)) + \lambda\,\mathrm{pen}(\theta)`.

    :math:`L_0` enters through symbols: ``g_i`` for :math:`\partial_i L_0` and ``h_i_k`` for
    :math:`\partial_i\partial_k L_0` at :math:`w(\theta)`, so
    :math:`\nabla^2 L = J^\top h J + \sum_i g_i \nabla^2 w_i + \lambda \nabla^2 \mathrm{pen}`
    (the Jacobian of the flow :math:`\dot\theta = -\nabla L` is :math:`-\nabla^2 L`).
    """
    theta = spec.theta
    p = spec.n_weights
    gs = tuple(sp.Symbol(f"g_{lab[2:]}", real=True) for lab in spec.weight_labels)
    h = sp.Matrix(p, p, lambda i, k: sp.Symbol(f"h_{min(i, k) + 1}_{max(i, k) + 1}", real=True))
    J = sp.Matrix(spec.weights).jacobian(theta)
    coupling = sp.Add(*(gi * w for gi, w in zip(gs, spec.weights)))
    penalty = lam * spec.penalty
    H = J.T * h * J + sp.hessian(coupling, theta) + sp.hessian(penalty, theta)
    grad = J.T * sp.Matrix(gs) + sp.Matrix([penalty.diff(x) for x in theta])
    return H, grad, gs


@cache
def surviving_gap_rate(depth: int, group_size: int = 1) -> GapRateResult:
    r"""Rate of :math:`AM - GM` for a group whose norm tends to a non-zero limit.

    1. *Linearisation at the limit.* At every balanced stationary point
       (:math:`|\gamma_d| = \|\omega\|`, :math:`g^* = -\frac{2\lambda}{D}\omega/P`; by the
       rotation invariance of the penalty and of :math:`\Delta`, :math:`\omega = n e_1`), each
       :math:`\nabla\Delta_d` is an eigenvector of :math:`\nabla^2 L` with the eigenvalue
       :math:`\rho` of the exact law :math:`\dot\Delta_d = -\rho\Delta_d`, for every
       :math:`L_0`: the imbalance directions decay at :math:`\rho` in the linearised flow too.
    2. *Expansion.* With :math:`a_0 = A`, :math:`a_d = A - \varepsilon\delta_d`, the series of
       :math:`AM - GM` in :math:`\varepsilon` starts at order 2 with a positive definite quadratic
       form in :math:`\delta` (derived).
    3. *Rate.* :math:`\varepsilon(t) = \Delta(t)/\Delta(0)` from ``dsolve``, and
       :math:`A(t) \to A^*`: the leading term is :math:`q(\delta)/A^*\,\varepsilon(t)^2`.

    Examples
    --------
    >>> res = surviving_gap_rate(4)
    >>> res.rate, res.holds
    (2*lam, True)
    """
    D = check_depth(depth)
    p = int(check_positive(group_size, "group_size", integer=True))
    spec = dgating_parametrization(D, p)
    dyn = imbalance_dynamics(spec)
    rho = dyn.rate
    steps: list[Step] = []

    # 1. linearisation at a balanced stationary point: omega = n e_1 (the penalty and the
    # imbalances are invariant under rotations of omega, and L0 is generic), gates = n (the
    # positive branch; sign flips are symmetries), g* = -(2 lam/D) omega / P.
    H, grad, gs = _linearisation(spec)
    omega = spec.factors[0].symbols
    gates = [f.symbols[0] for f in spec.factors[1:]]
    n = sp.Symbol("n", positive=True)
    at_limit = {c: n for c in gates}
    at_limit.update({o: (n if i == 0 else 0) for i, o in enumerate(omega)})
    at_limit.update({gi: (-2 * lam / D * n ** (2 - D) if i == 0 else 0) for i, gi in enumerate(gs)})
    steps.append(
        check_identity(
            "the balanced point with g* = -(2 lam/D) omega/P is stationary",
            grad.xreplace(at_limit),
            sp.zeros(len(spec.theta), 1),
        )
    )
    H_limit = H.xreplace(at_limit)
    sq_omega = sp.Add(*(o**2 for o in omega))
    for d, c in enumerate(gates, start=1):
        v = sp.Matrix([(sq_omega - c**2).diff(x) for x in spec.theta]).xreplace(at_limit)
        steps.append(
            check_identity(
                f"grad Delta_{d} is an eigenvector of the Hessian with eigenvalue rho",
                H_limit * v,
                rho * v,
            )
        )

    # 2. expansion of AM - GM in the imbalances
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
    steps += [
        check_identity("AM - GM vanishes at balance", c0, 0),
        check_identity("no linear term in the imbalances", c1, 0),
        check_identity("quadratic term = var(0, delta_1, ...)/(2A)", c2, var / (2 * A)),
    ]
    form = sp.hessian(c2, delta[1:])  # positive definite: every leading principal minor > 0
    for k in range(1, D):
        minor = sp.factor(form[:k, :k].det())
        steps.append(
            check_inequality(f"quadratic form: leading minor {k} > 0", minor, 0, strict=True)
        )

    # 3. leading term along the flow and its rate
    order = next(k for k, c in enumerate((c0, c1, c2)) if sp.simplify(c) != 0)
    decay = dyn.solution / sp.Symbol("Delta_0", real=True)  # eps(t) = Delta(t)/Delta(0)
    A_star = sp.Symbol("A_star", positive=True)
    leading = (c0, c1, c2)[order].subs(A, A_star) * decay**order
    rate = _decay_rate(leading)
    stated = stated_gap_rates(D)["surviving"]
    steps.append(check_identity("surviving gap rate = stated rate", rate, stated))
    hypotheses = (
        "the group converges to a balanced stationary point with A* = lim ||omega_j||^2 > 0",
        "not every Delta_{j,d}(0) is 0 (a balanced group has zero gap for all t)",
    )
    return GapRateResult("surviving", rate, stated, leading, hypotheses, tuple(steps))


@cache
def vanishing_gap_rate(depth: int, group_size: int = 1) -> GapRateResult:
    r"""Rate of :math:`AM - GM` for a group that converges to 0.

    The flow :math:`\dot\theta = -\nabla L` is linearised at :math:`(\omega_j, \gamma_j) = 0`:
    :math:`\dot\theta = -H\theta` with :math:`H = \nabla^2 L(0)` computed for an undefined
    :math:`L_0` (``g_i``: the entries of :math:`g_j^* = \nabla_{w_j} L_0` at the limit).

    * :math:`D \ge 3`: sympy finds one eigenvalue :math:`\mu` (:math:`H = \mu I`; the coupling
      :math:`P_j g_j` is of order :math:`D - 1 \ge 2`), which equals :math:`\rho/2`; then
      :math:`a_k = \alpha_k e^{-2\mu t}(1 + o(1))` and the 1-homogeneity of :math:`AM - GM` gives
      the rate :math:`2\mu`.
    * :math:`D = 2`: the characteristic polynomial depends on :math:`g_j^*` only through
      :math:`g = \|g_j^*\|`, so :math:`g_j^* = g e_1` without loss of generality. sympy's
      eigenvectors show that the slow (:math:`\lambda - g`) and fast (:math:`\lambda + g`) modes
      are balanced and that the linearised imbalance decays at :math:`\rho`; with
      :math:`AM - GM = \Delta^2/(2(\sqrt{a_0} + \sqrt{a_1})^2)` and the slow mode carrying
      :math:`\sqrt{a_0} + \sqrt{a_1}`, the rate is :math:`2\rho - 2\mu_{slow}`.

    Examples
    --------
    >>> vanishing_gap_rate(5).rate
    4*lam/5
    """
    D = check_depth(depth)
    p = int(check_positive(group_size, "group_size", integer=True))
    spec = dgating_parametrization(D, p)
    dyn = imbalance_dynamics(spec)
    rho = dyn.rate
    H, _, gs = _linearisation(spec)
    H0 = H.xreplace({x: 0 for x in spec.theta})
    n = H0.shape[0]
    stated = stated_gap_rates(D)["vanishing"]
    steps: list[Step] = []
    if D >= 3:
        mu = next(iter(H0.eigenvals()))  # the next step fails if there are others
        steps.append(check_identity("Hessian at 0 = mu I (one eigenvalue)", H0, mu * sp.eye(n)))
        steps.append(check_identity("rho = 2 mu: imbalances decay at twice mu", rho, 2 * mu))
        alpha = sp.symbols(f"alpha_0:{D}", positive=True)
        s = sp.Symbol("s", positive=True)
        amgm = _am_gm(list(alpha))
        steps.append(
            check_identity(
                "AM - GM is 1-homogeneous", amgm.xreplace({x: s * x for x in alpha}), s * amgm
            )
        )
        leading = amgm * sp.exp(-2 * mu * t)  # a_k = alpha_k exp(-2 mu t), by homogeneity
        hypotheses = (
            "the group converges to 0 and theta(t) exp(mu t) has a non-zero limit c",
            "alpha_k = squared norms of the blocks of c are not all equal "
            "(equivalently, some Delta_{j,d}(0) != 0, since Delta_{j,d}(t) exp(rho t) is constant)",
        )
    else:
        x = sp.Symbol("x")
        norm_sq = sp.Add(*(gi**2 for gi in gs))
        charpoly = sp.expand(H0.charpoly(x).as_expr())
        charpoly = sp.expand(charpoly.subs(gs[0] ** 2, g**2 - (norm_sq - gs[0] ** 2)))
        steps.append(
            check_identity(
                "charpoly is a function of ||g_j*|| only",
                sp.Integer(len(charpoly.free_symbols & set(gs))),
                0,
            )
        )
        H0 = H0.subs({gi: (g if i == 0 else 0) for i, gi in enumerate(gs)})
        modes = [(val, vec) for val, _, vecs in H0.eigenvects() for vec in vecs]
        values = sorted({val for val, _ in modes}, key=sp.default_sort_key)
        stated_eigenvalues = {lam - g, lam + g} | ({lam} if p > 1 else set())
        steps.append(
            check_identity(
                "eigenvalues of the Hessian at 0: lam - g, lam, lam + g",
                sp.Matrix(values),
                sp.Matrix(sorted(stated_eigenvalues, key=sp.default_sort_key)),
            )
        )
        slow = next(v for v in values if all((o - v).is_nonnegative for o in values))
        fast = next(v for v in values if all((v - o).is_nonnegative for o in values))
        coeffs = sp.symbols(f"c_1:{n + 1}", real=True)
        theta_t = sp.zeros(n, 1)
        for c, (val, vec) in zip(coeffs, modes):
            theta_t += c * vec * sp.exp(-val * t)
        omega_t, gamma_t = theta_t[:p, 0], theta_t[p, 0]
        imbalance_t = sp.expand((omega_t.T * omega_t)[0, 0] - gamma_t**2)
        steps.append(
            check_identity(
                "linearised flow: d/dt Delta = -rho Delta", imbalance_t.diff(t), -rho * imbalance_t
            )
        )
        norms = {}
        for name, val in (("slow", slow), ("fast", fast)):
            (vec,) = [v for mv, v in modes if mv == val]
            steps.append(
                check_identity(
                    f"{name} mode is balanced: ||omega||^2 = gamma^2",
                    (vec[:p, 0].T * vec[:p, 0])[0, 0],
                    vec[p, 0] ** 2,
                )
            )
            norms[name] = sp.sqrt((vec[:p, 0].T * vec[:p, 0])[0, 0]) + sp.Abs(vec[p, 0])
        a0, a1 = sp.symbols("a_0 a_1", positive=True)
        steps.append(
            check_identity(
                "D = 2: AM - GM = Delta^2 / (2 (sqrt(a0) + sqrt(a1))^2)",
                _am_gm([a0, a1]),
                (a0 - a1) ** 2 / (2 * (sp.sqrt(a0) + sp.sqrt(a1)) ** 2),
            )
        )
        c_slow = sp.Symbol("c_slow", positive=True)  # |coefficient| of the slow mode
        root_sum = c_slow * norms["slow"] * sp.exp(-slow * t)
        leading = dyn.solution**2 / (2 * root_sum**2)
        hypotheses = (
            "0 < ||g_j*|| < lam (a strict local minimum at 0; the modes are distinct)",
            "the coefficient of the slow mode (omega along g_j*, gamma = -||omega||) is non-zero",
            "Delta_j(0) != 0 (a balanced group has zero gap for all t)",
        )
    rate = _decay_rate(leading)
    steps.append(check_identity("vanishing gap rate = stated rate", rate, stated))
    return GapRateResult("vanishing", rate, stated, leading, hypotheses, tuple(steps))


def gap_rates(depth: int) -> dict[str, sp.Expr]:
    r"""Asymptotic decay rates of :math:`AM_j - GM_j` by group class, derived from the flow.

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
