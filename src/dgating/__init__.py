r"""dgating: verify the theory of D-Gating structured sparsity and simulate its training dynamics.

D-Gating writes each group of weights as :math:`w_{G_j} = \omega_{G_j}\prod_{d=1}^{D-1}\gamma_{j,d}`
and minimises the smooth :math:`L(\omega, \Gamma) = L_0(w) + \frac{\lambda}{D}(\|\omega\|^2 +
\|\Gamma\|_F^2)`, whose balanced points and local minima correspond to those of the non-smooth
:math:`L_w(w) = L_0(w) + \lambda\sum_j\|w_{G_j}\|_2^{2/D}` (Kolb et al., NeurIPS 2025).

Notation (symbol :math:`\leftrightarrow` argument name):

=========================  =====================================================
:math:`\omega`             ``omega``, shape ``(n_features,)``
:math:`\Gamma`             ``gates``, shape ``(n_groups, depth - 1)``
:math:`\lambda`            ``lam``
:math:`D`                  ``depth``
:math:`q = 2/D`            ``q``
:math:`J`                  ``n_groups``
:math:`\Delta_{j,d}`       ``imbalance``, :math:`\|\omega_{G_j}\|^2 - \gamma_{j,d}^2`
=========================  =====================================================

Subpackages: :mod:`dgating.theory` (sympy derivations), :mod:`dgating.simulations` (gradient flow
and SGD), :mod:`dgating.proofs_check` (numerical verification of the correspondence of minima),
:mod:`dgating.figures` (theory figures and the report), :mod:`dgating.nn` (torch layers),
:mod:`dgating.paths` (regularisation paths), :mod:`dgating.estimators` (scikit-learn estimators).
"""

from .certificates import Certificate, certify
from .gating import DGating, GatedParams
from .groups import Groups
from .losses import LogisticLoss, SquaredLoss
from .objectives import GatedObjective, PenalisedObjective
from .paths import PathResult, solve_path
from .penalties import GroupLqPenalty, effective_q, scalar_prox
from .problem import GroupedProblem, TorchProblem, load_problem
from .solvers import SolveResult, initial_point, solve, solve_gated, solve_prox

__version__ = "0.2.0"

__all__ = [
    "Certificate",
    "DGating",
    "GatedObjective",
    "GatedParams",
    "GroupLqPenalty",
    "GroupedProblem",
    "Groups",
    "LogisticLoss",
    "PathResult",
    "PenalisedObjective",
    "SolveResult",
    "SquaredLoss",
    "TorchProblem",
    "__version__",
    "certify",
    "effective_q",
    "initial_point",
    "load_problem",
    "scalar_prox",
    "solve",
    "solve_gated",
    "solve_path",
    "solve_prox",
]
