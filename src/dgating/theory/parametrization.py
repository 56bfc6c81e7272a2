r"""Multiplicative parametrisations :math:`w_i = \prod_{k=1}^{D} \theta_{k, b_k(i)}` as data.

A parametrisation is a list of :math:`D` *factors*. Factor :math:`k` has a few scalar entries and
a map :math:`b_k` telling which entry multiplies weight :math:`i`, so every weight is the product of
exactly one entry of every factor and the gated penalty is
:math:`\frac{\lambda}{D}\|\theta\|^2`. Three families are built in:

* D-Gating (:func:`dgating_parametrization`): factor 1 is :math:`\omega` (one entry per weight),
  factors :math:`2..D` are the gates :math:`\gamma_{\cdot,d}` (one entry per group);
* elementwise Hadamard (:func:`hadamard_parametrization`): :math:`w_i = u_{i,1}\cdots u_{i,D}`;
* D-Gating with gates shared across groups (:func:`shared_gates_parametrization`).

The flow quantities (:func:`flow_derivative`) use an *undefined* sympy function
:math:`L_0(w_1, \dots, w_p)`, so every statement proved with them holds for every smooth loss.

Examples
--------
>>> spec = dgating_parametrization(depth=3, group_size=2)
>>> spec.weights
(gamma_1*gamma_2*omega_1, gamma_1*gamma_2*omega_2)
>>> spec.n_params, spec.depth
(4, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import sympy as sp

from .._validation import InvalidParameterError, check_depth, check_positive
from .spec import MonomialSpec

__all__ = [
    "PARAMETRIZATIONS",
    "Factor",
    "Parametrization",
    "dgating_parametrization",
    "flow_derivative",
    "hadamard_parametrization",
    "make_parametrization",
    "shared_gates_parametrization",
]


@dataclass(frozen=True)
class Factor:
    r"""One factor :math:`\theta_k` of a multiplicative parametrisation.

    Parameters
    ----------
    name : str
        Name of the factor (e.g. ``"omega"``, ``"gamma_2"``).
    blocks : tuple of int, length n_weights
        ``blocks[i]`` is the entry of this factor that multiplies weight ``i``; entries are
        ``0 .. n_entries-1`` with no gaps.
    labels : tuple of str, length n_entries
        Symbol name of each entry (parsable by :func:`sympy.sympify`).
    """

    name: str
    blocks: tuple[int, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        present = sorted(set(self.blocks))
        if present != list(range(len(self.labels))):
            raise InvalidParameterError(
                f"`blocks` of factor {self.name!r} must use every entry 0..{len(self.labels) - 1} "
                f"exactly as labelled; got entries {present}."
            )

    @property
    def n_entries(self) -> int:
        """Number of scalar entries of the factor."""
        return len(self.labels)

    @cached_property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        """The real sympy symbols of the entries."""
        return tuple(sp.Symbol(label, real=True) for label in self.labels)

    def members(self, entry: int) -> tuple[int, ...]:
        """Indices of the weights multiplied by ``entry``."""
        return tuple(i for i, b in enumerate(self.blocks) if b == entry)


@dataclass(frozen=True)
class Parametrization:
    r"""A multiplicative parametrisation :math:`\theta \mapsto w`, one factor per layer.

    Parameters
    ----------
    name : str
        Short name (``"dgating"``, ``"hadamard"``, ``"shared-gates"`` or any other).
    factors : tuple of Factor
        The :math:`D \ge 2` factors; all must act on the same number of weights.
    weight_labels : tuple of str
        Names of the weights :math:`w_i`.
    """

    name: str
    factors: tuple[Factor, ...]
    weight_labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.factors) < 2:
            raise InvalidParameterError(
                f"`factors` must hold at least 2 factors (depth >= 2); got {len(self.factors)}."
            )
        sizes = {len(f.blocks) for f in self.factors}
        if sizes != {len(self.weight_labels)}:
            raise InvalidParameterError(
                f"every factor must act on n_weights = {len(self.weight_labels)} weights; got "
                f"block lengths {sorted(sizes)}."
            )
        labels = [lab for f in self.factors for lab in f.labels]
        if len(set(labels)) != len(labels):
            raise InvalidParameterError("`factors` must use distinct entry labels; got duplicates.")

    @property
    def depth(self) -> int:
        """:math:`D`, the number of factors."""
        return len(self.factors)

    @property
    def n_weights(self) -> int:
        """:math:`p`, the number of weights."""
        return len(self.weight_labels)

    @property
    def n_params(self) -> int:
        """Number of scalar parameters :math:`\\sum_k` n_entries(k)."""
        return sum(f.n_entries for f in self.factors)

    @cached_property
    def theta(self) -> tuple[sp.Symbol, ...]:
        """All parameters, factor by factor."""
        return tuple(s for f in self.factors for s in f.symbols)

    @cached_property
    def weight_symbols(self) -> tuple[sp.Symbol, ...]:
        """Real symbols :math:`w_i` for the collapsed weights."""
        return tuple(sp.Symbol(label, real=True) for label in self.weight_labels)

    @cached_property
    def weights(self) -> tuple[sp.Expr, ...]:
        r"""The map :math:`w_i(\theta) = \prod_k \theta_{k, b_k(i)}`."""
        return tuple(
            sp.Mul(*(f.symbols[f.blocks[i]] for f in self.factors)) for i in range(self.n_weights)
        )

    @cached_property
    def penalty(self) -> sp.Expr:
        r""":math:`\frac{1}{D}\|\theta\|^2` (multiply by :math:`\lambda`)."""
        return sp.Add(*(s**2 for s in self.theta)) / self.depth

    def gate_partition(self) -> tuple[int, ...] | None:
        """The common partition of factors ``2..D`` when factor 1 is one entry per weight.

        This is the structure the effective penalty is derived for (every block is then a D-Gating
        group of its own); ``None`` for any other layout, whose penalty the engine does not derive.
        """
        first, rest = self.factors[0], self.factors[1:]
        if first.n_entries != self.n_weights:
            return None
        canon = [_canonical(f.blocks) for f in rest]
        if any(c != canon[0] for c in canon):
            return None
        return canon[0]

    def to_spec(self) -> MonomialSpec:
        """The same parametrisation as a :class:`~dgating.theory.spec.MonomialSpec`.

        The groups are the blocks of :meth:`gate_partition` (one group when there is none) and
        the penalty is :attr:`penalty`; the spec goes through the validation of a TOML file.

        Examples
        --------
        >>> hadamard_parametrization(2, 2).to_spec().groups
        ((0,), (1,))
        """
        partition = self.gate_partition() or (0,) * self.n_weights
        groups = [[i for i, b in enumerate(partition) if b == k] for k in range(max(partition) + 1)]
        data = {
            "parameters": [str(x) for x in self.theta],
            "weights": [str(w) for w in self.weights],
            "groups": groups,
            "penalty": str(self.penalty),
        }
        return MonomialSpec.from_dict(data, self.name)


def _canonical(blocks: tuple[int, ...]) -> tuple[int, ...]:
    """Relabel a partition by first appearance, so equal partitions compare equal."""
    seen: dict[int, int] = {}
    return tuple(seen.setdefault(b, len(seen)) for b in blocks)


def _weights_named(names: list[str]) -> tuple[str, ...]:
    return tuple(names)


def dgating_parametrization(depth: int, group_size: int, n_groups: int = 1) -> Parametrization:
    r"""D-Gating of ``n_groups`` groups of ``group_size`` weights,
    :math:`w_{j,i} = \omega_{j,i} \prod_{d=1}^{D-1} \gamma_{j,d}`.

    Symbols are ``omega_i``, ``gamma_d`` for one group and ``omega_j_i``, ``gamma_j_d`` otherwise.

    Examples
    --------
    >>> dgating_parametrization(2, 1, n_groups=2).weights
    (gamma_1_1*omega_1_1, gamma_2_1*omega_2_1)
    """
    depth = check_depth(depth)
    p = int(check_positive(group_size, "group_size", integer=True))
    J = int(check_positive(n_groups, "n_groups", integer=True))

    def tag(j: int, i: int) -> str:
        return f"{i + 1}" if J == 1 else f"{j + 1}_{i + 1}"

    omega = Factor(
        "omega",
        tuple(range(J * p)),
        tuple(f"omega_{tag(j, i)}" for j in range(J) for i in range(p)),
    )
    labels = tuple(j for j in range(J) for _ in range(p))
    gates = tuple(
        Factor(f"gamma_{d + 1}", labels, tuple(f"gamma_{tag(j, d)}" for j in range(J)))
        for d in range(depth - 1)
    )
    weights = tuple(f"w_{tag(j, i)}" for j in range(J) for i in range(p))
    return Parametrization("dgating", (omega, *gates), weights)


def hadamard_parametrization(depth: int, n_weights: int) -> Parametrization:
    r"""Elementwise depth-:math:`D` Hadamard factorisation :math:`w_i = u_{i,1} \cdots u_{i,D}`.

    Examples
    --------
    >>> hadamard_parametrization(2, 2).weights
    (u_1_1*u_1_2, u_2_1*u_2_2)
    """
    depth = check_depth(depth)
    p = int(check_positive(n_weights, "n_weights", integer=True))
    factors = tuple(
        Factor(f"u_{k + 1}", tuple(range(p)), tuple(f"u_{i + 1}_{k + 1}" for i in range(p)))
        for k in range(depth)
    )
    return Parametrization("hadamard", factors, tuple(f"w_{i + 1}" for i in range(p)))


def shared_gates_parametrization(depth: int, group_size: int, n_groups: int = 2) -> Parametrization:
    r"""D-Gating where ``n_groups`` groups share one set of gates,
    :math:`w_{j,i} = \omega_{j,i} \prod_{d=1}^{D-1} \gamma_d`.

    Examples
    --------
    >>> shared_gates_parametrization(2, 1).weights
    (gamma_1*omega_1_1, gamma_1*omega_2_1)
    """
    depth = check_depth(depth)
    p = int(check_positive(group_size, "group_size", integer=True))
    J = int(check_positive(n_groups, "n_groups", integer=True))
    omega = Factor(
        "omega",
        tuple(range(J * p)),
        tuple(f"omega_{j + 1}_{i + 1}" for j in range(J) for i in range(p)),
    )
    gates = tuple(
        Factor(f"gamma_{d + 1}", (0,) * (J * p), (f"gamma_{d + 1}",)) for d in range(depth - 1)
    )
    weights = tuple(f"w_{j + 1}_{i + 1}" for j in range(J) for i in range(p))
    return Parametrization("shared-gates", (omega, *gates), weights)


PARAMETRIZATIONS = ("dgating", "hadamard", "shared-gates")


def make_parametrization(name: str, depth: int, group_size: int = 1) -> Parametrization:
    """Build a named parametrisation (the ``--parametrization`` of ``dgating derive``).

    ``group_size`` is the group size for ``"dgating"`` and ``"shared-gates"`` (two groups share
    the gates) and the number of coordinates for ``"hadamard"``.
    """
    from .._validation import check_choice

    name = check_choice(name, "parametrization", PARAMETRIZATIONS)
    if name == "dgating":
        return dgating_parametrization(depth, group_size)
    if name == "hadamard":
        return hadamard_parametrization(depth, group_size)
    return shared_gates_parametrization(depth, group_size)


def _loss_gradient(spec: Parametrization | MonomialSpec) -> tuple[sp.Expr, ...]:
    r""":math:`\nabla_\theta L_0(w(\theta))` for the undefined function :math:`L_0`."""
    return _chain_rule(spec.weights, spec.theta)


@lru_cache(maxsize=64)
def _chain_rule(weights: tuple[sp.Expr, ...], theta: tuple[sp.Symbol, ...]) -> tuple[sp.Expr, ...]:
    # keyed by the map, not the object: a Parametrization and its spec share the result
    loss = sp.Function("L0")(*weights)
    return tuple(loss.diff(x) for x in theta)


def loss_gradient_symbols(spec: Parametrization | MonomialSpec, expr: sp.Expr) -> sp.Expr:
    r"""Rename the derivatives :math:`\partial_i L_0` in ``expr`` to symbols ``g_i`` (display)."""
    repl = {}
    for sub in expr.atoms(sp.Subs):
        deriv = sub.expr
        if isinstance(deriv, sp.Derivative) and deriv.expr.func.__name__ == "L0":
            ((var, _),) = deriv.variable_count
            i = list(deriv.expr.args).index(var)
            repl[sub] = sp.Symbol(f"g_{spec.weight_labels[i][2:]}", real=True)
    return expr.xreplace(repl)


def flow_derivative(spec: Parametrization | MonomialSpec, h: sp.Expr, lam: sp.Expr = 0) -> sp.Expr:
    r"""Time derivative of ``h(theta)`` along the gradient flow of the penalised objective.

    .. math::
        \dot\theta = -\nabla_\theta\Big(L_0(w(\theta)) + \lambda R(\theta)\Big),
        \qquad \frac{d}{dt} h = \langle \nabla h, \dot\theta\rangle,

    with :math:`L_0` an undefined sympy function, so a zero result holds for every loss, and
    :math:`R` the spec's ``penalty`` (:math:`\frac{1}{D}\|\theta\|^2` for a
    :class:`Parametrization`).

    Examples
    --------
    >>> import sympy as sp
    >>> spec = dgating_parametrization(3, 1)
    >>> o, g1, g2 = spec.theta
    >>> sp.expand(flow_derivative(spec, o**2 - g1**2))
    0
    """
    grad = _loss_gradient(spec)
    lam = sp.sympify(lam)
    return -sp.Add(
        *(
            h.diff(x) * (gx + lam * spec.penalty.diff(x))
            for x, gx in zip(spec.theta, grad)
            if h.has(x)
        )
    )
