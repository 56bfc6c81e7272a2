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


def test_hadamard_imbalances_decay_at_the_same_rate():
    res = sgd_recursion(hadamard_parametrization(3, 2))
    assert sp.simplify(res.contraction - (1 - 2 * eta * lam / 3) ** 2) == 0
