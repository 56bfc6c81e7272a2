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
from .spec import MonomialSpec
from .steps import Step, check_identity, check_inequality
from .symbols import r

__all__ = [
    "EffectivePenaltyResult",
    "SpecPenaltyResult",
    "amgm_chain",
    "effective_penalty",
    "spec_effective_penalty",
]


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


# ---------------------------------------------------------------------------------------------
# any monomial parametrisation given by a spec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecPenaltyResult:
    r"""Effective penalty of a :class:`~dgating.theory.spec.MonomialSpec`.

    Attributes
    ----------
    expr : sympy.Expr or None
        :math:`\min\{R(\theta) : w(\theta) = w\}` in ``r`` (one group) or ``r1, r2, ...``
        (:math:`r_j = \|w_j\|`); ``None`` when the engine cannot decide.
    status : str
        ``"derived"`` or the precise reason why the engine cannot decide.
    lift : dict
        A minimiser :math:`\theta^*(w)` on the positive orthant, in the symbols ``a_i``
        :math:`= |w_i|` and the group norms (see :func:`spec_effective_penalty`); empty when
        undecided.
    steps : tuple of Step
        The checked identities: the lift lies on the fibre, attains ``expr`` and is stationary
        along the fibre.
    """

    expr: sp.Expr | None
    status: str
    lift: dict[sp.Symbol, sp.Expr]
    steps: tuple[Step, ...]

    @property
    def decided(self) -> bool:
        """Whether the effective penalty was derived."""
        return self.expr is not None


class _Undecided(Exception):
    """The engine cannot decide; the message is the reason."""


def _norm_symbols(n_groups: int) -> tuple[sp.Symbol, ...]:
    """``(r,)`` for one group, else ``(r1, ..., rJ)``: the group norms :math:`\\|w_j\\|` (> 0)."""
    if n_groups == 1:
        return (r,)
    return tuple(sp.Symbol(f"r{j + 1}", positive=True) for j in range(n_groups))


def separable_powers(
    penalty: sp.Expr, theta: tuple[sp.Symbol, ...]
) -> tuple[dict[sp.Symbol, tuple[sp.Expr, int]], sp.Expr]:
    r"""Write :math:`R(\theta) = \sum_k c_k \theta_k^{2 e_k} + c_0` with :math:`c_k > 0`.

    Returns ``({theta_k: (c_k, e_k)}, c_0)`` for the parameters present in ``penalty``; raises
    :class:`_Undecided` (with the reason) when the penalty is not of this form.
    """
    powers: dict[sp.Symbol, tuple[sp.Expr, int]] = {}
    const = sp.S.Zero
    for term in sp.Add.make_args(sp.expand(penalty)):
        syms = term.free_symbols & set(theta)
        if not syms:
            const += term
            continue
        coeff, rest = term.as_coeff_Mul()
        base, exp = rest.as_base_exp()
        if len(syms) > 1 or base not in syms or not (exp.is_Integer and exp > 0 and exp % 2 == 0):
            raise _Undecided(
                f"penalty term {term} is not c*theta**(2e) in one parameter: the penalty is not "
                "a separable weighted sum of even powers"
            )
        if base in powers:
            raise _Undecided(
                f"penalty has several powers of {base}: not a single c*{base}**(2e) per parameter"
            )
        if not coeff.is_positive:
            raise _Undecided(f"penalty term {term} has a coefficient <= 0 (the minimum is -inf)")
        powers[base] = (coeff, int(exp) // 2)
    return powers, const


def spec_effective_penalty(spec: MonomialSpec) -> SpecPenaltyResult:
    r"""Derive :math:`\min\{R(\theta) : w(\theta) = w\}` for a monomial spec, or say why not.

    Decided class (anything else returns ``expr=None`` with the reason in ``status``):

    * the penalty is :math:`R = \sum_k c_k\theta_k^{2e_k} + c_0` with :math:`c_k > 0` and every
      parameter of a weight penalised (otherwise the infimum is not attained);
    * in a group of several weights every weight has a *leaf*, a parameter of its own with
      exponent 1 and penalty :math:`c\,\theta^2` (the same :math:`c` in the group), and the rest
      of the monomials is one gate monomial :math:`G_j`; a one-weight group needs a leaf of odd
      exponent :math:`a` (any :math:`e`);
    * gate parameters shared between groups are *nested* and *balanced*: the reduction below
      can always eliminate some gates private to one term (after merging terms with equal
      exponents). Shared gates entering terms with different exponents lead to stationarity
      equations with no closed-form solution in general; the engine then stops.

    **Reduction.** On the positive orthant (the penalty is even in every parameter and the sign
    of each :math:`w_i` is carried by its leaf), the leaves are fixed by the gates,
    :math:`\ell_i = w_i/G_j`, and :math:`\sum_{i \in j} c\,\ell_i^2 = c\,r_j^2 G_j^{-2}`; so the
    problem becomes the unconstrained minimisation of a posynomial
    :math:`F(x) = \sum_m R_m \prod_k x_k^{-\alpha_{mk}} + \sum_k c_k x_k^{2e_k}` over the gates.
    Terms with equal exponents are merged; gates :math:`P` occurring in only one term are then
    eliminated in closed form (weighted AM-GM):

    .. math::
        \min_{x_P} U\prod_{k\in P} x_k^{-\alpha_k} + \sum_{k\in P} c_k x_k^{2e_k}
        = (1+\beta)\,(K U)^{1/(1+\beta)}, \quad
        \beta = \sum_{k\in P}\frac{\alpha_k}{2e_k}, \quad
        K = \prod_{k\in P}\Big(\frac{2e_kc_k}{\alpha_k}\Big)^{\alpha_k/(2e_k)},

    attained at :math:`c_kx_k^{2e_k} = \frac{\alpha_k}{2e_k}\cdot\frac{\text{value}}{1+\beta}`.
    The result is again a term of :math:`F`, so the elimination repeats until no gate is left.
    Each elimination is exact; when no term has a private gate the engine stops (undecided).

    **Checks** (in the symbols ``a_i`` :math:`= |w_i| > 0` and the group norms, with
    :math:`a_{i_0}^2 = r_j^2 - \sum_{i \ne i_0} a_i^2` for one weight per group): the
    back-substituted minimiser
    :math:`\theta^*` satisfies :math:`w_i(\theta^*) = a_i`, attains the value, and is stationary
    along the fibre: :math:`\sum_k v_k\theta_k\partial_k R(\theta^*) = 0` for a basis :math:`v`
    of :math:`\ker A` (:math:`A` the exponent matrix). In the coordinates
    :math:`y = \log|\theta|` the fibre is affine and :math:`R = \sum_k c_k e^{2e_ky_k} + c_0` is
    convex, so a stationary point is the global minimum.

    Examples
    --------
    >>> from dgating.theory.spec import builtin_spec
    >>> spec_effective_penalty(builtin_spec("hierarchical")).expr
    (r1 + r2)**(2/3)
    >>> spec_effective_penalty(builtin_spec("hadamard")).expr
    r1**(2/3) + r2**(2/3)
    """
    norms = _norm_symbols(len(spec.groups))
    try:
        expr, lift = _reduce(spec, norms)
    except _Undecided as exc:
        return SpecPenaltyResult(None, f"undecided: {exc}.", {}, ())
    return SpecPenaltyResult(expr, "derived", lift, _penalty_checks(spec, expr, lift, norms))


def _leaves(spec: MonomialSpec, powers: dict) -> tuple[list, list]:
    """Per group: the leaf of each weight and the gate monomial (as exponent dict)."""
    A, theta = spec.exponents, spec.theta
    terms, leaves = [], []
    for j, group in enumerate(spec.groups):
        picks = []
        for i in group:
            private = [
                k
                for k in range(len(theta))
                if A[i][k] and all(A[i2][k] == 0 for i2 in range(len(A)) if i2 != i)
            ]
            odd = [k for k in private if A[i][k] % 2 == 1]
            if len(group) > 1:
                odd = [k for k in odd if A[i][k] == 1 and powers[theta[k]][1] == 1]
            if not odd:
                raise _Undecided(
                    f"weight {spec.weights[i]} (group {j + 1}) has no parameter of its own with "
                    + ("exponent 1 and a squared penalty" if len(group) > 1 else "odd exponent")
                )
            picks.append(odd[0])
        gates = [
            tuple(A[i][k] if k != leaf else 0 for k in range(len(theta)))
            for i, leaf in zip(group, picks)
        ]
        coeffs = {powers[theta[k]] for k in picks}
        if len(set(gates)) > 1 or (len(group) > 1 and len(coeffs) > 1):
            raise _Undecided(
                f"the weights of group {j + 1} are not (own parameter) x (one common gate monomial)"
                " with equal penalty weights on the own parameters: the minimum over the fibre "
                f"is not a function of r_{j + 1} = ||w_{j + 1}||"
            )
        leaf = picks[0]
        c, e = powers[theta[leaf]]
        a = A[group[0]][leaf]
        power = sp.Rational(2 * e, a)
        alpha = {k: power * b for k, b in enumerate(gates[0]) if b}
        terms.append((c * _placeholder(j) ** power, alpha))
        leaves.append((picks, gates[0], a))
    return terms, leaves


def _placeholder(j: int) -> sp.Symbol:
    """Placeholder for the norm of group ``j`` during the reduction."""
    return sp.Symbol(f"_rho{j}", positive=True)


def _reduce(spec: MonomialSpec, norms: tuple) -> tuple[sp.Expr, dict]:
    theta = spec.theta
    powers, const = separable_powers(spec.penalty, theta)
    missing = [str(x) for x in theta if x not in powers]
    if missing:
        raise _Undecided(
            f"parameters {missing} occur in weights but not in the penalty: the infimum over "
            "the fibre is not attained"
        )
    terms, leaves = _leaves(spec, powers)
    x = {k: sp.Symbol(f"_x{k}", positive=True) for k in range(len(theta))}
    solved: list[tuple[int, sp.Expr]] = []  # gate k = expression in later gates and norms
    while True:
        merged: dict[tuple, sp.Expr] = {}
        for R, alpha in terms:
            key = tuple(sorted(alpha.items()))
            merged[key] = merged.get(key, sp.S.Zero) + R
        terms = [(R, dict(key)) for key, R in merged.items()]
        if all(not alpha for _, alpha in terms):
            break
        for m, (R, alpha) in enumerate(terms):
            private = [
                k for k in alpha if all(k not in a2 for m2, (_, a2) in enumerate(terms) if m2 != m)
            ]
            if private:
                break
        else:
            shared = sorted({str(theta[k]) for _, alpha in terms for k in alpha})
            reduced = " + ".join(
                "R*" + "*".join(f"{theta[k]}**({-a})" for k, a in alpha.items())
                for _, alpha in terms
                if alpha
            )
            raise _Undecided(
                f"the gates {shared} are each shared by terms with different exponents: after "
                f"eliminating the gates private to one term the reduced problem is {reduced} "
                "+ penalty (R free of the gates), and its stationarity equations have no "
                "closed-form solution in general (nested gates must enter every term they share "
                "with equal exponents)"
            )
        beta = sp.Add(*(alpha[k] / (2 * powers[theta[k]][1]) for k in private))
        K = sp.Mul(
            *(
                (2 * e * c / alpha[k]) ** (alpha[k] / (2 * e))
                for k in private
                for c, e in [powers[theta[k]]]
            )
        )
        new_R = (1 + beta) * (K * R) ** (1 / (1 + beta))
        new_alpha = {k: a / (1 + beta) for k, a in alpha.items() if k not in private}
        value = new_R * sp.Mul(*(x[k] ** -a for k, a in new_alpha.items()))
        for k in private:
            c, e = powers[theta[k]]
            solved.append(
                (k, (alpha[k] * value / (2 * e * c * (1 + beta))) ** sp.Rational(1, 2 * e))
            )
        terms[m] = (new_R, new_alpha)
    to_norm = {_placeholder(j): norms[j] for j in range(len(spec.groups))}
    expr = _tidy(sp.Add(*(R for R, _ in terms)).xreplace(to_norm) + const)
    # back-substitution: gates (last eliminated first), then the leaves
    a_sym = _weight_magnitudes(spec.n_weights)
    values: dict[int, sp.Expr] = {}
    for k, sol in reversed(solved):
        values[k] = sol.xreplace({x[k2]: v for k2, v in values.items()}).xreplace(to_norm)
    lift = {theta[k]: v for k, v in values.items()}
    for group, (picks, gate, a) in zip(spec.groups, leaves):
        G = sp.Mul(*(values[k] ** b for k, b in enumerate(gate) if b))
        for i, leaf in zip(group, picks):
            lift[theta[leaf]] = (a_sym[i] / G) ** sp.Rational(1, a)
    return expr, lift


def _tidy(expr: sp.Expr) -> sp.Expr:
    """Pull rational factors out of powers of sums: ``(r1/3 + r2/3)**q -> 3**-q (r1 + r2)**q``."""

    def split(e: sp.Pow) -> sp.Expr:
        coeff, rest = sp.factor_terms(e.base).as_coeff_Mul()
        return coeff**e.exp * rest**e.exp

    return sp.powsimp(expr.replace(lambda e: e.is_Pow and e.base.is_Add, split))


def _weight_magnitudes(n: int) -> tuple[sp.Symbol, ...]:
    """Positive symbols ``a_1, ..., a_p`` standing for :math:`|w_i|` in the checks."""
    return tuple(sp.Symbol(f"a_{i + 1}", positive=True) for i in range(n))


def _penalty_checks(
    spec: MonomialSpec, expr: sp.Expr, lift: dict, norms: tuple
) -> tuple[Step, ...]:
    a_sym = _weight_magnitudes(spec.n_weights)
    # r_j = ||w_j||: a_i = r_j in a one-weight group, else a_first^2 = r_j^2 - sum of the others
    single = {a_sym[g[0]]: norms[j] for j, g in enumerate(spec.groups) if len(g) == 1}
    sphere = {
        a_sym[g[0]]: norms[j] ** 2 - sp.Add(*(a_sym[i] ** 2 for i in g[1:]))
        for j, g in enumerate(spec.groups)
        if len(g) > 1
    }

    def even_power(e: sp.Expr) -> bool:
        return e.is_Pow and e.base in sphere and e.exp.is_even

    def at_lift(e: sp.Expr) -> sp.Expr:
        e = sp.expand(sp.powsimp(e.xreplace(lift), force=True)).xreplace(single)
        return sp.expand(e.replace(even_power, lambda t: sphere[t.base] ** (t.exp / 2)))

    steps = [
        check_identity(
            f"the minimiser lies on the fibre: {w} = a_{i + 1}",
            at_lift(w),
            a_sym[i].xreplace(single),
        )
        for i, w in enumerate(spec.weights)
    ]
    steps.append(
        check_identity(
            "the penalty at the minimiser is the effective penalty", at_lift(spec.penalty), expr
        )
    )
    A = sp.Matrix(spec.exponents)
    for v in A.nullspace():
        tangent = sp.Add(*(vk * x * spec.penalty.diff(x) for vk, x in zip(v, spec.theta) if vk))
        steps.append(
            check_identity(
                f"stationary along the fibre (log-direction {list(v)})", at_lift(tangent), 0
            )
        )
    return tuple(steps)
