r"""Numerical verification that the local minima of the gated :math:`L` and of :math:`L_w`
correspond (Theorem 1 of Kolb et al., NeurIPS 2025; docs/theory.md [T-balance], [T-minima],
[T-zero-groups]).

Checks return :class:`CheckResult` objects and never assert; :func:`run_suite` runs them on a
registry of problems (:data:`PROBLEMS`) and depths, together with negative controls
(:data:`CONTROLS`) that must be flagged. ``dgating verify`` is the command-line front end.
"""

from .checks import (
    check_balanced,
    check_gated_gradient,
    check_gated_hessian,
    check_gated_minimiser,
    check_penalised_certificate,
    check_penalised_minimiser,
    check_values,
    perturbation_test_gated,
    perturbation_test_penalised,
)
from .controls import CONTROLS, ControlResult, run_control
from .multistart import MultiStartResult, check_multistart, run_multistart
from .problems import PROBLEMS, ProblemSpec, TorchNetProblem, get_problem, suite_problems
from .result import CheckResult
from .suite import SuiteResult, SuiteRow, run_suite

__all__ = [
    "CONTROLS",
    "CheckResult",
    "ControlResult",
    "MultiStartResult",
    "PROBLEMS",
    "ProblemSpec",
    "SuiteResult",
    "SuiteRow",
    "TorchNetProblem",
    "check_balanced",
    "check_gated_gradient",
    "check_gated_hessian",
    "check_gated_minimiser",
    "check_multistart",
    "check_penalised_certificate",
    "check_penalised_minimiser",
    "check_values",
    "get_problem",
    "perturbation_test_gated",
    "perturbation_test_penalised",
    "run_control",
    "run_multistart",
    "run_suite",
    "suite_problems",
]
