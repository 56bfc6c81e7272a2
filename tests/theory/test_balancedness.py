"""Imbalance identity, exact decay and the (S)GD recursion, with numeric twins."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from dgating.gating import GatedParams
from dgating.objectives import GatedObjective
from dgating.problem import GroupedProblem
from dgating.theory import (
    balancedness_identity,
    check_decay,
    dgating_parametrization,
    eta,
    hadamard_parametrization,
    imbalance_dynamics,
    imbalance_rate,
    lam,
    sgd_contraction,
    sgd_recursion,
    t,
)


@pytest.mark.parametrize("depth", range(2, 9))
def test_imbalance_rate_is_four_lam_over_depth(depth):
    assert sp.simplify(imbalance_rate(depth) - 4 * lam / depth) == 0
    assert sp.simplify(sgd_contraction(depth) - (1 - 2 * eta * lam / depth) ** 2) == 0


def test_wrong_imbalance_rate_is_rejected():
    spec = dgating_parametrization(4, 2)
    o1, o2, g1, *_ = spec.theta
    h = o1**2 + o2**2 - g1**2
    assert check_decay(spec, h, lam).holds
    for wrong in (2 * lam, lam / 2, 4 * lam / 3):
        assert not check_decay(spec, h, wrong).holds


def test_imbalance_solution_is_the_exponential():
    res = imbalance_dynamics(dgating_parametrization(3, 2))
    assert all(step.holds for step in res.steps)
    delta0 = sp.Symbol("Delta_0", real=True)
    assert sp.simplify(res.solution - delta0 * sp.exp(-4 * lam * t / 3)) == 0


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_numeric_twin_balancedness_identity(depth, rng):
    steps = balancedness_identity(depth, 2)
    assert all(step.holds for step in steps)
    groups = np.array([0, 0, 1, 1])
    X, y = rng.normal(size=(7, 4)), rng.normal(size=7)
    lam_value = 0.4
    obj = GatedObjective(GroupedProblem(X, y, groups), depth, lam_value)
    rate = sp.lambdify(lam, imbalance_rate(depth) / 2)  # = 2 lam / D
    for _ in range(3):
        params = GatedParams(rng.normal(size=4), rng.normal(size=(2, depth - 1)))
        grad = obj.grad(params)
        inner = obj.gating.groups.group_sums(params.omega * grad.omega)
        lhs = inner[:, None] - params.gates * grad.gates
        rhs = rate(lam_value) * obj.gating.imbalance(params)
        np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("depth, group_size", [(2, 1), (3, 1), (3, 3), (6, 2)])
def test_numeric_twin_sgd_step(depth, group_size, rng):
    spec = dgating_parametrization(depth, group_size)
    res = sgd_recursion(spec)
    assert all(step.holds for step in res.steps)
    assert res.multiplicative == (group_size == 1)
    assert res.step_range == sp.Interval.open(0, depth / lam)
    ghat = sp.symbols(" ".join(f"ghat_{i + 1}" for i in range(group_size)) + " ,", real=True)
    f = sp.lambdify(
        (*spec.theta, *ghat, eta, lam), res.contraction * res.law + eta**2 * res.remainder
    )
    groups = np.zeros(group_size, dtype=int)
    obj = GatedObjective(
        GroupedProblem(np.eye(group_size), np.zeros(group_size), groups), depth, 0.7
    )
    eta_value = 0.05
    for _ in range(3):
        params = GatedParams(rng.normal(size=group_size), rng.normal(size=(1, depth - 1)))
        g = rng.normal(size=group_size)  # any minibatch gradient
        pull = obj.gating.pullback(params, g)
        wd = obj.weight_decay
        new = GatedParams(
            params.omega - eta_value * (pull.omega + wd * params.omega),
            params.gates - eta_value * (pull.gates + wd * params.gates),
        )
        z = obj.gating.pack(params)
        predicted = f(*z, *g, eta_value, 0.7)
        assert obj.gating.imbalance(new)[0, 0] == pytest.approx(predicted, rel=1e-12, abs=1e-13)


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_numeric_twin_scalar_limit_factor(depth, rng):
    """The derived per-step factor equals Delta+/Delta of one numeric GD step (scalar group)."""
    from dgating.theory.balancedness import sgd_limit_factors

    res = sgd_limit_factors(depth)
    assert all(step.holds for step in res.steps)
    spec = dgating_parametrization(depth, 1)
    (ghat,) = sorted(res.per_step.free_symbols - set(spec.theta) - {eta, lam}, key=str)
    f = sp.lambdify((*spec.theta, ghat, eta, lam), res.per_step)
    obj = GatedObjective(GroupedProblem(np.eye(1), np.zeros(1), np.zeros(1, int)), depth, 0.7)
    for _ in range(3):
        params = GatedParams(rng.normal(size=1), rng.normal(size=(1, depth - 1)))
        grad = rng.normal(size=1)
        pull = obj.gating.pullback(params, grad)
        wd = obj.weight_decay
        new = GatedParams(
            params.omega - 0.05 * (pull.omega + wd * params.omega),
            params.gates - 0.05 * (pull.gates + wd * params.gates),
        )
        ratio = obj.gating.imbalance(new)[0, 0] / obj.gating.imbalance(params)[0, 0]
        z = obj.gating.pack(params)
        assert ratio == pytest.approx(f(*z, grad[0], 0.05, 0.7), rel=1e-10)


def test_depth_two_vanishing_factor_keeps_the_eta_squared_term():
    from dgating.theory.balancedness import sgd_limit_factors
    from dgating.theory.symbols import g

    two = sgd_limit_factors(2)
    assert two.vanishing.has(g)  # D = 2: no other gate to kill eta^2 g^2
    assert sp.simplify(two.vanishing - sgd_contraction(2)) != 0
    for depth in (3, 4):  # the other gates vanish with the group
        assert sp.simplify(sgd_limit_factors(depth).vanishing - sgd_contraction(depth)) == 0


def test_a_wrong_sgd_limit_statement_is_rejected(monkeypatch):
    import dgating.theory.balancedness as bal

    bal.sgd_limit_factors.cache_clear()
    stated = bal.stated_sgd_limit_factors
    # seeded fault: the statement that shipped before, (1 - 2 eta lam/D)^2 for every D
    monkeypatch.setattr(
        bal,
        "stated_sgd_limit_factors",
        lambda d: {**stated(d), "vanishing": (1 - 2 * eta * lam / d) ** 2},
    )
    try:
        assert [s.holds for s in bal.sgd_limit_factors(2).steps] == [True, False, True]
        assert all(s.holds for s in bal.sgd_limit_factors(3).steps)
    finally:
        bal.sgd_limit_factors.cache_clear()


def test_hadamard_imbalances_decay_at_the_same_rate():
    res = sgd_recursion(hadamard_parametrization(3, 2))
    assert sp.simplify(res.contraction - (1 - 2 * eta * lam / 3) ** 2) == 0
