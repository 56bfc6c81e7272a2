r"""Entry points: :func:`derive` (a depth and a group size) and :func:`derive_spec` (a spec).

The result, :class:`Derivation`, is a frozen record of the derived expressions and of every
checked step (grouped in sections), exportable with :meth:`Derivation.to_json` (the output of
``dgating derive --json``) and :meth:`Derivation.to_latex` (``--latex FILE``). A built-in
parametrisation also goes through the spec engine (:meth:`Parametrization.to_spec`), which gives
the conserved quantities, their decay laws and ``effective_penalty_status``.
:class:`SpecDerivation` is the record of ``dgating derive --spec FILE``: everything derived from
the parts of a :class:`~dgating.theory.spec.MonomialSpec` alone.

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
from .balancedness import (
    SGDLimitFactors,
    balancedness_identity,
    imbalance_dynamics,
    sgd_limit_factors,
    sgd_recursion,
)
from .conservation import ConservationResult, DecayLaw, conservation_laws
from .effective_penalty import (
    SpecPenaltyResult,
    amgm_chain,
    effective_penalty,
    spec_effective_penalty,
)
from .gap import gap_bound, gap_identity, surviving_gap_rate, vanishing_gap_rate
from .parametrization import Parametrization, make_parametrization
from .spec import MonomialSpec, builtin_spec
from .steps import Step

__all__ = ["Derivation", "SpecDerivation", "derive", "derive_spec"]


class _Checked:
    """The checked steps of a derivation, from its ``sections``."""

    sections: tuple[tuple[str, tuple[Step, ...]], ...]

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


@dataclass(frozen=True)
class Derivation(_Checked):
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
    effective_penalty_status : str
        ``"derived"`` or why the spec engine (:func:`derive_spec`) cannot decide.
    imbalance_rate : sympy.Expr
        :math:`\rho` with :math:`\dot\Delta = -\rho\Delta`.
    imbalance_solution : sympy.Expr
        :math:`\Delta(t)`.
    conserved_quantities : tuple of sympy.Expr
        A basis of the laws (conserved at :math:`\lambda = 0`) from the spec engine.
    decay_laws : tuple of DecayLaw
        Rate (or ``None`` and the ODE) of each conserved quantity with weight decay.
    number_of_conservation_laws : int or None
        From the Lie-algebra computation (``None`` if undecided).
    lie_status, lie_message : str
        Outcome of the Lie-algebra computation.
    lie_trace_dims : tuple of int
        Trace dimensions per bracket level.
    gap_rates : dict
        ``{"surviving": rate, "vanishing": rate}`` (empty if not derived).
    gap_hypotheses : dict
        Per class, the hypotheses under which the derived rate is the asymptotic rate.
    gap_bound : sympy.Expr or None
        :math:`C_D` in :math:`AM - GM \le C_D \sum_d |\Delta_d|`.
    sgd_contraction, sgd_remainder : sympy.Expr
        :math:`\Delta^+ = c\,\Delta + \eta^2 R`.
    sgd_multiplicative : bool
        Whether :math:`R` is a multiple of :math:`\Delta`.
    sgd_step_range : sympy.Set
        Step sizes with :math:`c < 1`.
    sgd_limit : SGDLimitFactors or None
        Per-step imbalance factors of scalar D-Gating groups at their limits (``None`` for other
        parametrisations).
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
    effective_penalty_status: str
    imbalance_rate: sp.Expr
    imbalance_solution: sp.Expr
    conserved_quantities: tuple[sp.Expr, ...]
    decay_laws: tuple[DecayLaw, ...]
    number_of_conservation_laws: int | None
    lie_status: str
    lie_message: str
    lie_trace_dims: tuple[int, ...]
    gap_rates: dict[str, sp.Expr]
    gap_hypotheses: dict[str, tuple[str, ...]]
    gap_bound: sp.Expr | None
    sgd_contraction: sp.Expr
    sgd_remainder: sp.Expr
    sgd_multiplicative: bool
    sgd_step_range: sp.Set
    sgd_limit: SGDLimitFactors | None
    sections: tuple[tuple[str, tuple[Step, ...]], ...]
    undecided: tuple[str, ...] = field(default=())

    @property
    def depth(self) -> int:
        """:math:`D`."""
        return self.spec.depth

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
            "effective_penalty_status": self.effective_penalty_status,
            "effective_penalty_total": s(self.effective_penalty_total),
            "minimisers": {k: [str(v) for v in vs] for k, vs in self.minimisers.items()},
            "imbalance_rate": s(self.imbalance_rate),
            "imbalance_solution": s(self.imbalance_solution),
            "conserved_quantities": [str(h) for h in self.conserved_quantities],
            # the conserved quantities are a basis: every one is independent
            "independent_conserved_quantities": [str(h) for h in self.conserved_quantities],
            "decay_laws": [d.to_dict() for d in self.decay_laws],
            "number_of_conservation_laws": self.number_of_conservation_laws,
            "number_of_independent_laws_found": len(self.conserved_quantities),
            "laws_complete": self.number_of_conservation_laws == len(self.conserved_quantities),
            "lie_algebra": {
                "status": self.lie_status,
                "message": self.lie_message,
                "trace_dims": list(self.lie_trace_dims),
            },
            "gap_rates": {k: str(v) for k, v in self.gap_rates.items()},
            "gap_rate_hypotheses": {k: list(v) for k, v in self.gap_hypotheses.items()},
            "overall_gap_rate": s(self.overall_gap_rate),
            "gap_bound_constant": s(self.gap_bound),
            "sgd_contraction": s(self.sgd_contraction),
            "sgd_remainder_over_eta_squared": s(self.sgd_remainder),
            "sgd_multiplicative": self.sgd_multiplicative,
            "sgd_step_size_range": s(self.sgd_step_range),
            "sgd_scalar_limit_factors": None
            if self.sgd_limit is None
            else {
                "vanishing": str(self.sgd_limit.vanishing),
                "surviving": str(self.sgd_limit.surviving),
                "hypotheses": list(self.sgd_limit.hypotheses),
            },
            "identities_checked": len(self.steps),
            "identities_failed": [step.name for step in self.failed],
            "undecided": list(self.undecided),
            "ok": self.ok,
        }

    def to_latex(self) -> str:
        """A standalone LaTeX document with every derivation step and its residual."""
        from .steps import _escape

        return _document(
            rf"{_escape(self.spec.name)}, $D = {self.depth}$, $p = {self.group_size}$",
            self.spec.weights,
            self.sections,
            [
                rf"effective penalty per block: \({_latex(self.effective_penalty)}\)",
                rf"imbalance rate: \({_latex(self.imbalance_rate)}\), "
                rf"\(\Delta(t) = {_latex(self.imbalance_solution)}\)",
                rf"conservation laws (Lie algebra): {self.number_of_conservation_laws} "
                rf"({_escape(self.lie_message)})",
                *(rf"gap rate, {k} groups: \({sp.latex(v)}\)" for k, v in self.gap_rates.items()),
                *(
                    rf"hypothesis ({k}): {_escape(h)}"
                    for k, hs in self.gap_hypotheses.items()
                    for h in hs
                ),
                rf"SGD contraction: \({_latex(self.sgd_contraction)}\) for "
                rf"\(\eta \in {_latex(self.sgd_step_range)}\)",
                *(rf"undecided: {_escape(u)}" for u in self.undecided),
            ],
        )


def _document(
    title: str,
    weights: tuple[sp.Expr, ...],
    sections: tuple[tuple[str, tuple[Step, ...]], ...],
    results: list[str],
) -> str:
    """A standalone LaTeX document: title, weights, the checked steps by section, results."""
    from .steps import _escape

    head = [
        r"\documentclass{article}",
        r"\usepackage{amsmath,amssymb}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\allowdisplaybreaks",
        r"\begin{document}",
        rf"\section*{{dgating derive: {title}}}",
        "Weights: "
        + ", ".join(rf"\({sp.latex(w)}\)" for w in weights)
        + ". Every residual below was simplified by sympy.",
    ]
    body = []
    for name, steps in sections:
        body.append(rf"\subsection*{{{_escape(name)}}}")
        body.extend(step.to_latex() for step in steps)
    summary = [
        r"\subsection*{Results}",
        r"\begin{itemize}",
        *(rf"\item {item}" for item in results),
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
        partition (otherwise they are reported in :attr:`Derivation.undecided`). The
        conservation and decay laws come from the spec engine on ``parametrization.to_spec()``.

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

    # 2. the same parametrisation as a spec: effective penalty and laws from its parts.
    as_spec = spec.to_spec()
    engine_penalty = spec_effective_penalty(as_spec)
    sections.append(
        ("Effective penalty from the spec: minimiser on the fibre", engine_penalty.steps)
    )
    cons = conservation_laws(as_spec)
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
    hypotheses: dict[str, tuple[str, ...]] = {}
    bound = None
    if block_sizes:
        size = block_sizes[0]
        bound, bound_steps = gap_bound(D)
        sections.append(("Objective gap", gap_identity(D, size) + bound_steps))
        for res in (surviving_gap_rate(D, size), vanishing_gap_rate(D, size)):
            sections.append((f"Gap rate, {res.group_class} groups", res.steps))
            rates[res.group_class] = res.rate
            hypotheses[res.group_class] = res.hypotheses
    else:
        undecided.append("gap rates: derived only for blocks that are D-Gating groups.")

    # 4. discrete (S)GD.
    sgd = sgd_recursion(spec)
    sections.append(("One step of (S)GD", sgd.steps))
    limit = sgd_limit_factors(D) if spec.name == "dgating" else None
    if limit is not None:
        sections.append(("(S)GD: scalar groups at their limits", limit.steps))

    return Derivation(
        spec=spec,
        group_size=group_size,
        effective_penalty=eff,
        effective_penalty_total=total,
        minimisers=minimisers,
        imbalance_rate=dyn.rate,
        imbalance_solution=dyn.solution,
        effective_penalty_status=engine_penalty.status,
        conserved_quantities=cons.quantities,
        decay_laws=cons.decay_laws,
        number_of_conservation_laws=cons.lie.n_laws,
        lie_status=cons.lie.status,
        lie_message=cons.lie.message,
        lie_trace_dims=cons.lie.trace_dims,
        gap_rates=rates,
        gap_hypotheses=hypotheses,
        gap_bound=bound,
        sgd_contraction=sgd.contraction,
        sgd_remainder=sgd.remainder,
        sgd_multiplicative=sgd.multiplicative,
        sgd_step_range=sgd.step_range,
        sgd_limit=limit,
        sections=tuple(sections),
        undecided=tuple(undecided),
    )


@dataclass(frozen=True)
class SpecDerivation(_Checked):
    r"""Everything :func:`derive_spec` found for a parametrisation defined by its parts.

    Attributes
    ----------
    spec : MonomialSpec
        The parametrisation (parameters, monomial weights, groups, penalty).
    penalty : SpecPenaltyResult
        The effective penalty (``expr`` ``None`` with the reason in ``status`` when undecided).
    conservation : ConservationResult
        Conserved quantities, decay laws and the Lie-algebra count.
    """

    spec: MonomialSpec
    penalty: SpecPenaltyResult
    conservation: ConservationResult

    @property
    def sections(self) -> tuple[tuple[str, tuple[Step, ...]], ...]:
        """The checked steps, by topic."""
        return (
            ("Effective penalty: minimiser on the fibre", self.penalty.steps),
            ("Conservation (lam = 0) and decay (lam > 0), undefined L0", self.conservation.steps),
        )

    @property
    def undecided(self) -> tuple[str, ...]:
        """What the engine could not decide, in words."""
        out = []
        if not self.penalty.decided:
            out.append(f"effective penalty: {self.penalty.status}")
        lie = self.conservation.lie
        if not lie.decided:
            out.append(f"number of conservation laws: {lie.message}")
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (``dgating derive --spec FILE --json``); expressions are ``str``."""
        spec, cons, pen = self.spec, self.conservation, self.penalty
        variable = "r = ||w||_2" if len(spec.groups) == 1 else "r_j = ||w_j||_2 for group j"
        variable += (
            "; the minimiser is written in a_i = |w_i| and the r's (for w_i < 0 flip the sign "
            "of the weight's own parameter)"
        )
        return {
            "parametrization": spec.name,
            "description": spec.description,
            "parameters": list(spec.parameters),
            "weights": [str(w) for w in spec.weights],
            "groups": [list(g) for g in spec.groups],
            "penalty": str(spec.penalty),
            "n_params": spec.n_params,
            "effective_penalty": None if pen.expr is None else str(pen.expr),
            "effective_penalty_status": pen.status,
            "effective_penalty_variable": variable,
            "effective_penalty_minimiser": {str(k): str(v) for k, v in pen.lift.items()},
            "number_of_conservation_laws": cons.lie.n_laws,
            "conserved_quantities": [str(q) for q in cons.quantities],
            "laws_complete": cons.complete,
            "lie_algebra": {
                "status": cons.lie.status,
                "message": cons.lie.message,
                "trace_dims": list(cons.lie.trace_dims),
            },
            "decay_laws": [d.to_dict() for d in cons.decay_laws],
            "identities_checked": len(self.steps),
            "identities_failed": [step.name for step in self.failed],
            "undecided": list(self.undecided),
            "ok": self.ok,
        }

    def to_latex(self) -> str:
        """A standalone LaTeX document with every checked step and the results."""
        from .steps import _escape

        pen, cons = self.penalty, self.conservation
        return _document(
            f"spec {_escape(self.spec.name)}",
            self.spec.weights,
            self.sections,
            [
                rf"penalty: \({sp.latex(self.spec.penalty)}\)",
                rf"effective penalty: \({_latex(pen.expr)}\) ({_escape(pen.status)})",
                rf"conservation laws (Lie algebra): {cons.lie.n_laws} "
                rf"({_escape(cons.lie.message)})",
                *(
                    rf"\(\frac{{d}}{{dt}}({sp.latex(d.quantity)}) = {sp.latex(d.derivative)}\), "
                    rf"rate \({_latex(d.rate)}\)"
                    for d in cons.decay_laws
                ),
            ],
        )


def derive_spec(spec: MonomialSpec | str) -> SpecDerivation:
    r"""Derive the effective penalty, conservation and decay laws of a spec from its parts.

    Parameters
    ----------
    spec : MonomialSpec or str
        A validated spec, or the name of a built-in one
        (:func:`~dgating.theory.spec.builtin_spec_names`).

    Returns
    -------
    SpecDerivation

    Examples
    --------
    >>> der = derive_spec("two-groups")
    >>> der.penalty.expr, der.conservation.lie.n_laws, der.ok
    (r1**(2/3) + r2**(2/3), 4, True)
    """
    if isinstance(spec, str):
        spec = builtin_spec(spec)
    return SpecDerivation(spec, spec_effective_penalty(spec), conservation_laws(spec))
