r"""A catalogue of seeded semantic faults, each of which a user-facing command must report.

Every :class:`Fault` names a file of the package (relative to ``src/dgating``), an exact source
snippet that occurs there exactly once, its faulty replacement, and the command that must report
the fault. :func:`run_fault` copies the package to a temporary directory, patches the copy, and
runs the command in a subprocess with ``PYTHONPATH`` pointing at the copy; :func:`reports_failure`
decides whether the command reported failure:

* ``verify`` (run with ``--strict``, so that a check left inconclusive is a failure too): exit
  status 1, suite status ``"fail"`` (an unexpected row: a failed check or a
  negative control not flagged) or a check row with status ``"fail"`` in its ``--json`` output;
* ``derive``: exit status 1 (an identity that does not simplify to zero);
* ``flow``: the measured imbalance decay rate differs from the theoretical :math:`4\lambda/D`
  (docs/theory.md [T-balance]) by more than ``FLOW_RTOL`` relative (``rate_imbalance`` against
  ``rate_imbalance_theory`` of its ``--json`` output), or a non-zero exit status.

The unpatched commands must succeed (the controls of ``tests/mutation/test_catalogue.py``).

Not in the catalogue, because no command can report them (tried, not reported): faults of the
prox map for :math:`q < 1` that only move its threshold :math:`\tau` or its root (wrong
:math:`\tau`, wrong exponent or Newton sign in the prox): :func:`~dgating.solvers.solve_prox`
polishes the support it identifies, so it still ends at a genuine local minimiser of
:math:`L_w` (every zero group is a local minimum along itself for :math:`q < 1`), which is all
``verify`` certifies; the signs of the lift (the default signs are :math:`+1`); a check that
passes NaNs (no control produces a NaN); a Hessian null band that admits negative curvature (the
null-direction test still finds the descent); the gradient on the support (used only as a
perturbation direction).
Snippets in ``theory/gap.py``, ``theory/balancedness.py`` and ``simulations/discrete.py`` are
left out while those derivations are rewritten.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dgating

PACKAGE = Path(dgating.__file__).resolve().parent
EXAMPLE = str(PACKAGE / "data" / "example.npz")
#: Relative tolerance of the flow's measured imbalance rate against 4 lam / D.
FLOW_RTOL = 1e-6

_VERIFY = [
    "verify",
    "--strict",
    "--problem",
    "reg_wide",
    "--no-controls",
    "--json",
    "--no-progress",
]
COMMANDS: dict[str, list[str]] = {
    "verify2": _VERIFY + ["--depth", "2"],
    "verify3": _VERIFY + ["--depth", "3"],
    "verify_net2": [
        "verify",
        "--strict",
        "--problem",
        "mlp_input_synth",
        "--depth",
        "2",
        "--no-controls",
        "--json",
        "--no-progress",
    ],
    "verify_controls": [
        "verify",
        "--strict",
        "--problem",
        "reg_wide",
        "--depth",
        "2",
        "--json",
        "--no-progress",
    ],
    "derive2": ["derive", "--depth", "2", "--json"],
    "derive3": ["derive", "--depth", "3", "--json"],
    # lam = 1, T = 25 reaches the asymptotic regime (flow exits 1 on a pre-asymptotic horizon)
    "flow3": [
        "flow",
        EXAMPLE,
        "--depth",
        "3",
        "--lam",
        "1",
        "--t-end",
        "25",
        "--n-eval",
        "50",
        "--json",
    ],
}


@dataclass(frozen=True)
class Fault:
    """One seeded fault: replace ``old`` by ``new`` in ``path``; ``command`` must report it."""

    id: str
    path: str
    old: str
    new: str
    command: str
    description: str


def F(id: str, path: str, old: str, new: str, command: str, description: str) -> Fault:
    return Fault(id, path, old, new, command, description)


FAULTS: tuple[Fault, ...] = (
    # ---- penalties: exponent, prox threshold and jump, value, residuals
    F(
        "q_exponent",
        "penalties.py",
        "return 2.0 / check_depth(depth)",
        "return 1.0 / check_depth(depth)",
        "verify3",
        "q = 1/D instead of 2/D",
    ),
    F(
        "prox_soft_threshold",
        "penalties.py",
        "return max(s - t, 0.0)",
        "return max(s - 0.5 * t, 0.0)",
        "verify2",
        "soft threshold s - t/2",
    ),
    F(
        "prox_jump",
        "penalties.py",
        "if s <= (2.0 - q) / (2.0 * (1.0 - q)) * r_jump:",
        "if s <= 0.5 * (2.0 - q) / (2.0 * (1.0 - q)) * r_jump:",
        "verify3",
        "prox jumps at tau/2 (keeps groups the prox must kill)",
    ),
    F(
        "penalty_value_exponent",
        "penalties.py",
        "return self.lam * float(np.sum(groups.norms(w) ** self.q))",
        "return self.lam * float(np.sum(groups.norms(w) ** (self.q / 2)))",
        "verify3",
        "L_w penalty with exponent q/2",
    ),
    F(
        "residual_coef",
        "penalties.py",
        "return lam * q * sq_w ** (0.5 * q - 1.0)",
        "return lam * sq_w ** (0.5 * q - 1.0)",
        "verify3",
        "first-order residual without the factor q",
    ),
    # ---- gating: lift, collapse, means
    F(
        "lift_exponent",
        "gating.py",
        "root = norms ** (1.0 / self.depth)",
        "root = norms ** (2.0 / self.depth)",
        "verify3",
        "lift with ||w||^(2/D) gates",
    ),
    F(
        "lift_unbalanced",
        "gating.py",
        "return GatedParams(omega, signs * root[:, None])",
        "return GatedParams(omega * 1.1, signs * root[:, None] / 1.1)",
        "verify3",
        "unbalanced lift (omega x1.1, gates /1.1)",
    ),
    F(
        "collapse_dropped_gate",
        "gating.py",
        "return params.omega * self.groups.expand(params.gates.prod(axis=1))",
        "return params.omega * self.groups.expand(params.gates[:, 1:].prod(axis=1))",
        "verify3",
        "collapse drops the first gate",
    ),
    F(
        "geometric_mean_exponent",
        "gating.py",
        "return self.groups.norms(self.collapse(params)) ** (2.0 / self.depth)",
        "return self.groups.norms(self.collapse(params)) ** (1.0 / self.depth)",
        "verify3",
        "GM_j = ||w_j||^(1/D)",
    ),
    F(
        "arithmetic_mean_depth",
        "gating.py",
        "np.sum(params.gates**2, axis=1)) / self.depth",
        "np.sum(params.gates**2, axis=1)) / (self.depth - 1)",
        "verify3",
        "AM_j divided by D - 1",
    ),
    F(
        "imbalance_sign",
        "gating.py",
        "return self.groups.sq_norms(params.omega)[:, None] - params.gates**2",
        "return self.groups.sq_norms(params.omega)[:, None] + params.gates**2",
        "verify3",
        "imbalance ||omega||^2 + gamma^2",
    ),
    # ---- objectives: weight decay, gradient, Hessian, gap
    F(
        "weight_decay_factor",
        "objectives.py",
        "return 2.0 * self.lam / self.depth",
        "return 1.0 * self.lam / self.depth",
        "verify3",
        "weight decay lam/D instead of 2 lam/D",
    ),
    F(
        "weight_decay_flow",
        "objectives.py",
        "return 2.0 * self.lam / self.depth",
        "return 2.0 * self.lam / (self.depth + 1)",
        "flow3",
        "weight decay 2 lam/(D+1)",
    ),
    F(
        "grad_gate_decay_dropped",
        "objectives.py",
        "pull.omega + wd * self._decay_mask() * params.omega, pull.gates + wd * params.gates",
        "pull.omega + wd * self._decay_mask() * params.omega, pull.gates",
        "verify3",
        "no weight decay in the gate gradient",
    ),
    F(
        "grad_omega_decay_sign",
        "objectives.py",
        "pull.omega + wd * self._decay_mask() * params.omega, pull.gates + wd * params.gates",
        "pull.omega - wd * self._decay_mask() * params.omega, pull.gates + wd * params.gates",
        "verify3",
        "wrong sign of the omega weight decay",
    ),
    F(
        "hessian_curvature_dropped",
        "objectives.py",
        "H = jac.T @ problem.hessian(w) @ jac + curv + np.diag(decay)",
        "H = jac.T @ problem.hessian(w) @ jac + np.diag(decay)",
        "verify_controls",
        "gated Hessian without the sum_i g_i Hess(w_i) term",
    ),
    F(
        "hessian_decay_dropped",
        "objectives.py",
        "H = jac.T @ problem.hessian(w) @ jac + curv + np.diag(decay)",
        "H = jac.T @ problem.hessian(w) @ jac + curv",
        "verify3",
        "gated Hessian without the weight decay",
    ),
    F(
        "gap_formula_geometric",
        "objectives.py",
        "np.sum(self.gating.penalty_per_group(params) - self.gating.geometric_means(params))",
        "np.sum(self.gating.penalty_per_group(params) - 0.9 * self.gating.geometric_means(params))",
        "verify3",
        "L - L_w = lam sum(AM - 0.9 GM)",
    ),
    F(
        "reduced_hessian_q",
        "objectives.py",
        "H = H + np.diag(coef) + (q - 2.0) * same * np.outer(coef * u, u)",
        "H = H + np.diag(coef) + (q - 1.0) * same * np.outer(coef * u, u)",
        "verify_controls",
        "reduced Hessian with (q - 1) instead of (q - 2)",
    ),
    # ---- certificates
    F(
        "certificate_zero_group",
        "certificates.py",
        "margin = float(np.min(lam - groups.norms(grad)[zero])) / obj.scale",
        "margin = float(np.min(2 * lam - groups.norms(grad)[zero])) / obj.scale",
        "verify_controls",
        "zero-group condition ||g_j|| <= 2 lam",
    ),
    # ---- proofs_check: checks, values, controls
    F(
        "check_margin_sign",
        "proofs_check/result.py",
        'status = "pass" if finite and margin >= 0 else "fail"',
        'status = "pass" if finite and margin >= -1 else "fail"',
        "verify_controls",
        "a check passes one unit outside its tolerance",
    ),
    F(
        "null_band_width",
        "proofs_check/checks.py",
        "n_null = int(np.sum(evals <= hess_tol * big))",
        "n_null = int(np.sum(evals <= 1e-2 * big))",
        "verify_net2",
        "null-direction test run on directions of positive curvature",
    ),
    F(
        "balanced_identity_sign",
        "proofs_check/checks.py",
        "lhs = om_term - ga_term",
        "lhs = om_term + ga_term",
        "verify3",
        "balancedness identity with the wrong sign",
    ),
    F(
        "values_unbalanced_direction",
        "proofs_check/checks.py",
        "gaps.append(gap / denom)",
        "gaps.append(-gap / denom)",
        "verify3",
        "L > L_w test measures L_w - L",
    ),
    F(
        "perturbation_drop_sign",
        "proofs_check/checks.py",
        "drops = np.array([[f0 - value(x0 + r * d) for r in radii] for d in dirs])",
        "drops = np.array([[value(x0 + r * d) - f0 for r in radii] for d in dirs])",
        "verify3",
        "perturbation tests measure increases as decreases",
    ),
    F(
        "zero_group_not_applicable_d2",
        "proofs_check/checks.py",
        "if depth == 2 and n_zero:",
        "if depth == 3 and n_zero:",
        "verify3",
        "zero-group condition skipped at D = 2 and applied at D = 3",
    ),
    F(
        "sensitivity_threshold",
        "proofs_check/controls.py",
        "SENSITIVE_WITHIN = 100.0",
        "SENSITIVE_WITHIN = 0.5",
        "verify_controls",
        "sensitivity rows demand detection below the tolerance radius",
    ),
    F(
        "sensitivity_base_status",
        "proofs_check/controls.py",
        'first = detected[0] if detected and base == "pass" else np.inf',
        'first = detected[0] if detected and base == "fail" else np.inf',
        "verify_controls",
        "sensitivity rows require the check to fail at the minimiser",
    ),
    F(
        "null_test_gradient_tol",
        "proofs_check/checks.py",
        "if not max(grads) <= STAT_TOL:",
        "if not max(grads) <= 0.0:",
        "verify_net2",
        "null lines must be critical to the last bit (round-off makes them inconclusive)",
    ),
    F(
        "outcome_not_applicable",
        "proofs_check/result.py",
        'if status == "not-applicable":\n        status = "pass"',
        'if status == "not-applicable":\n        status = "fail"',
        "verify3",
        "a void condition counts as a failure",
    ),
    # ---- simulations (flow)
    F(
        "flow_field_speed",
        "objectives.py",
        "return -self.fun_and_jac(z)[1]",
        "return -0.5 * self.fun_and_jac(z)[1]",
        "flow3",
        "gradient flow at half speed",
    ),
    F(
        "flow_recorded_imbalance",
        "simulations/flow.py",
        "imbalance=sq_omega[..., None] - gates**2,",
        "imbalance=sq_omega[..., None] - gates**2 / 2,",
        "flow3",
        "flow records ||omega||^2 - gamma^2 / 2",
    ),
    # ---- theory (derive)
    F(
        "effective_penalty_lift_exponent",
        "theory/effective_penalty.py",
        "gates_star = tuple(si * r ** sp.Rational(1, D) for si in signs)",
        "gates_star = tuple(si * r ** sp.Rational(2, D) for si in signs)",
        "derive3",
        "derived minimising gates r^(2/D)",
    ),
    # ---- theory: gap rates from the linearised flow, SGD limit factors
    F(
        "gap_imbalance_rate",
        "theory/gap.py",
        "    dyn = imbalance_dynamics(spec)\n    rho = dyn.rate\n    steps: list[Step] = []\n",
        "    dyn = imbalance_dynamics(spec)\n    rho = 5 * lam / D\n    steps: list[Step] = []\n",
        "derive2",
        "surviving gap derivation with the imbalance rate 5 lam/D",
    ),
    F(
        "gap_vanishing_statement",
        "theory/gap.py",
        "vanishing = 2 * lam + 2 * g if D == 2 else 4 * lam / D",
        "vanishing = 2 * lam + 2 * g if D == 2 else 2 * lam / D",
        "derive3",
        "stated vanishing gap rate 2 lam/D for D >= 3",
    ),
    F(
        "gap_linearisation_decay",
        "theory/gap.py",
        "    penalty = lam * spec.penalty\n",
        "    penalty = 2 * lam * spec.penalty\n",
        "derive2",
        "Hessian of the linearisation with weight decay 4 lam/D",
    ),
    F(
        "gap_quadratic_term",
        "theory/gap.py",
        'check_identity("quadratic term = var(0, delta_1, ...)/(2A)", c2, var / (2 * A))',
        'check_identity("quadratic term = var(0, delta_1, ...)/(2A)", c2, var / A)',
        "derive3",
        "quadratic term of AM - GM off by a factor 2",
    ),
    F(
        "sgd_d2_statement",
        "theory/balancedness.py",
        "vanishing = (1 - eta * lam) ** 2 - eta**2 * g**2 if D == 2 else c",
        "vanishing = c",
        "derive2",
        "the statement that shipped before: (1 - 2 eta lam/D)^2 for every D",
    ),
    F(
        "sgd_weight_decay",
        "theory/balancedness.py",
        "    decay = 2 * lam / spec.depth\n",
        "    decay = 4 * lam / spec.depth\n",
        "derive3",
        "(S)GD update with weight decay 4 lam/D",
    ),
)


def apply(fault: Fault, root: Path) -> None:
    """Patch the copy of the package under ``root`` (``root/dgating``); the snippet must occur
    exactly once."""
    path = root / "dgating" / fault.path
    text = path.read_text()
    count = text.count(fault.old)
    if count != 1:
        raise AssertionError(f"{fault.id}: snippet occurs {count} times in {fault.path}")
    path.write_text(text.replace(fault.old, fault.new))


def run_command(argv: list[str], root: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``dgating argv`` in a subprocess, importing the package from ``root`` if given."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    if root is not None:
        env["PYTHONPATH"] = str(root)
    code = "import sys; from dgating.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=900
    )


def reports_failure(command: str, proc: subprocess.CompletedProcess) -> bool:
    """Whether the output of ``COMMANDS[command]`` reports failure (see the module docstring)."""
    if proc.returncode != 0:
        return True
    data = json.loads(proc.stdout)
    if command.startswith("verify"):
        checks = [r for r in data["rows"] if r["kind"] == "check"]
        return data["status"] == "fail" or any(r["status"] == "fail" for r in checks)
    if command.startswith("flow"):
        rate, theory = data["rate_imbalance"], data["rate_imbalance_theory"]
        return not abs(rate - theory) <= FLOW_RTOL * abs(theory)
    return False


def run_fault(fault: Fault) -> tuple[bool, subprocess.CompletedProcess]:
    """Apply ``fault`` to a temporary copy of the package and run its command."""
    with tempfile.TemporaryDirectory(prefix="dgating-fault-") as tmp:
        root = Path(tmp)
        shutil.copytree(PACKAGE, root / "dgating", ignore=shutil.ignore_patterns("__pycache__"))
        apply(fault, root)
        proc = run_command(COMMANDS[fault.command], root)
        return reports_failure(fault.command, proc), proc
