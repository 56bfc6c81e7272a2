r"""Negative controls: points that are *not* local minimisers (or not balanced), built so that
the checks of :mod:`dgating.proofs_check.checks` must flag them.

Each control returns a :class:`ControlResult` holding the results of the same checks the suite
runs and, per check, the expected outcome: ``"fail"`` for the checks the control targets and
``"pass"`` for the ones that hold by construction (a saddle point is stationary and balanced). A
control is *flagged* when every targeted check fails; the suite reports any other outcome as a
failure.

* ``origin_saddle_d2``: the origin of :math:`L` for :math:`D = 2` with
  :math:`\lambda = \frac12\max_j\|\nabla_j L_0(0)\|` (``reg_wide``): stationary and balanced, but
  the gated Hessian has the eigenvalues :math:`\lambda - \|g_j\| < 0`.
* ``zero_group_saddle_d2``: the group-lasso minimiser of ``reg_tall`` with its strongest group
  forced to zero and the other groups re-optimised: the zero group violates
  :math:`\|g_j\| \le \lambda`; its lift is a saddle of :math:`L` (docs/theory.md [T-zero-groups]).
* ``small_root_saddle_d3``: an orthogonal design where :math:`L_w` separates into
  :math:`\frac12(r - s_j)^2 + \lambda r^{2/3}`; one group sits at the *small* root of
  :math:`r - s + \lambda q r^{q-1} = 0` (a maximum along the ray): first-order stationary, reduced
  Hessian indefinite.
* ``unbalanced_d3``: the gated minimiser of ``reg_tall`` with one group rescaled,
  :math:`\omega_j \to 2\omega_j`, :math:`\gamma_{j,1} \to \gamma_{j,1}/2` (same :math:`w`).
* ``perturbed_d3`` and ``perturbed_network_d2``: sensitivity of the first-order checks and of
  the perturbation tests (``reg_tall``, ``mlp_input_synth``). The minimiser is moved *on its
  support* (non-zero groups and unpenalised features only, so no zero group is switched on) by
  :math:`r = m\,\rho_c \max(1, \|w\|)` along a random unit direction, for the multiples
  :math:`m \in` :data:`MULTIPLES` of each check's tolerance radius :math:`\rho_c`: the tolerance
  itself for the relative-gradient checks (``Lw_stationarity``, ``L_gradient``), the square root
  of the value allowance for the perturbation tests (the decrease they look for is quadratic in
  the distance to the minimiser). A row ``sensitivity.<check>`` reports the smallest multiple at
  which the check fails (``value``); it passes when the check passes at the minimiser and detects
  the defect within :data:`SENSITIVE_WITHIN` tolerance radii.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from ..gating import GatedParams
from ..objectives import GatedObjective
from ..penalties import effective_q
from ..problem import GroupedProblem, Problem
from ..solvers import initial_point, solve_gated, solve_prox
from .checks import (
    ROUNDOFF,
    STAT_TOL,
    check_balanced,
    check_gated_gradient,
    check_gated_minimiser,
    check_penalised_certificate,
    check_penalised_minimiser,
    check_values,
    perturbation_test_gated,
    perturbation_test_penalised,
)
from .problems import get_problem
from .result import CheckResult, outcome

__all__ = ["CONTROLS", "MULTIPLES", "SENSITIVE_WITHIN", "ControlResult", "run_control"]


@dataclass(frozen=True)
class ControlResult:
    """Checks run at one negative control, with the expected outcome of each.

    Attributes
    ----------
    name : str
    depth : int
    lam : float
    description : str
    checks : tuple of CheckResult
    expect : dict of str to {"pass", "fail"}
        Expected outcome per check name.
    """

    name: str
    depth: int
    lam: float
    description: str
    checks: tuple[CheckResult, ...]
    expect: dict

    @property
    def flagged(self) -> bool:
        """Every check expected to fail did fail."""
        return all(c.status == "fail" for c in self.checks if self.expect.get(c.name) == "fail")

    @property
    def as_expected(self) -> bool:
        """Every check has its expected status (:func:`~.result.outcome` ``"ok"``)."""
        return all(outcome(c.status, self.expect[c.name]) == "ok" for c in self.checks)


def _select(results: list[CheckResult], expect: dict) -> tuple[CheckResult, ...]:
    return tuple(r for r in results if r.name in expect)


def _both_sides(
    problem: Problem, depth: int, lam: float, params: GatedParams, n_random: int
) -> list[CheckResult]:
    obj = GatedObjective(problem, depth, lam)
    w = obj.gating.collapse(params)
    return check_penalised_minimiser(
        problem, depth, lam, w, n_random=n_random, prefix="a."
    ) + check_gated_minimiser(obj, params, n_random=n_random, prefix="b.")


def origin_saddle_d2(n_random: int = 24) -> ControlResult:
    problem = get_problem("reg_wide").problem()
    groups = problem.groups
    lam = 0.5 * float(groups.norms(problem.grad(np.zeros(problem.n_features))).max())
    params = GatedParams(np.zeros(problem.n_features), np.zeros((groups.n_groups, 1)))
    expect = {
        "a.Lw_zero_groups": "fail",
        "a.Lw_perturbation": "fail",
        "b.L_gradient": "pass",
        "b.L_hessian": "fail",
        "b.L_perturbation": "fail",
        "b.balanced": "pass",
    }
    res = _both_sides(problem, 2, lam, params, n_random)
    return ControlResult(
        "origin_saddle_d2",
        2,
        lam,
        "origin of L, D=2, lam = max_j ||g_j(0)|| / 2 (reg_wide)",
        _select(res, expect),
        expect,
    )


def zero_group_saddle_d2(n_random: int = 24) -> ControlResult:
    spec = get_problem("reg_tall")
    problem = spec.problem()
    assert isinstance(problem, GroupedProblem)
    depth, lam = 2, spec.lam(2)
    groups = problem.groups
    w_star = solve_prox(problem, depth, lam).w
    j = int(np.argmax(groups.norms(w_star)))  # the strongest group is switched off
    keep = np.flatnonzero(groups.labels != j)
    labels = groups.labels[keep].copy()
    labels[labels > j] -= 1
    sub = GroupedProblem(problem.X[:, keep], problem.y, labels, problem.loss)
    w = np.zeros(problem.n_features)
    w[keep] = solve_prox(sub, depth, lam).w
    params = GatedObjective(problem, depth, lam).gating.lift(w)
    expect = {
        "a.Lw_stationarity": "fail",  # for q = 1 the zero-group residual max(||g_j|| - lam, 0)
        "a.Lw_zero_groups": "fail",
        "a.Lw_hessian": "pass",
        "a.Lw_perturbation": "fail",
        "b.L_gradient": "pass",
        "b.L_hessian": "fail",
        "b.L_perturbation": "fail",
        "b.balanced": "pass",
    }
    res = _both_sides(problem, depth, lam, params, n_random)
    return ControlResult(
        "zero_group_saddle_d2",
        depth,
        lam,
        f"reg_tall D=2 minimiser with group {j} forced to 0, rest re-optimised",
        _select(res, expect),
        expect,
    )


def small_root_saddle_d3(n_random: int = 24) -> ControlResult:
    depth, lam = 3, 1.0
    q = effective_q(depth)
    rng = np.random.default_rng(11)
    n, sizes = 40, [2, 3, 2]
    p = sum(sizes)
    Q, _ = np.linalg.qr(rng.normal(size=(n, p)))
    X = np.sqrt(n) * Q  # X^T X / n = I: L0 = ||w - s||^2 / 2 + const with s = X^T y / n
    labels = np.repeat(np.arange(len(sizes)), sizes)
    s = np.zeros(p)
    s_norms = [3.0, 2.5, 0.3]
    for j, sn in enumerate(s_norms):
        d = rng.normal(size=sizes[j])
        s[labels == j] = sn * d / np.linalg.norm(d)
    y = X @ s  # then X^T y / n = s
    problem = GroupedProblem(X, y, labels)

    def phi(r: float, sn: float) -> float:
        return r - sn + lam * q * r ** (q - 1.0)

    r_min = (lam * q * (1.0 - q)) ** (1.0 / (2.0 - q))  # minimiser of phi on r > 0
    w = np.zeros(p)
    for j, sn in enumerate(s_norms[:2]):
        u = s[labels == j] / sn
        if j == 0:  # the small root: a maximum of the 1-D profile
            r = brentq(phi, 1e-12, r_min, args=(sn,), xtol=1e-15, rtol=1e-15)
        else:  # the large root: the local minimum
            r = brentq(phi, r_min, sn, args=(sn,), xtol=1e-15, rtol=1e-15)
        w[labels == j] = r * u
    params = GatedObjective(problem, depth, lam).gating.lift(w)
    expect = {
        "a.Lw_stationarity": "pass",
        "a.Lw_hessian": "fail",
        "a.Lw_perturbation": "fail",
        "b.L_gradient": "pass",
        "b.L_hessian": "fail",
        "b.L_perturbation": "fail",
        "b.balanced": "pass",
    }
    res = _both_sides(problem, depth, lam, params, n_random)
    return ControlResult(
        "small_root_saddle_d3",
        depth,
        lam,
        "orthogonal design, D=3, one group at the small root of r - s + lam q r^(q-1) = 0",
        _select(res, expect),
        expect,
    )


def unbalanced_d3(n_random: int = 24) -> ControlResult:
    spec = get_problem("reg_tall")
    problem = spec.problem()
    depth, lam = 3, spec.lam(3)
    params = solve_gated(problem, depth, lam).params
    obj = GatedObjective(problem, depth, lam)
    j = int(np.argmax(problem.groups.norms(obj.gating.collapse(params))))
    scale = np.ones(problem.n_groups)
    scale[j] = 2.0
    gates = params.gates.copy()
    gates[j, 0] /= 2.0
    moved = GatedParams(params.omega * problem.groups.expand(scale), gates)
    expect = {
        "a.balanced": "fail",
        "b.L_gradient": "fail",
        "b.L_perturbation": "fail",
        "values.balanced": "fail",
        "values.unbalanced": "pass",
    }
    res = [check_balanced(obj, moved, name="a.balanced")]
    res += check_gated_minimiser(obj, moved, n_random=n_random, prefix="b.")
    res += check_values(obj, moved)
    return ControlResult(
        "unbalanced_d3",
        depth,
        lam,
        f"reg_tall D=3 gated minimiser, omega_{j} x2 and gamma_{j},1 / 2 (same w)",
        _select(res, expect),
        expect,
    )


#: Multiples of a check's tolerance radius at which the sensitivity controls perturb.
MULTIPLES = (0.1, 1.0, 10.0, 100.0, 1000.0)
#: A check is sensitive when it fails at most this many tolerance radii from the minimiser.
SENSITIVE_WITHIN = 100.0


def _sensitivity(
    problem: Problem, depth: int, lam: float, w0, n_random: int, seed: int
) -> tuple[tuple[CheckResult, ...], dict]:
    obj = GatedObjective(problem, depth, lam)
    w = obj.gating.collapse(solve_gated(problem, depth, lam, w0=w0).params)
    d = np.random.default_rng(seed).normal(size=w.size) * obj.penalised_objective.support_mask(w)
    d /= np.linalg.norm(d)
    size = max(1.0, float(np.linalg.norm(w)))

    def lifted(x: np.ndarray) -> GatedParams:
        return obj.gating.lift(x)

    checks: dict[str, tuple[float, Callable[[np.ndarray], CheckResult]]] = {
        "Lw_stationarity": (
            STAT_TOL,
            lambda x: check_penalised_certificate(problem, depth, lam, x)[0],
        ),
        "Lw_perturbation": (
            np.sqrt(ROUNDOFF),
            lambda x: perturbation_test_penalised(problem, depth, lam, x, n_random=n_random),
        ),
        "L_gradient": (STAT_TOL, lambda x: check_gated_gradient(obj, lifted(x))),
        "L_perturbation": (
            np.sqrt(ROUNDOFF),
            lambda x: perturbation_test_gated(obj, lifted(x), n_random=n_random),
        ),
    }
    results = []
    for name, (rho, check) in checks.items():
        base = check(w).status
        statuses = [check(w + m * rho * size * d).status for m in MULTIPLES]
        detected = [m for m, st in zip(MULTIPLES, statuses) if st == "fail"]
        first = detected[0] if detected and base == "pass" else np.inf
        results.append(
            CheckResult.from_violation(
                "sensitivity." + name,
                first,
                SENSITIVE_WITHIN,
                tolerance_radius=rho * size,
                multiples=list(MULTIPLES),
                statuses=statuses,
                status_at_minimiser=base,
            )
        )
    return tuple(results), {r.name: "pass" for r in results}


def perturbed_d3(n_random: int = 24) -> ControlResult:
    spec = get_problem("reg_tall")
    lam = spec.lam(3)
    checks, expect = _sensitivity(spec.problem(), 3, lam, None, n_random, seed=5)
    return ControlResult(
        "perturbed_d3",
        3,
        lam,
        "reg_tall D=3 minimiser moved on its support by 0.1..1000 tolerance radii",
        checks,
        expect,
    )


def perturbed_network_d2(n_random: int = 24) -> ControlResult:
    spec = get_problem("mlp_input_synth")
    problem, lam = spec.problem(), spec.lam(2)
    w0 = initial_point(problem, lam, init="random", seed=0, init_scale=spec.init_scale)
    checks, expect = _sensitivity(problem, 2, lam, w0, n_random, seed=6)
    return ControlResult(
        "perturbed_network_d2",
        2,
        lam,
        "mlp_input_synth D=2 minimiser moved on its support by 0.1..1000 tolerance radii",
        checks,
        expect,
    )


CONTROLS: dict[str, Callable[..., ControlResult]] = {
    "origin_saddle_d2": origin_saddle_d2,
    "zero_group_saddle_d2": zero_group_saddle_d2,
    "small_root_saddle_d3": small_root_saddle_d3,
    "unbalanced_d3": unbalanced_d3,
    "perturbed_d3": perturbed_d3,
    "perturbed_network_d2": perturbed_network_d2,
}


def run_control(name: str, n_random: int = 24) -> ControlResult:
    """Build and check the negative control ``name`` (a key of :data:`CONTROLS`).

    Examples
    --------
    >>> res = run_control("origin_saddle_d2")
    >>> res.flagged, res.as_expected
    (True, True)
    """
    from .._validation import check_choice

    return CONTROLS[check_choice(name, "control", CONTROLS)](n_random=n_random)
