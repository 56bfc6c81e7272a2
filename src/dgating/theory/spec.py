r"""A parametrisation defined by its parts: ``dgating derive --spec FILE``.

A *spec* lists real scalar parameters :math:`\theta_1, \dots, \theta_n`, the weights
:math:`w_i(\theta)` (each a monomial in the parameters), a partition of the weights into groups and
a penalty :math:`R(\theta)`, so that the smooth objective is :math:`L_0(w(\theta)) + \lambda
R(\theta)`. Nothing else is given: :func:`dgating.theory.derive_spec` derives the effective
penalty, the conservation laws and the decay laws from these parts alone.

The TOML format (every key but ``groups`` and ``description`` is required)::

    parameters = ["u1", "u2", "g", "h"]        # names of the real scalar parameters
    weights = ["u1*g*h", "u2*g*h"]             # one monomial (coefficient 1) per weight
    groups = [[0, 1]]                          # weight indices per group (default: one group)
    penalty = "(u1**2 + u2**2 + g**2 + h**2)/3"  # R(theta): the objective is L0(w) + lam * R
    description = "D-Gating, D = 3, one group of two weights"   # optional, free text

Parameter names are identifiers other than Python keywords and the reserved ``lam``, ``t``,
``r``, ``r1, r2, ...``, ``a_1, a_2, ...``, ``L0``, ``g_*``, ``ghat_*`` (the symbols of the
results), at most :data:`MAX_PARAMETERS` of them, each used by some weight.
Expressions may use only the parameter names, numbers, ``+ - * / ( )`` and ``**``. The built-in
specs (:func:`builtin_spec_names`) are shipped as TOML files in ``dgating/theory/specs``.

Examples
--------
>>> spec = MonomialSpec.from_dict(
...     {"parameters": ["u", "g"], "weights": ["u*g"], "penalty": "(u**2 + g**2)/2"}, "gated")
>>> spec.weights, spec.groups, spec.exponents
((g*u,), ((0,),), ((1, 1),))
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from tokenize import TokenError

import sympy as sp

from .._validation import InvalidParameterError

__all__ = [
    "MAX_PARAMETERS",
    "MonomialSpec",
    "builtin_spec",
    "builtin_spec_names",
    "load_spec",
]

#: Bound on the number of parameters of a spec (the symbolic work grows quickly with it).
MAX_PARAMETERS = 40

_KEYS = ("parameters", "weights", "groups", "penalty", "description")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_RESERVED = re.compile(r"(lam|t|r\d*|a_\d+|L0|g_\w*|ghat_\w*)\Z")
_EXPR_CHARS = re.compile(r"[A-Za-z0-9_+\-*/().\s]*\Z")
_IDENT = re.compile(r"(?<![0-9.])[A-Za-z_][A-Za-z0-9_]*")  # not the e of 1e-3


def _bad(key: str, expected: str, got: object) -> InvalidParameterError:
    return InvalidParameterError(f"spec key `{key}` must be {expected}; got {got!r}.")


def _parse(text: object, key: str, names: dict[str, sp.Symbol]) -> sp.Expr:
    """Parse an expression that may use only the parameter names, numbers and arithmetic."""
    expected = "an expression in the parameters (names, numbers, + - * / ** and parentheses)"
    if not isinstance(text, str) or not text.strip() or not _EXPR_CHARS.match(text):
        raise _bad(key, expected, text)
    unknown = sorted({n for n in _IDENT.findall(text) if n not in names})
    if unknown:
        raise _bad(key, f"{expected}; unknown names {unknown}", text)
    try:
        expr = sp.parse_expr(text, local_dict=dict(names), evaluate=True)
    except (SyntaxError, TypeError, ValueError, sp.SympifyError, TokenError):
        raise _bad(key, expected, text) from None
    if not isinstance(expr, sp.Expr):
        raise _bad(key, expected, text)
    return sp.nsimplify(expr, rational=True) if expr.has(sp.Float) else expr


@dataclass(frozen=True)
class MonomialSpec:
    r"""A monomial parametrisation :math:`\theta \mapsto w` with groups and a penalty.

    Parameters
    ----------
    name : str
        Short name (the file stem for a TOML file).
    parameters : tuple of str
        Names of the real scalar parameters :math:`\theta_k`.
    weights : tuple of sympy.Expr
        :math:`w_i(\theta) = \prod_k \theta_k^{A_{ik}}`, coefficient 1.
    groups : tuple of tuple of int
        A partition of the weight indices :math:`0..p-1`.
    penalty : sympy.Expr
        :math:`R(\theta)`; the objective is :math:`L_0(w(\theta)) + \lambda R(\theta)`.
    description : str
        Free text.

    Use :meth:`from_dict` (validates raw input) or :func:`load_spec` rather than the constructor.
    """

    name: str
    parameters: tuple[str, ...]
    weights: tuple[sp.Expr, ...]
    groups: tuple[tuple[int, ...], ...]
    penalty: sp.Expr
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict, name: str = "spec") -> MonomialSpec:
        """Validate a spec given as a dict (the parsed TOML); errors name the offending key."""
        if not isinstance(data, dict):
            raise _bad("(top level)", "a table", data)
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise InvalidParameterError(
                f"spec keys must be among {list(_KEYS)}; got unknown keys {unknown}."
            )
        for key in ("parameters", "weights", "penalty"):
            if key not in data:
                raise _bad(key, "present", None)
        params = data["parameters"]
        if not isinstance(params, list) or not params:
            raise _bad("parameters", "a non-empty list of names", params)
        if len(params) > MAX_PARAMETERS:
            raise _bad("parameters", f"at most {MAX_PARAMETERS} names", f"{len(params)} names")
        for p in params:
            if (
                not isinstance(p, str)
                or not _NAME.match(p)
                or _RESERVED.match(p)
                or keyword.iskeyword(p)
            ):
                raise _bad(
                    "parameters",
                    "real-symbol names (identifiers; not a Python keyword nor the reserved "
                    "lam, t, r, r1, ..., a_1, ..., L0, g_*, ghat_*)",
                    p,
                )
        if len(set(params)) != len(params):
            raise _bad("parameters", "distinct names", params)
        names = {p: sp.Symbol(p, real=True) for p in params}
        theta = tuple(names.values())

        raw_w = data["weights"]
        if not isinstance(raw_w, list) or not raw_w:
            raise _bad("weights", "a non-empty list of monomials", raw_w)
        weights = []
        for i, text in enumerate(raw_w):
            expr = _parse(text, f"weights[{i}]", names)
            poly = sp.Poly(expr, *theta) if expr.is_polynomial(*theta) else None
            if poly is None or len(poly.terms()) != 1 or poly.coeffs()[0] != 1 or poly.is_ground:
                raise _bad(f"weights[{i}]", "a monomial in the parameters with coefficient 1", text)
            weights.append(expr)
        used = set().union(*(w.free_symbols for w in weights))
        unused = [p for p in params if names[p] not in used]
        if unused:
            raise _bad("parameters", "names each used by some weight", f"unused {unused}")

        n = len(weights)
        groups = data.get("groups", [list(range(n))])
        ok = isinstance(groups, list) and all(
            isinstance(g, list) and g and all(type(i) is int for i in g) for g in groups
        )
        if not ok or sorted(i for g in groups for i in g) != list(range(n)):
            raise _bad(
                "groups",
                f"lists of weight indices partitioning 0..{n - 1} (each exactly once)",
                groups,
            )
        penalty = _parse(data["penalty"], "penalty", names)
        description = data.get("description", "")
        if not isinstance(description, str):
            raise _bad("description", "a string", description)
        return cls(
            name,
            tuple(params),
            tuple(weights),
            tuple(tuple(g) for g in groups),
            penalty,
            description,
        )

    @cached_property
    def theta(self) -> tuple[sp.Symbol, ...]:
        """The real parameter symbols, in the order of :attr:`parameters`."""
        return tuple(sp.Symbol(p, real=True) for p in self.parameters)

    @property
    def n_params(self) -> int:
        """Number of parameters :math:`n`."""
        return len(self.parameters)

    @property
    def n_weights(self) -> int:
        """Number of weights :math:`p`."""
        return len(self.weights)

    @cached_property
    def weight_labels(self) -> tuple[str, ...]:
        """``w_1, ..., w_p``."""
        return tuple(f"w_{i + 1}" for i in range(self.n_weights))

    @cached_property
    def exponents(self) -> tuple[tuple[int, ...], ...]:
        r"""The exponent matrix :math:`A` (``p x n``): :math:`w_i = \prod_k \theta_k^{A_{ik}}`."""
        return tuple(sp.Poly(w, *self.theta).monoms()[0] for w in self.weights)

    def to_toml(self) -> str:
        """The spec as TOML text (round-trips through :func:`load_spec`)."""

        def quoted(items: object) -> str:
            return "[" + ", ".join(f'"{x}"' for x in items) + "]"  # type: ignore[attr-defined]

        lines = [
            f"parameters = {quoted(self.parameters)}",
            f"weights = {quoted(self.weights)}",
            f"groups = {[list(g) for g in self.groups]}",
            f'penalty = "{self.penalty}"',
        ]
        if self.description:
            lines.append(f'description = "{self.description}"')
        return "\n".join(lines) + "\n"


def load_spec(path: str | Path) -> MonomialSpec:
    """Read and validate a spec TOML file (the ``--spec FILE`` of ``dgating derive``)."""
    from .._io import read_toml

    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(f"`--spec` must be a TOML file; got '{path}' (not found).")
    return MonomialSpec.from_dict(read_toml(path, "--spec"), path.stem)


def builtin_spec_names() -> tuple[str, ...]:
    """Names of the specs shipped in ``dgating/theory/specs`` (e.g. ``"hierarchical"``)."""
    folder = resources.files("dgating.theory") / "specs"
    return tuple(sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".toml")))


def builtin_spec(name: str) -> MonomialSpec:
    """Load a built-in spec by name (see :func:`builtin_spec_names`).

    Examples
    --------
    >>> builtin_spec("hierarchical").weights
    (beta*gamma_1*omega_1, beta*gamma_2*omega_2)
    """
    from .._validation import check_choice

    name = check_choice(name, "spec", builtin_spec_names())
    with resources.as_file(resources.files("dgating.theory") / "specs" / f"{name}.toml") as path:
        return load_spec(path)
