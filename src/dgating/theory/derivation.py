r"""One entry point, :func:`derive`, collecting every derivation for a depth and a group size.

The result, :class:`Derivation`, is a frozen record of the derived expressions and of every
checked step (grouped in sections), exportable with :meth:`Derivation.to_json` (the output of
``dgating derive --json``) and :meth:`Derivation.to_latex` (``--latex FILE``).

Examples
--------
>>> der = derive(3, group_size=2)
>>> der.effective_penalty, der.imbalance_rate, der.number_of_conservation_laws
(r**(2/3), 4*lam/3, 2)
>>> der.gap_rates
{'surviving': 8*lam/3, 'vanishing': 4*lam/3}
>>> der.ok
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from .._validation import check_depth, check_positive
from .balancedness import balancedness_identity, imbalance_dynamics, sgd_recursion
from .conservation import conservation_laws
from .effective_penalty import amgm_chain, effective_penalty
from .gap import gap_bound, gap_identity, surviving_gap_rate, vanishing_gap_rate
from .parametrization import Parametrization, make_parametrization
from .steps import Step

__all__ = ["Derivation", "derive"]


@dataclass(frozen=True)
class Derivation:
    r"""Everything :func:`derive` found, with the checked steps.

    Attributes
    ----------
    spec : Parametrization
        The parametrisation (name, factors, map :math:`\theta \mapsto w`).
    group_size : int
        :math:`p_j` (number of coordinates for Hadamard).
    effective_penalty : sympy.Expr or None
        Penalty per block as a function of ``r`` :math:`= \|w_B\|` (``None``: not derived).
    effective_penalty_total : sympy.Expr or None
        The penalty of all weights, :math:`\sum_B \|w_B\|^{2/D}`.
    minimisers : dict
        Balanced minimisers (``omega``, ``gates``) for the first block, with signs ``s_d``.
    imbalance_rate : sympy.Expr
        :math:`\rho` with :math:`\dot\Delta = -\rho\Delta`.
    imbalance_solution : sympy.Expr
        :math:`\Delta(t)`.
    conserved_quantities : tuple of sympy.Expr
        Every law found (conserved at :math:`\lambda = 0`, decaying at rate :math:`\rho`).
    independent_quantities : tuple of sympy.Expr
        A functionally independent subset.
    number_of_conservation_laws : int or None
        From the Lie-algebra computation (``None`` if undecided).
    lie_status, lie_message : str
        Outcome of the Lie-algebra computation.
    lie_trace_dims : tuple of int
        Trace dimensions per bracket level.
    gap_rates : dict
        ``{"surviving": rate, "vanishing": rate}`` (empty if not derived).
    gap_bound : sympy.Expr or None
        :math:`C_D` in :math:`AM - GM \le C_D \sum_d |\Delta_d|`.
    sgd_contraction, sgd_remainder : sympy.Expr
        :math:`\Delta^+ = c\,\Delta + \eta^2 R`.
    sgd_multiplicative : bool
        Whether :math:`R` is a multiple of :math:`\Delta`.
    sgd_step_range : sympy.Set
        Step sizes with :math:`c < 1`.
    sections : tuple of (str, tuple of Step)
        The checked steps, by topic.
    undecided : tuple of str
        What the engine could not decide, in words.
    """

    spec: Parametrization
    group_size: int
    effective_penalty: sp.Expr | None
    effective_penalty_total: sp.Expr | None
    minimisers: dict[str, tuple[sp.Expr, ...]]
    imbalance_rate: sp.Expr
    imbalance_solution: sp.Expr
    conserved_quantities: tuple[sp.Expr, ...]
    independent_quantities: tuple[sp.Expr, ...]
    number_of_conservation_laws: int | None
    lie_status: str
    lie_message: str
    lie_trace_dims: tuple[int, ...]
    gap_rates: dict[str, sp.Expr]
    gap_bound: sp.Expr | None
    sgd_contraction: sp.Expr
    sgd_remainder: sp.Expr
    sgd_multiplicative: bool
    sgd_step_range: sp.Set
    sections: tuple[tuple[str, tuple[Step, ...]], ...]
    undecided: tuple[str, ...] = field(default=())

    @property
    def depth(self) -> int:
        """:math:`D`."""
        return self.spec.depth

    @property
    def steps(self) -> tuple[Step, ...]:
        """All checked steps."""
        return tuple(step for _, steps in self.sections for step in steps)

    @property
    def failed(self) -> tuple[Step, ...]:
        """The steps whose residual did not simplify to 0 (or whose sign was not proved)."""
        return tuple(step for step in self.steps if not step.holds)

    @property
    def ok(self) -> bool:
        """Whether every checked step holds."""
        return not self.failed

    @property
    def overall_gap_rate(self) -> sp.Expr | None:
        """Rate of the whole gap when both classes are present: the minimum of the two."""
        if not self.gap_rates:
            return None
        return sp.Min(*self.gap_rates.values())

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict; every expression is a ``str`` that :func:`sympy.sympify` parses."""

        def s(x: object) -> str | None:
            return None if x is None else str(x)

        return {
            "depth": self.depth,
            "group_size": self.group_size,
            "parametrization": self.spec.name,
            "weights": [str(w) for w in self.spec.weights],
            "n_params": self.spec.n_params,
            "effective_penalty": s(self.effective_penalty),
            "effective_penalty_variable": "r = ||w_B||_2 for each block B of weights sharing "
            "their gates (r = |w_i| for Hadamard)",
            "effective_penalty_total": s(self.effective_penalty_total),
            "minimisers": {k: [str(v) for v in vs] for k, vs in self.minimisers.items()},
            "imbalance_rate": s(self.imbalance_rate),
            "imbalance_solution": s(self.imbalance_solution),
            "conserved_quantities": [str(h) for h in self.conserved_quantities],
            "independent_conserved_quantities": [str(h) for h in self.independent_quantities],
            "number_of_conservation_laws": self.number_of_conservation_laws,
            "number_of_independent_laws_found": len(self.independent_quantities),
            "laws_complete": self.number_of_conservation_laws == len(self.independent_quantities),
            "lie_algebra": {
                "status": self.lie_status,
                "message": self.lie_message,
                "trace_dims": list(self.lie_trace_dims),
            },
            "gap_rates": {k: str(v) for k, v in self.gap_rates.items()},
            "overall_gap_rate": s(self.overall_gap_rate),
            "gap_bound_constant": s(self.gap_bound),
            "sgd_contraction": s(self.sgd_contraction),
            "sgd_remainder_over_eta_squared": s(self.sgd_remainder),
            "sgd_multiplicative": self.sgd_multiplicative,
            "sgd_step_size_range": s(self.sgd_step_range),
            "identities_checked": len(self.steps),
            "identities_failed": [step.name for step in self.failed],
            "undecided": list(self.undecided),
            "ok": self.ok,
        }

    def to_latex(self) -> str:
        """A standalone LaTeX document with every derivation step and its residual."""
        from .steps import _escape

        head = [
            r"\documentclass{article}",
            r"\usepackage{amsmath,amssymb}",
            r"\usepackage[margin=2cm]{geometry}",
            r"\allowdisplaybreaks",
            r"\begin{document}",
            rf"\section*{{dgating derive: {_escape(self.spec.name)}, $D = {self.depth}$, "
            rf"$p = {self.group_size}$}}",
            "Weights: "
            + ", ".join(rf"\({sp.latex(w)}\)" for w in self.spec.weights)
            + ". Every residual below was simplified by sympy.",
        ]
        body = []
        for title, steps in self.sections:
            body.append(rf"\subsection*{{{_escape(title)}}}")
            body.extend(step.to_latex() for step in steps)
        summary = [
            r"\subsection*{Results}",
            r"\begin{itemize}",
            rf"\item effective penalty per block: \({_latex(self.effective_penalty)}\)",
            rf"\item imbalance rate: \({_latex(self.imbalance_rate)}\), "
            rf"\(\Delta(t) = {_latex(self.imbalance_solution)}\)",
            rf"\item conservation laws (Lie algebra): {self.number_of_conservation_laws} "
            rf"({_escape(self.lie_message)})",
            *(rf"\item gap rate, {k} groups: \({sp.latex(v)}\)" for k, v in self.gap_rates.items()),
            rf"\item SGD contraction: \({_latex(self.sgd_contraction)}\) for "
            rf"\(\eta \in {_latex(self.sgd_step_range)}\)",
            *(rf"\item undecided: {_escape(u)}" for u in self.undecided),
            r"\end{itemize}",
            r"\end{document}",
        ]
        return "\n".join(head + body + summary) + "\n"


def _latex(x: object) -> str:
    return r"\text{not derived}" if x is None else sp.latex(x)


def derive(
    depth: int, group_size: int = 1, parametrization: str | Parametrization = "dgating"
) -> Derivation:
    r"""Derive and check every statement of docs/theory.md for one depth and group size.

    Parameters
    ----------
    depth : int
        :math:`D \ge 2`.
    group_size : int, default=1
        :math:`p_j \ge 1` (for ``"hadamard"``: the number of coordinates; for
        ``"shared-gates"``: the size of each of the two groups sharing the gates).
    parametrization : {"dgating", "hadamard", "shared-gates"} or Parametrization
        Which multiplicative parametrisation; any :class:`Parametrization` is accepted, for which
        the effective penalty and the gap rates are derived only when factors ``2..D`` share one
        partition (otherwise they are reported in :attr:`Derivation.undecided`).

    Returns
    -------
    Derivation

    Examples
    --------
    >>> der = derive(2, 1, "hadamard")
    >>> der.effective_penalty_total, der.number_of_conservation_laws
    (Abs(w_1), 1)
    """
    if isinstance(parametrization, Parametrization):
        spec = parametrization
        group_size = spec.n_weights
    else:
        depth = check_depth(depth)
        group_size = int(check_positive(group_size, "group_size", integer=True))
        spec = make_parametrization(parametrization, depth, group_size)
    D = spec.depth
    sections: list[tuple[str, tuple[Step, ...]]] = []
    undecided: list[str] = []

    # 1. effective penalty, block by block.
    partition = spec.gate_partition()
    eff = total = None
    minimisers: dict[str, tuple[sp.Expr, ...]] = {}
    block_sizes: list[int] = []
    if partition is None:
        undecided.append(
            "effective penalty: factors 2..D do not share one partition; the Lagrange derivation "
            "covers only that case."
        )
    else:
        blocks = [[i for i, b in enumerate(partition) if b == k] for k in range(max(partition) + 1)]
        block_sizes = [len(b) for b in blocks]
        terms = []
        for size in sorted(set(block_sizes)):
            res = effective_penalty(D, size)
            sections.append((f"Effective penalty (Lagrange), block size {size}", res.steps))
            if size == block_sizes[0]:
                eff = res.expr
                minimisers = {"omega": res.omega, "gates": res.gates}
        w = spec.weight_symbols
        for blk in blocks:
            norm = sp.sqrt(sp.Add(*(w[i] ** 2 for i in blk)))
            terms.append(eff.subs(sp.Symbol("r", positive=True), norm))
        total = sp.Add(*terms)
        sections.append(("Effective penalty for symbolic D (AM-GM chain)", amgm_chain()))

    # 2. conservation laws and their count.
    cons = conservation_laws(spec)
    sections.append(("Conservation (lam = 0) and decay (lam > 0) laws, undefined L0", cons.steps))
    if not cons.lie.decided:
        undecided.append(f"number of conservation laws: {cons.lie.message}")

    # 3. imbalance dynamics, gap, rates.
    dyn = imbalance_dynamics(spec)
    imb_steps = list(dyn.steps)
    if spec.name == "dgating":
        imb_steps = list(balancedness_identity(D, group_size)) + imb_steps
    sections.append(("Imbalance dynamics", tuple(imb_steps)))
    rates: dict[str, sp.Expr] = {}
    bound = None
    if block_sizes:
        size = block_sizes[0]
        bound, bound_steps = gap_bound(D)
        sections.append(("Objective gap", gap_identity(D, size) + bound_steps))
        surv, van = surviving_gap_rate(D), vanishing_gap_rate(D, size)
        sections.append(("Gap rate, surviving groups", surv.steps))
        sections.append(("Gap rate, vanishing groups", van.steps))
        rates = {"surviving": surv.rate, "vanishing": van.rate}
    else:
        undecided.append("gap rates: derived only for blocks that are D-Gating groups.")

    # 4. discrete (S)GD.
    sgd = sgd_recursion(spec)
    sections.append(("One step of (S)GD", sgd.steps))

    return Derivation(
        spec=spec,
        group_size=group_size,
        effective_penalty=eff,
        effective_penalty_total=total,
        minimisers=minimisers,
        imbalance_rate=dyn.rate,
        imbalance_solution=dyn.solution,
        conserved_quantities=cons.laws,
        independent_quantities=cons.independent,
        number_of_conservation_laws=cons.lie.n_laws,
        lie_status=cons.lie.status,
        lie_message=cons.lie.message,
        lie_trace_dims=cons.lie.trace_dims,
        gap_rates=rates,
        gap_bound=bound,
        sgd_contraction=sgd.contraction,
        sgd_remainder=sgd.remainder,
        sgd_multiplicative=sgd.multiplicative,
        sgd_step_range=sgd.step_range,
        sections=tuple(sections),
        undecided=tuple(undecided),
    )
