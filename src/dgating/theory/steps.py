r"""Checked derivation steps: an identity (or inequality) together with its simplified residual.

A :class:`Step` records ``lhs``, ``rhs`` and the residual ``lhs - rhs`` after simplification. An
identity *holds* when the residual simplifies to exactly ``0``; an inequality holds when sympy can
prove the sign of the residual from the symbols' assumptions. Steps never raise on failure: the
caller (and the ``dgating derive`` exit status) decides.

Examples
--------
>>> import sympy as sp
>>> x = sp.Symbol("x", positive=True)
>>> check_identity("square of a root", sp.sqrt(x) ** 2, x).holds
True
>>> check_identity("a wrong identity", (x + 1) ** 2, x**2 + 1).residual
2*x
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

__all__ = ["Step", "check_identity", "check_inequality", "simplify_residual"]

_RELATIONS = {"=": "=", ">": ">", ">=": r"\ge"}


def simplify_residual(expr: sp.Expr) -> sp.Expr:
    """Simplify ``expr``, trying cheap rewrites before :func:`sympy.simplify`.

    The cheap passes (``expand``, ``cancel``) settle the polynomial and rational identities that
    make up most steps in milliseconds; ``simplify`` is only reached for radicals and exponentials.
    """
    expr = sp.sympify(expr)
    if isinstance(expr, sp.MatrixBase):
        entries = expr.applyfunc(simplify_residual)
        return sp.S.Zero if entries.is_zero_matrix else entries
    if expr == 0:
        return sp.S.Zero
    for simplifier in (sp.expand, sp.cancel, sp.simplify):
        expr = simplifier(expr)
        if expr == 0:
            return sp.S.Zero
    return expr


@dataclass(frozen=True)
class Step:
    r"""One checked step :math:`\mathrm{lhs} \;\mathrm{rel}\; \mathrm{rhs}`.

    Parameters
    ----------
    name : str
        What the step shows, in words.
    lhs, rhs : sympy.Expr
        The two sides.
    residual : sympy.Expr
        ``lhs - rhs`` after :func:`simplify_residual`.
    relation : {"=", ">", ">="}
        ``"="`` for identities.
    note : str
        Optional justification shown in the LaTeX output.
    """

    name: str
    lhs: sp.Expr
    rhs: sp.Expr
    residual: sp.Expr
    relation: str = "="
    note: str = ""

    @property
    def holds(self) -> bool:
        """Whether the residual is exactly 0 (identities) or provably of the right sign."""
        if self.relation == "=":
            return self.residual == 0
        if self.relation == ">":
            return bool(self.residual.is_positive)
        return bool(self.residual.is_nonnegative)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (expressions as ``str``)."""
        return {
            "name": self.name,
            "lhs": str(self.lhs),
            "relation": self.relation,
            "rhs": str(self.rhs),
            "residual": str(self.residual),
            "holds": self.holds,
        }

    def to_latex(self) -> str:
        """One LaTeX paragraph: the name, the displayed relation and its residual."""
        rel = _RELATIONS[self.relation]
        mark = "checked" if self.holds else r"\textbf{FAILED}"
        lines = [
            rf"\paragraph{{{_escape(self.name)}}}",
            rf"\[ {sp.latex(self.lhs)} \;{rel}\; {sp.latex(self.rhs)} \]",
            rf"Residual: \( {sp.latex(self.residual)} \) ({mark}).",
        ]
        if self.note:
            lines.append(_escape(self.note))
        return "\n".join(lines)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
}


def _escape(text: str) -> str:
    return re.sub(r"[\\&%$#_{}]", lambda m: _LATEX_SPECIAL[m.group()], text)


def check_identity(name: str, lhs: sp.Expr, rhs: sp.Expr, note: str = "") -> Step:
    """Return the :class:`Step` ``lhs = rhs`` with its simplified residual."""
    lhs, rhs = sp.sympify(lhs), sp.sympify(rhs)
    return Step(name, lhs, rhs, simplify_residual(lhs - rhs), "=", note)


def check_inequality(
    name: str, lhs: sp.Expr, rhs: sp.Expr, *, strict: bool = False, note: str = ""
) -> Step:
    """Return the :class:`Step` ``lhs > rhs`` (``strict``) or ``lhs >= rhs``."""
    lhs, rhs = sp.sympify(lhs), sp.sympify(rhs)
    rel = ">" if strict else ">="
    return Step(name, lhs, rhs, simplify_residual(lhs - rhs), rel, note)
