"""Conservation laws at lam = 0: verified for an undefined L0, counted by the Lie algebra."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp

from dgating.objectives import GatedObjective
from dgating.problem import GroupedProblem
from dgating.theory import (
    Factor,
    Parametrization,
    check_conserved,
    check_decay,
    conservation_laws,
    dgating_parametrization,
    flow_derivative,
    hadamard_parametrization,
    lam,
    lie_algebra_rank,
    shared_gates_parametrization,
)
from dgating.theory.parametrization import loss_gradient_symbols


@pytest.mark.parametrize("depth", range(2, 6))
@pytest.mark.parametrize("group_size", [1, 2, 4])
def test_dgating_has_depth_minus_one_complete_laws(depth, group_size):
    res = conservation_laws(dgating_parametrization(depth, group_size))
    assert all(step.holds for step in res.steps)
    assert res.lie.decided and res.lie.n_laws == depth - 1
    assert len(res.quantities) == depth - 1 and res.complete


@pytest.mark.parametrize("depth, n_weights", [(2, 1), (2, 3), (3, 2), (4, 3)])
def test_hadamard_has_depth_minus_one_laws_per_coordinate(depth, n_weights):
    res = conservation_laws(hadamard_parametrization(depth, n_weights))
    assert all(step.holds for step in res.steps)
    assert res.lie.n_laws == n_weights * (depth - 1) and res.complete


@pytest.mark.parametrize("depth, group_size", [(2, 1), (3, 2), (4, 1)])
def test_shared_gates_keep_only_the_merged_imbalances(depth, group_size):
    spec = shared_gates_parametrization(depth, group_size)
    res = conservation_laws(spec)
    assert res.lie.n_laws == depth - 1 and res.complete
    # negative control: the per-group imbalance ||omega_1||^2 - gamma_1^2 is not conserved
    omega_1 = spec.factors[0].symbols[:group_size]
    gamma_1 = spec.factors[1].symbols[0]
    h = sp.Add(*(o**2 for o in omega_1)) - gamma_1**2
    assert not check_conserved(spec, h).holds


def test_hierarchical_gates_counted_by_the_engine():
    # w_j = omega_j gamma_{j} beta: per-group gate, then one gate shared by both groups
    omega = Factor("omega", (0, 1), ("omega_1", "omega_2"))
    gate = Factor("gamma", (0, 1), ("gamma_1", "gamma_2"))
    shared = Factor("beta", (0, 0), ("beta",))
    spec = Parametrization("hierarchical", (omega, gate, shared), ("w_1", "w_2"))
    res = conservation_laws(spec)
    assert res.lie.n_laws == 3 and res.complete
    assert spec.gate_partition() is None  # effective penalty: not decided by the engine


def test_non_conserved_quantities_are_rejected():
    spec = dgating_parametrization(3, 2)
    o1, o2, g1, g2 = spec.theta
    assert check_conserved(spec, o1**2 + o2**2 - g1**2).holds
    assert not check_conserved(spec, o1**2 + o2**2 + g1**2).holds
    assert not check_conserved(spec, o1**2 - g1**2).holds  # one coordinate is not enough
    assert not check_decay(spec, o1**2 + o2**2 - g1**2, 2 * lam / 3).holds


def test_lie_algebra_needs_brackets_for_matrix_factorisation_and_reports_undecided():
    U = sp.Matrix(2, 2, sp.symbols("u1:5"))
    V = sp.Matrix(2, 2, sp.symbols("v1:5"))
    weights, theta = tuple(U * V.T), tuple(U) + tuple(V)
    res = lie_algebra_rank(weights, theta)
    assert res.trace_dims[0] < res.trace_dims[-1] and res.n_laws == 3
    short = lie_algebra_rank(weights, theta, max_level=0)
    assert short.status == "undecided" and short.n_laws is None
    assert "cannot decide" in short.message
    assert lie_algebra_rank((sp.exp(theta[0]),), theta[:1]).status == "undecided"


def test_numeric_twin_flow_derivative_matches_gated_gradient(rng):
    depth, p = 3, 2
    spec = dgating_parametrization(depth, p)
    lam_value = 0.3
    X, y = rng.normal(size=(6, p)), rng.normal(size=6)
    obj = GatedObjective(GroupedProblem(X, y, np.zeros(p, dtype=int)), depth, lam_value)
    for h in conservation_laws(spec).quantities:
        dh = loss_gradient_symbols(spec, sp.expand(flow_derivative(spec, h, lam)))
        gsyms = [sp.Symbol(f"g_{i + 1}", real=True) for i in range(p)]
        f = sp.lambdify((*spec.theta, *gsyms, lam), dh, "numpy")
        grad_h = sp.lambdify(spec.theta, [h.diff(x) for x in spec.theta], "numpy")
        for _ in range(3):
            z = rng.normal(size=spec.n_params)
            params = obj.gating.unpack(z)
            g = obj.problem.grad(obj.gating.collapse(params))
            numeric = -np.dot(grad_h(*z), obj.gating.pack(obj.grad(params)))
            assert f(*z, *g, lam_value) == pytest.approx(numeric, rel=1e-12, abs=1e-12)


def test_numeric_twin_laws_are_constant_along_a_lam_zero_flow(rng):
    depth, p = 3, 2
    spec = dgating_parametrization(depth, p)
    X, y = rng.normal(size=(8, p)), rng.normal(size=8)
    obj = GatedObjective(GroupedProblem(X, y, np.zeros(p, dtype=int)), depth, 0.0)
    z0 = 0.7 * rng.normal(size=spec.n_params)
    sol = solve_ivp(obj.vector_field, (0, 2.0), z0, method="DOP853", rtol=1e-12, atol=1e-12)
    zT = sol.y[:, -1]
    for h in conservation_laws(spec).quantities:
        f = sp.lambdify(spec.theta, h, "numpy")
        # integration error only: DOP853 at rtol = atol = 1e-12 over t in [0, 2]
        assert f(*zT) == pytest.approx(f(*z0), abs=1e-9)
    o1, o2, g1, _ = spec.theta
    moved = sp.lambdify(spec.theta, o1**2 + o2**2 + g1**2, "numpy")
    assert abs(moved(*zT) - moved(*z0)) > 1e-3  # the negative control really changes
