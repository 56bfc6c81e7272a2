r"""Symbolic derivations (sympy) of the D-Gating theory, each step checked.

Every statement of docs/theory.md that has a symbolic side is *derived* here, not typed in, for a
concrete depth :math:`D` and group size :math:`p_j`, with the loss :math:`L_0` an undefined sympy
function so that the results hold for every loss:

=====================================  ===================================================
:func:`effective_penalty`               :math:`\min \frac{1}{D}(\|\omega\|^2 + \|\gamma\|^2)
                                        = \|w\|^{2/D}` from the Lagrange conditions
:func:`amgm_chain`                      the same for symbolic :math:`D` (AM-GM chain)
:func:`conservation_laws`               laws at :math:`\lambda = 0`, their number by the
                                        Lie-algebra method (Marcotte, Gribonval & Peyre 2023)
:func:`imbalance_rate`                  :math:`\dot\Delta = -\frac{4\lambda}{D}\Delta`
:func:`gap_rates`                       asymptotic rate of :math:`L - L_w` by group class
:func:`sgd_contraction`                 :math:`(1 - 2\eta\lambda/D)^2` per (S)GD step
:func:`sgd_limit_factors`               per-step factor of scalar groups at their limits
:func:`derive`                          all of it, as a :class:`Derivation`
:func:`derive_spec`                     any monomial parametrisation defined by its parts
                                        (:class:`MonomialSpec`, ``derive --spec FILE``):
                                        effective penalty, conserved quantities, decay laws
=====================================  ===================================================

Symbols (:mod:`dgating.theory.symbols`): ``lam`` :math:`\lambda > 0`, ``eta`` :math:`\eta > 0`,
``g`` :math:`\|g_j^*\| \ge 0`, ``r`` :math:`\|w_j\|`, ``t`` time.

Examples
--------
>>> from dgating.theory import gap_rates, imbalance_rate
>>> imbalance_rate(4), gap_rates(4)
(lam, {'surviving': 2*lam, 'vanishing': lam})
"""

from .balancedness import (
    balancedness_identity,
    imbalance_dynamics,
    imbalance_rate,
    imbalance_rate_of,
    sgd_contraction,
    sgd_limit_factors,
    sgd_recursion,
)
from .conservation import (
    ConservationResult,
    DecayLaw,
    LieAlgebraResult,
    candidate_laws,
    check_conserved,
    check_decay,
    conservation_laws,
    functional_rank,
    lie_algebra_rank,
)
from .derivation import Derivation, SpecDerivation, derive, derive_spec
from .effective_penalty import (
    EffectivePenaltyResult,
    SpecPenaltyResult,
    amgm_chain,
    effective_penalty,
    spec_effective_penalty,
)
from .gap import (
    GapRateResult,
    gap_bound,
    gap_identity,
    gap_rates,
    stated_gap_rates,
    surviving_gap_rate,
    vanishing_gap_rate,
)
from .parametrization import (
    PARAMETRIZATIONS,
    Factor,
    Parametrization,
    dgating_parametrization,
    flow_derivative,
    hadamard_parametrization,
    make_parametrization,
    shared_gates_parametrization,
)
from .spec import MAX_PARAMETERS, MonomialSpec, builtin_spec, builtin_spec_names, load_spec
from .steps import Step, check_identity, check_inequality
from .symbols import eps, eta, g, lam, r, t

__all__ = [
    "MAX_PARAMETERS",
    "PARAMETRIZATIONS",
    "ConservationResult",
    "DecayLaw",
    "Derivation",
    "EffectivePenaltyResult",
    "Factor",
    "GapRateResult",
    "LieAlgebraResult",
    "MonomialSpec",
    "Parametrization",
    "SpecDerivation",
    "SpecPenaltyResult",
    "Step",
    "amgm_chain",
    "balancedness_identity",
    "builtin_spec",
    "builtin_spec_names",
    "candidate_laws",
    "check_conserved",
    "check_decay",
    "check_identity",
    "check_inequality",
    "conservation_laws",
    "derive",
    "derive_spec",
    "dgating_parametrization",
    "effective_penalty",
    "eps",
    "eta",
    "flow_derivative",
    "functional_rank",
    "g",
    "gap_bound",
    "gap_identity",
    "gap_rates",
    "hadamard_parametrization",
    "imbalance_dynamics",
    "imbalance_rate",
    "imbalance_rate_of",
    "lam",
    "lie_algebra_rank",
    "load_spec",
    "make_parametrization",
    "r",
    "sgd_contraction",
    "sgd_limit_factors",
    "sgd_recursion",
    "shared_gates_parametrization",
    "spec_effective_penalty",
    "stated_gap_rates",
    "surviving_gap_rate",
    "t",
    "vanishing_gap_rate",
]
