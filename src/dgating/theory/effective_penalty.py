r"""The effective penalty of D-Gating: minimising the gated penalty over a fibre.

For one group of size :math:`p` and depth :math:`D`,

.. math::
    \min\Big\{\tfrac{1}{D}\big(\|\omega\|^2 + \textstyle\sum_{d=1}^{D-1}\gamma_d^2\big) :
    \omega \textstyle\prod_d \gamma_d = w\Big\} = \|w\|^{2/D},

attained exactly at the balanced factorisations :math:`|\gamma_d| = \|\omega\| = \|w\|^{1/D}`.
:func:`effective_penalty` derives this for concrete :math:`D, p` from the Lagrange conditions;
:func:`amgm_chain` proves it for a symbolic :math:`D` as a chain of checked identities.

Examples
--------
>>> res = effective_penalty(depth=3, group_size=2)
>>> res.expr
r**(2/3)
>>> all(step.holds for step in res.steps)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import sympy as sp

from .._validation import check_depth, check_positive
from .steps import Step, check_identity, check_inequality
from .symbols import r

__all__ = ["EffectivePenaltyResult", "amgm_chain", "effective_penalty"]


@dataclass(frozen=True)
class EffectivePenaltyResult:
    r"""Effective penalty of one D-Gating group.

    Attributes
    ----------
    depth, group_size : int
        :math:`D` and :math:`p`.
    expr : sympy.Expr
        The minimum as a function of :math:`r = \|w\|`.
    omega, gates : tuple of sympy.Expr
        The minimisers with signs :math:`s_d \in \{-1, 1\}` (symbols ``s_d``):
        :math:`\gamma_d = s_d r^{1/D}`, :math:`\omega = (\prod_d s_d)\, w\, r^{1/D - 1}`.
    steps : tuple of Step
        The checked derivation.
    """

    depth: int
    group_size: int
    expr: sp.Expr
    omega: tuple[sp.Expr, ...]
    gates: tuple[sp.Expr, ...]
    steps: tuple[Step, ...]


@cache
def effective_penalty(depth: int, group_size: int = 1) -> EffectivePenaltyResult:
    r"""Derive :math:`\min_{\omega \prod\gamma = w} \frac{1}{D}(\|\omega\|^2 + \|\gamma\|^2)`.

    Derivation (each step is checked):

    1. Lagrangian :math:`\mathcal{L} = \frac{1}{D}(\|\omega\|^2 + \sum_d\gamma_d^2) -
       \sum_i \mu_i(\omega_i P - w_i)`, :math:`P = \prod_d \gamma_d`.
    2. The :math:`\omega`-equations are linear in :math:`\mu`: ``sympy.solve`` gives
       :math:`\mu_i = 2\omega_i/(DP)`.
    3. Substituted into the :math:`\gamma_d`-equation and solved for :math:`\gamma_d`:
       :math:`\gamma_d = \pm\|\omega\|` -- every critical point is balanced.
    4. On the balanced set :math:`\|w\|^2 = \|\omega\|^2 P^2 = s^{2D}` with :math:`s = \|\omega\|`;
       ``sympy.solve`` for :math:`s > 0` gives :math:`s = r^{1/D}`.
    5. The value there is :math:`\frac{1}{D}\cdot D s^2 = r^{2/D}`; the balanced lift satisfies the
       constraint and the Lagrange equations. The objective is coercive on the fibre
       (:math:`\to\infty` as any :math:`|\gamma_d| \to 0` or :math:`\infty`), so the minimum
       exists, is a critical point, and equals :math:`r^{2/D}`.

    Parameters
    ----------
    depth : int
        :math:`D \ge 2`.
    group_size : int, default=1
        :math:`p \ge 1`.

    Returns
    -------
    EffectivePenaltyResult

    Examples
    --------
    >>> effective_penalty(4).expr
    sqrt(r)
    """
    D = check_depth(depth)
    p = int(check_positive(group_size, "group_size", integer=True))
    omega = sp.symbols(f"omega_1:{p + 1}", real=True)
    gamma = sp.symbols(f"gamma_1:{D}", real=True)
    w = sp.symbols(f"w_1:{p + 1}", real=True)
    mu = sp.symbols(f"mu_1:{p + 1}", real=True)
    P = sp.Mul(*gamma)
    sq_omega = sp.Add(*(o**2 for o in omega))
    objective = (sq_omega + sp.Add(*(c**2 for c in gamma))) / D
    lagrangian = objective - sp.Add(*(m * (o * P - wi) for m, o, wi in zip(mu, omega, w)))
    steps: list[Step] = []

    # 2. mu from the omega-equations (linear).
    mu_sol = sp.solve([lagrangian.diff(o) for o in omega], mu, dict=True, simplify=False)[0]
    for m in mu:
        steps.append(
            check_identity(
                f"Lagrange: {m} from d/d omega", mu_sol[m], 2 * omega[mu.index(m)] / (D * P)
            )
        )

    # 3. the gamma-equations force balance.
    for d, c in enumerate(gamma):
        eq = sp.together(lagrangian.diff(c).subs(mu_sol))
        sols = sp.solve(sp.numer(eq), c, check=False, simplify=False)
        steps.append(
            check_identity(
                f"Lagrange: d/d gamma_{d + 1} = 0 has 2 solutions", sp.Integer(len(sols)), 2
            )
        )
        for sol in sols:
            steps.append(
                check_identity(
                    f"balanced: root {sol} of d/d gamma_{d + 1} = 0 has gamma^2 = ||omega||^2",
                    sol**2,
                    sq_omega,
                )
            )

    # 4. the constraint on the balanced set.
    s = sp.Symbol("s", positive=True)
    norm_w_sq = sp.factor(sp.Add(*((o * P) ** 2 for o in omega)))
    on_balanced = norm_w_sq.subs({c: s for c in gamma}).subs(sq_omega, s**2)
    steps.append(
        check_identity("||w||^2 = ||omega||^2 P^2 on the balanced set", on_balanced, s ** (2 * D))
    )
    roots = [x for x in sp.solve(on_balanced - r**2, s) if x.is_positive]
    steps.append(check_identity("balanced scale s solves s^(2D) = r^2", roots[0] ** (2 * D), r**2))
    s_star = roots[0]

    # 5. value and minimisers.
    value = sp.powsimp(
        sp.expand(
            (sq_omega + sp.Add(*(c**2 for c in gamma)))
            .subs({c: s for c in gamma})
            .subs(sq_omega, s**2)
            .subs(s, s_star)
            / D
        )
    )
    steps.append(check_identity("value at the balanced points", value, r ** sp.Rational(2, D)))
    signs = sp.symbols(f"s_1:{D}")
    sign_prod = sp.Mul(*signs)
    gates_star = tuple(si * r ** sp.Rational(1, D) for si in signs)
    omega_star = tuple(sign_prod * wi * r ** (sp.Rational(1, D) - 1) for wi in w)
    at = dict(zip(gamma, gates_star)) | dict(zip(omega, omega_star))
    sign_set = set(signs)

    def unit(expr: sp.Expr) -> sp.Expr:  # s_d in {-1, 1}: s_d^k = s_d^(k mod 2)
        return expr.replace(
            lambda e: e.is_Pow and e.base in sign_set and e.exp.is_Integer,
            lambda e: e.base ** (e.exp % 2),
        )

    on_sphere = {w[0] ** 2: r**2 - sp.Add(*(wi**2 for wi in w[1:]))}

    def reduce(expr: sp.Expr) -> sp.Expr:
        return sp.expand(unit(sp.expand(sp.powsimp(sp.expand(expr.xreplace(at)))))).subs(on_sphere)

    for i, wi in enumerate(w):
        steps.append(
            check_identity(f"lift satisfies the constraint ({wi})", reduce(omega[i] * P), wi)
        )
    steps.append(check_identity("objective at the lift", reduce(objective), r ** sp.Rational(2, D)))
    for c in gamma:
        eq = lagrangian.diff(c).subs(mu_sol)
        steps.append(
            check_identity(f"lift is critical (d/d {c})", reduce(sp.together(eq * P * c)), 0)
        )
    return EffectivePenaltyResult(
        D, p, r ** sp.Rational(2, D), omega_star, gates_star, tuple(steps)
    )


@lru_cache(maxsize=1)
def amgm_chain() -> tuple[Step, ...]:
    r"""The effective penalty for a *symbolic* depth :math:`D`, as a chain of checked steps.

    With :math:`a_0 = \|\omega\|^2`, :math:`a_d = \gamma_d^2` and :math:`G = (\prod_k a_k)^{1/D}`,
    write :math:`a_k = G e^{t_k}`, so :math:`\sum_k t_k = 0`. Then

    .. math::
        \frac{1}{D}\sum_{k} a_k - G = \frac{G}{D}\sum_k \big(e^{t_k} - 1 - t_k\big) \ge 0,

    because :math:`h(t) = e^t - 1 - t` has :math:`h(0) = h'(0) = 0` and :math:`h'' > 0`; equality
    iff every :math:`t_k = 0`, i.e. the factorisation is balanced. Finally
    :math:`\prod_k a_k = \|\omega\|^2 P^2 = \|w\|^2`, so :math:`G = r^{2/D}`.

    Examples
    --------
    >>> [step.holds for step in amgm_chain()]
    [True, True, True, True, True, True]
    """
    D = sp.Symbol("D", integer=True, positive=True)
    k = sp.Symbol("k", integer=True, positive=True)
    d = sp.Symbol("d", integer=True, positive=True)
    tk = sp.IndexedBase("t", real=True)
    G = sp.Symbol("G", positive=True)
    x = sp.Symbol("x", real=True)
    h = sp.exp(x) - 1 - x
    lhs = sp.Sum(G * sp.exp(tk[k]), (k, 1, D)) / D - G
    rhs = G / D * sp.Sum(h.subs(x, tk[k]), (k, 1, D)) + G / D * sp.Sum(tk[k], (k, 1, D))
    steps = [
        Step(
            "AM - GM as a sum of e^t - 1 - t (a_k = G e^{t_k})",
            lhs,
            rhs,
            simplify_sum(lhs - rhs),
            note="The last sum vanishes because sum_k t_k = log(prod_k a_k / G^D) = 0.",
        ),
        check_identity("h(0) = 0", h.subs(x, 0), 0),
        check_identity("h'(0) = 0", h.diff(x).subs(x, 0), 0),
        check_inequality(
            "h'' > 0 (h convex, minimum 0 only at t = 0)", h.diff(x, 2), 0, strict=True
        ),
    ]
    gam = sp.IndexedBase("gamma", positive=True)
    prod_sq = sp.Product(gam[d] ** 2, (d, 1, D - 1))
    prod_all = sp.Product(gam[d], (d, 1, D - 1)) ** 2
    residual = sp.simplify(sp.expand_log((prod_sq - prod_all).rewrite(sp.Sum), force=True))
    steps.append(
        Step(
            "prod_d gamma_d^2 = P^2 (|gamma_d| > 0)",
            prod_sq,
            prod_all,
            residual,
            note="Hence prod_k a_k = ||omega||^2 P^2 = ||omega P||^2 = ||w||^2.",
        )
    )
    norm_w = sp.Symbol("r", positive=True)
    steps.append(
        check_identity("G = (||w||^2)^(1/D) = r^(2/D)", (norm_w**2) ** (1 / D), norm_w ** (2 / D))
    )
    return tuple(steps)


def simplify_sum(expr: sp.Expr) -> sp.Expr:
    """Split every ``Sum`` of a sum into sums of the terms, then simplify."""

    def split(s: sp.Sum) -> sp.Expr:
        return sp.Add(
            *(sp.Sum(a, *s.limits).doit() for a in sp.Add.make_args(sp.expand(s.function)))
        )

    return sp.simplify(expr.replace(lambda e: isinstance(e, sp.Sum), split))
