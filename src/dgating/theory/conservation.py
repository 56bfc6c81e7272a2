r"""Conservation laws of the flow at :math:`\lambda = 0`, decay laws for :math:`\lambda > 0`.

**Laws found** (:func:`conservation_laws`): for a monomial map
:math:`w_i = \prod_k\theta_k^{A_{ik}}` every :math:`v \in \ker A` gives the conserved
:math:`Q_v = \sum_k v_k\theta_k^2`; with weight decay each either decays exponentially at a
derived rate or obeys a derived ODE. **Imbalances between factors** (:func:`candidate_laws`):
for factors :math:`k \ne k'` and a set :math:`S` of weights that is a union of entries of both
factors, :math:`\frac{d}{dt}\theta_{k,b}^2 = -2\sum_{i \in b} w_i\,\partial_i L_0`
gives

.. math::
    h_{k,k',S} = \sum_{b \subseteq S} \theta_{k,b}^2 - \sum_{b' \subseteq S} \theta_{k',b'}^2,
    \qquad \dot h = -\frac{4\lambda}{D} h,

conserved for every :math:`L_0` when :math:`\lambda = 0`. For D-Gating these are
:math:`\Delta_{j,d} = \|\omega_j\|^2 - \gamma_{j,d}^2` and :math:`\gamma_{j,d}^2 - \gamma_{j,d'}^2`.
:func:`check_conserved` and :func:`check_decay` verify such a claim with an undefined :math:`L_0`.

**Completeness** (Marcotte, Gribonval & Peyre, NeurIPS 2023). With :math:`W_0` the span of the
Jacobian vector fields :math:`\nabla_\theta w_i` and
:math:`W_{k+1} = W_k + [W_0, W_k]`, the Lie algebra :math:`\mathrm{Lie}(W_0)` is reached once the
trace dimension :math:`\dim W_k(\theta)` stops growing on an open set, and the number of
independent conservation laws is :math:`n_{\text{params}} - \dim \mathrm{Lie}(W_0)(\theta)`.
:func:`lie_algebra_rank` computes the brackets exactly (polynomial arithmetic over
:math:`\mathbb{Q}`) and the trace dimension exactly at random integer points; if the dimension does
not stabilise within the budget the result says so (``status="undecided"``).

Examples
--------
>>> from dgating.theory.parametrization import dgating_parametrization
>>> res = conservation_laws(dgating_parametrization(depth=3, group_size=2))
>>> len(res.quantities), res.lie.n_laws, res.complete
(2, 2, True)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations

import sympy as sp
from sympy.polys.rings import ring

from .parametrization import Parametrization, flow_derivative, loss_gradient_symbols
from .spec import MonomialSpec
from .steps import Step, check_identity
from .symbols import lam

__all__ = [
    "ConservationResult",
    "DecayLaw",
    "LieAlgebraResult",
    "candidate_laws",
    "check_conserved",
    "check_decay",
    "conservation_laws",
    "functional_rank",
    "lie_algebra_rank",
]


# ---------------------------------------------------------------------------------------------
# checks of single quantities
# ---------------------------------------------------------------------------------------------


def check_conserved(spec: Parametrization, h: sp.Expr, name: str | None = None) -> Step:
    r"""Check :math:`\frac{d}{dt} h = 0` along the :math:`\lambda = 0` flow for every :math:`L_0`.

    Examples
    --------
    >>> from dgating.theory.parametrization import dgating_parametrization
    >>> spec = dgating_parametrization(2, 1)
    >>> omega, gamma = spec.theta
    >>> check_conserved(spec, omega**2 - gamma**2).holds
    True
    >>> check_conserved(spec, omega**2 + gamma**2).holds  # negative control
    False
    """
    lhs = loss_gradient_symbols(spec, sp.expand(flow_derivative(spec, h)))
    return check_identity(name or rf"d/dt ({h}) = 0 at lam = 0", lhs, 0)


def check_decay(spec: Parametrization, h: sp.Expr, rate: sp.Expr, name: str | None = None) -> Step:
    r"""Check :math:`\frac{d}{dt} h = -\mathrm{rate}\cdot h` along the flow with weight decay.

    Examples
    --------
    >>> from dgating.theory.parametrization import dgating_parametrization
    >>> from dgating.theory.symbols import lam
    >>> spec = dgating_parametrization(3, 1)
    >>> omega, g1, g2 = spec.theta
    >>> check_decay(spec, omega**2 - g1**2, 4 * lam / 3).holds
    True
    >>> check_decay(spec, omega**2 - g1**2, 2 * lam / 3).holds  # a wrong rate is rejected
    False
    """
    lhs = loss_gradient_symbols(spec, sp.expand(flow_derivative(spec, h, lam)))
    return check_identity(name or rf"d/dt ({h}) = -({rate}) ({h})", lhs, -rate * h)


def _components(a: tuple[int, ...], b: tuple[int, ...]) -> list[list[int]]:
    """Connected components of the join of two partitions (weights linked by a shared entry)."""
    parent = list(range(len(a)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for blocks in (a, b):
        first: dict[int, int] = {}
        for i, blk in enumerate(blocks):
            if blk in first:
                parent[find(i)] = find(first[blk])
            else:
                first[blk] = i
    comps: dict[int, list[int]] = {}
    for i in range(len(a)):
        comps.setdefault(find(i), []).append(i)
    return list(comps.values())


def candidate_laws(spec: Parametrization) -> tuple[sp.Expr, ...]:
    r"""The quantities :math:`h_{k,k',S}` for every pair of factors and every component :math:`S`.

    Examples
    --------
    >>> from dgating.theory.parametrization import dgating_parametrization
    >>> for law in candidate_laws(dgating_parametrization(3, 2)):
    ...     print(law)
    -gamma_1**2 + omega_1**2 + omega_2**2
    -gamma_2**2 + omega_1**2 + omega_2**2
    gamma_1**2 - gamma_2**2
    """
    laws = []
    for fa, fb in combinations(spec.factors, 2):
        for comp in _components(fa.blocks, fb.blocks):
            ea = sorted({fa.blocks[i] for i in comp})
            eb = sorted({fb.blocks[i] for i in comp})
            laws.append(
                sp.Add(*(fa.symbols[e] ** 2 for e in ea))
                - sp.Add(*(fb.symbols[e] ** 2 for e in eb))
            )
    return tuple(laws)


# ---------------------------------------------------------------------------------------------
# exact linear algebra over Q
# ---------------------------------------------------------------------------------------------


class _EchelonBasis:
    """Incremental row-echelon basis of sparse vectors over Q (dicts key -> Fraction)."""

    def __init__(self) -> None:
        self.rows: list[tuple[object, dict]] = []

    def reduce(self, vec: dict) -> dict:
        vec = {k: v for k, v in vec.items() if v != 0}
        for pivot, row in self.rows:
            c = vec.get(pivot)
            if c:
                for k, v in row.items():
                    nv = vec.get(k, 0) - c * v
                    if nv:
                        vec[k] = nv
                    else:
                        vec.pop(k, None)
        return vec

    def add(self, vec: dict) -> bool:
        """Add ``vec`` if independent of the basis; return whether it was added."""
        vec = self.reduce(vec)
        if not vec:
            return False
        pivot = min(vec, key=str)
        c = vec[pivot]
        self.rows.append((pivot, {k: v / c for k, v in vec.items()}))
        return True

    def __len__(self) -> int:
        return len(self.rows)


def _fraction(v: object) -> Fraction:
    """Exact conversion of int, sympy Rational and gmpy/python MPQ values."""
    return Fraction(int(v.numerator), int(v.denominator))  # type: ignore[attr-defined]


def _rank(rows: list[list]) -> int:
    basis = _EchelonBasis()
    for row in rows:
        basis.add({i: _fraction(v) for i, v in enumerate(row)})
    return len(basis)


def _random_points(n: int, n_points: int, seed: int) -> list[list[int]]:
    # Nonzero integers from a wide range: a polynomial rank drops only on a proper algebraic
    # subset, which such points avoid with overwhelming probability (and the max is taken).
    rng = random.Random(seed)
    return [[rng.choice((-1, 1)) * rng.randint(2, 97) for _ in range(n)] for _ in range(n_points)]


def functional_rank(
    exprs: tuple[sp.Expr, ...], theta: tuple[sp.Symbol, ...], *, n_points: int = 3, seed: int = 0
) -> int:
    r"""Number of functionally independent functions: the generic rank of their gradients.

    The rank of :math:`(\nabla h_1, \dots, \nabla h_m)` is computed exactly at random integer
    points; the maximum over ``n_points`` points is returned.

    Examples
    --------
    >>> import sympy as sp
    >>> a, b, c = sp.symbols("a b c")
    >>> functional_rank((a**2 - b**2, b**2 - c**2, a**2 - c**2), (a, b, c))
    2
    """
    return len(_independent_subset(exprs, theta, n_points=n_points, seed=seed))


def _independent_subset(
    exprs: tuple[sp.Expr, ...], theta: tuple[sp.Symbol, ...], *, n_points: int = 3, seed: int = 0
) -> list[int]:
    """Indices of a maximal functionally independent subset (greedy, in order)."""
    if not exprs:
        return []
    jac = sp.lambdify(theta, [[sp.diff(h, x) for x in theta] for h in exprs])
    best: list[int] = []
    for pt in _random_points(len(theta), n_points, seed):
        basis = _EchelonBasis()
        chosen = [
            k
            for k, row in enumerate(jac(*pt))
            if basis.add({i: _fraction(sp.Rational(v)) for i, v in enumerate(row)})
        ]
        if len(chosen) > len(best):
            best = chosen
    return best


# ---------------------------------------------------------------------------------------------
# Lie algebra of the Jacobian vector fields
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LieAlgebraResult:
    r"""Outcome of :func:`lie_algebra_rank`.

    Attributes
    ----------
    n_params : int
        Dimension of the parameter space.
    trace_dims : tuple of int
        :math:`\dim W_k(\theta)` for :math:`k = 0, 1, \dots` (generic, exact at random points).
    n_fields : tuple of int
        Dimension of :math:`W_k` as a space of vector fields (over :math:`\mathbb{R}`).
    dimension : int or None
        :math:`\dim \mathrm{Lie}(W_0)(\theta)`, ``None`` if undecided.
    n_laws : int or None
        ``n_params - dimension``, ``None`` if undecided.
    status : {"decided", "undecided"}
    message : str
        Why the iteration stopped.
    """

    n_params: int
    trace_dims: tuple[int, ...]
    n_fields: tuple[int, ...]
    dimension: int | None
    n_laws: int | None
    status: str
    message: str

    @property
    def decided(self) -> bool:
        """Whether the trace dimension stabilised within the budget."""
        return self.status == "decided"


def lie_algebra_rank(
    weights: tuple[sp.Expr, ...],
    theta: tuple[sp.Symbol, ...],
    *,
    max_level: int = 4,
    max_fields: int = 400,
    n_points: int = 3,
    seed: int = 0,
) -> LieAlgebraResult:
    r"""Trace dimension of the Lie algebra generated by the Jacobian vector fields of ``weights``.

    The generators are :math:`X_i = \nabla_\theta w_i` (the columns of :math:`\partial w^\top`).
    Level :math:`k+1` adds the brackets
    :math:`[X_i, Y] = (\partial Y) X_i - (\partial X_i) Y` of the generators with the fields new at
    level :math:`k`, kept only when linearly independent (over :math:`\mathbb{Q}`, exactly) of
    the fields so far. The iteration stops when

    * no new field appears (the span is a Lie algebra), or
    * the trace dimension equals ``n_params``, or
    * the trace dimension did not grow from level :math:`k` to :math:`k+1`
      (Marcotte, Gribonval & Peyre 2023: then :math:`W_k(\theta) = \mathrm{Lie}(W_0)(\theta)`
      on the open set of generic points);

    otherwise, after ``max_level`` levels or ``max_fields`` fields, it reports ``"undecided"``.

    Parameters
    ----------
    weights : tuple of sympy.Expr
        Polynomial map :math:`\theta \mapsto w`.
    theta : tuple of sympy.Symbol
        The parameters.
    max_level : int, default=4
        Bracket depth budget.
    max_fields : int, default=400
        Budget on the number of independent fields.
    n_points : int, default=3
        Random integer points; the maximal rank over them is the generic rank.
    seed : int, default=0
        Seed of the points.

    Examples
    --------
    Matrix factorisation :math:`W = UV^\top` with 2x2 factors needs one level of brackets
    (the :math:`r(r+1)/2 = 3` laws :math:`U^\top U - V^\top V`):

    >>> import sympy as sp
    >>> U = sp.Matrix(2, 2, sp.symbols("u1:5")); V = sp.Matrix(2, 2, sp.symbols("v1:5"))
    >>> res = lie_algebra_rank(tuple(U * V.T), tuple(U) + tuple(V))
    >>> res.trace_dims, res.n_laws, res.status
    ((4, 5), 3, 'decided')
    >>> lie_algebra_rank(tuple(U * V.T), tuple(U) + tuple(V), max_level=0).status
    'undecided'
    """
    n = len(theta)
    R, *gens = ring(list(theta), sp.QQ)
    try:
        polys = [R(sp.expand(w)) for w in weights]
    except Exception as exc:  # any conversion failure means "not a polynomial map"
        return LieAlgebraResult(
            n,
            (),
            (),
            None,
            None,
            "undecided",
            f"the map is not polynomial in theta ({type(exc).__name__}); cannot decide.",
        )
    generators = [tuple(p.diff(x) for x in gens) for p in polys]
    points = _random_points(n, n_points, seed)

    def key_vec(field: tuple) -> dict:
        return {(c, m): _fraction(v) for c, comp in enumerate(field) for m, v in comp.terms()}

    jacobians: dict[int, list] = {}

    def jacobian(field: tuple) -> list:
        key = id(field)
        if key not in jacobians:
            jacobians[key] = [[comp.diff(x) if comp else comp for x in gens] for comp in field]
        return jacobians[key]

    def bracket(X: tuple, Y: tuple) -> tuple:
        # [X, Y] = (dY) X - (dX) Y, skipping the (many) zero components
        dX, dY = jacobian(X), jacobian(Y)
        supp_x = [k for k in range(n) if X[k]]
        supp_y = [k for k in range(n) if Y[k]]
        return tuple(
            sum((X[k] * dY[c][k] for k in supp_x), R(0))
            - sum((Y[k] * dX[c][k] for k in supp_y), R(0))
            for c in range(n)
        )

    def evaluate(poly, pt: list[int]) -> Fraction:
        total = Fraction(0)
        for monom, coeff in poly.terms():
            term = _fraction(coeff)
            for x, e in zip(pt, monom):
                if e:
                    term *= x**e
            total += term
        return total

    def trace_dim(fields: list) -> int:
        return max(_rank([[evaluate(comp, pt) for comp in f] for f in fields]) for pt in points)

    basis = _EchelonBasis()
    fields: list = []
    frontier: list = []
    for X in generators:
        if basis.add(key_vec(X)):
            fields.append(X)
            frontier.append(X)
    dims = [trace_dim(fields)]
    counts = [len(fields)]
    for _ in range(max_level):
        if dims[-1] == n:
            return _decided(n, dims, counts, "the trace is the whole parameter space")
        new = []
        for X in generators:
            for Y in frontier:
                Z = bracket(X, Y)
                if basis.add(key_vec(Z)):
                    new.append(Z)
                    if len(fields) + len(new) > max_fields:
                        return LieAlgebraResult(
                            n,
                            tuple(dims),
                            tuple(counts),
                            None,
                            None,
                            "undecided",
                            f"more than max_fields={max_fields} independent fields; the Lie "
                            "algebra did not stabilise within the budget.",
                        )
        if not new:
            return _decided(n, dims, counts, "no new bracket: the span is a Lie algebra")
        fields.extend(new)
        frontier = new
        dims.append(trace_dim(fields))
        counts.append(len(fields))
        if dims[-1] == dims[-2]:
            return _decided(n, dims, counts, "the trace dimension stopped growing")
    if dims[-1] == n:
        return _decided(n, dims, counts, "the trace is the whole parameter space")
    return LieAlgebraResult(
        n,
        tuple(dims),
        tuple(counts),
        None,
        None,
        "undecided",
        f"the trace dimension still grew at level {len(dims) - 1} = max_level; cannot decide "
        "the number of conservation laws within the budget.",
    )


def _decided(n: int, dims: list, counts: list, why: str) -> LieAlgebraResult:
    return LieAlgebraResult(
        n,
        tuple(dims),
        tuple(counts),
        dims[-1],
        n - dims[-1],
        "decided",
        f"{why} (trace dimension {dims[-1]} of {n}).",
    )


# ---------------------------------------------------------------------------------------------
# everything for one parametrisation
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# any monomial parametrisation given by a spec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecayLaw:
    r"""How one conserved quantity :math:`Q` evolves with weight decay :math:`\lambda > 0`.

    Attributes
    ----------
    quantity : sympy.Expr
        :math:`Q` (conserved at :math:`\lambda = 0`).
    rate : sympy.Expr or None
        :math:`\rho(\lambda)` with :math:`\dot Q = -\rho Q` for every :math:`L_0`; ``None`` when
        :math:`\dot Q / Q` depends on the parameters.
    derivative : sympy.Expr
        The derived :math:`\dot Q` (the :math:`L_0` part cancels).
    """

    quantity: sp.Expr
    rate: sp.Expr | None
    derivative: sp.Expr

    def to_dict(self) -> dict[str, str | None]:
        """``{"quantity", "rate", "ode"}`` as strings (``rate`` may be ``None``)."""
        return {
            "quantity": str(self.quantity),
            "rate": None if self.rate is None else str(self.rate),
            "ode": f"d/dt ({self.quantity}) = {self.derivative}",
        }


@dataclass(frozen=True)
class ConservationResult:
    r"""Conservation and decay laws of a parametrisation (see :func:`conservation_laws`).

    Attributes
    ----------
    quantities : tuple of sympy.Expr
        A basis :math:`Q_v = \sum_k v_k\theta_k^2`, :math:`v \in \ker A`, of the conserved
        quantities, those with a closed decay law first.
    decay_laws : tuple of DecayLaw
        One per quantity.
    lie : LieAlgebraResult
        The independent Lie-algebra count.
    steps : tuple of Step
        :math:`\dot Q = 0` at :math:`\lambda = 0` for an undefined :math:`L_0`, and
        :math:`\dot Q = -\rho Q` for each predicted rate.
    """

    quantities: tuple[sp.Expr, ...]
    decay_laws: tuple[DecayLaw, ...]
    lie: LieAlgebraResult
    steps: tuple[Step, ...]

    @property
    def complete(self) -> bool:
        """Whether the Lie-algebra count is decided and equals the number of quantities."""
        return self.lie.decided and self.lie.n_laws == len(self.quantities)


def _integer_vector(v: sp.Matrix) -> tuple[int, ...]:
    """Scale a rational vector to coprime integers with a positive first nonzero entry."""
    den = sp.ilcm(*(sp.Rational(x).q for x in v))
    ints = [int(x * den) for x in v]
    g = sp.igcd(*ints)
    sign = 1 if next(x for x in ints if x) > 0 else -1
    return tuple(sign * x // g for x in ints)


def _kernel(A: sp.Matrix, columns: list[int]) -> list[tuple[int, ...]]:
    """Integer basis of ``{v in ker A : supp v within columns}`` (embedded in all columns)."""
    vectors = []
    for u in A[:, columns].nullspace():
        v = [0] * A.cols
        for c, x in zip(columns, u):
            v[c] = x
        vectors.append(_integer_vector(sp.Matrix(v)))
    return vectors


def conservation_laws(spec: Parametrization | MonomialSpec, *, seed: int = 0) -> ConservationResult:
    r"""Conserved quantities (at :math:`\lambda = 0`), decay laws and their number.

    ``spec`` is a :class:`~dgating.theory.spec.MonomialSpec` or a built-in
    :class:`~dgating.theory.parametrization.Parametrization` (converted by its ``to_spec``).

    **Quantities.** For :math:`v \in \ker A` (:math:`A` the exponent matrix,
    :math:`w_i = \prod_k\theta_k^{A_{ik}}`), the rescaling :math:`\theta_k \mapsto e^{s v_k}
    \theta_k` leaves :math:`w` unchanged, and since
    :math:`\frac{d}{dt}\theta_k^2 = -2\sum_i A_{ik} w_i\partial_i L_0` along the flow,
    :math:`Q_v = \sum_k v_k\theta_k^2` has :math:`\dot Q_v = -2\sum_i (Av)_i w_i\partial_iL_0 = 0`
    for every :math:`L_0`: :math:`\dim\ker A` independent laws. The Lie-algebra count
    (:func:`lie_algebra_rank`) is computed independently; the two agree when ``complete``.

    **Decay.** With weight decay, :math:`\dot Q_v = -\lambda\sum_k v_k\theta_k\partial_k R`. If
    :math:`R` contains :math:`\theta_k` only as :math:`c_k\theta_k^2`, this is
    :math:`-2\lambda Q_{c \odot v}`, a multiple of :math:`Q_v` exactly when :math:`c_k` is
    constant (:math:`= c`) on the support of :math:`v`: then the rate is :math:`4\lambda c`
    (:math:`4\lambda/D` for D-Gating, docs/theory.md [T-imbalance-flow]). The basis is therefore
    chosen as :math:`\bigoplus_c \ker A \cap \{\operatorname{supp} v \subseteq \{k : c_k = c\}\}`,
    completed to a basis of :math:`\ker A`; each predicted rate is checked against the flow
    derivative with an undefined :math:`L_0`. For the completing quantities (and any penalty not of
    that form) :math:`\dot Q / Q` is tested for being free of the parameters; if it is not, the law
    has ``rate=None`` and the derived ODE. Unequal penalty weights are not assumed away: they
    change which combinations decay.

    Examples
    --------
    >>> from dgating.theory.spec import builtin_spec
    >>> res = conservation_laws(builtin_spec("unequal-weights"))
    >>> [(str(d.quantity), d.rate) for d in res.decay_laws]
    [('gamma_1**2 - gamma_2**2', 8*lam), ('-gamma_1**2 + omega_1**2 + omega_2**2', None)]
    """
    from .effective_penalty import _Undecided, separable_powers

    if isinstance(spec, Parametrization):
        spec = spec.to_spec()
    theta = spec.theta
    A = sp.Matrix(spec.exponents)
    try:
        powers, _ = separable_powers(spec.penalty, theta)
    except _Undecided:
        powers = {}
    classes: dict[sp.Expr, list[int]] = {}
    for k, x in enumerate(theta):
        if x in powers and powers[x][1] == 1:
            classes.setdefault(powers[x][0], []).append(k)
    vectors: list[tuple[int, ...]] = []
    rates: list[sp.Expr | None] = []
    for c, columns in classes.items():
        for v in _kernel(A, columns):
            vectors.append(v)
            rates.append(4 * lam * c)
    basis = _EchelonBasis()
    for v in vectors:
        basis.add({i: Fraction(x) for i, x in enumerate(v)})
    for v in _kernel(A, list(range(len(theta)))):
        if basis.add({i: Fraction(x) for i, x in enumerate(v)}):
            vectors.append(v)
            rates.append(None)
    steps: list[Step] = []
    laws = []
    for v, predicted in zip(vectors, rates):
        q = sp.Add(*(vk * x**2 for vk, x in zip(v, theta) if vk))
        # one flow derivative (undefined L0) serves both checks: its lam = 0 part and all of it
        derivative = sp.expand(loss_gradient_symbols(spec, flow_derivative(spec, q, lam)))
        steps.append(check_identity(f"conserved at lam = 0: {q}", derivative.subs(lam, 0), 0))
        if predicted is not None:
            steps.append(
                check_identity(f"decays at rate {predicted}: {q}", derivative, -predicted * q)
            )
            laws.append(DecayLaw(q, predicted, derivative))
            continue
        ratio = sp.factor(sp.cancel(-derivative / q))
        laws.append(DecayLaw(q, ratio if ratio.free_symbols <= {lam} else None, derivative))
    lie = lie_algebra_rank(spec.weights, theta, seed=seed)
    return ConservationResult(tuple(d.quantity for d in laws), tuple(laws), lie, tuple(steps))
