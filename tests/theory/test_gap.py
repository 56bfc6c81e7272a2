"""Objective gap: identity, bound and the asymptotic rates by group class."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from dgating.gating import GatedParams
from dgating.objectives import GatedObjective
from dgating.problem import GroupedProblem
from dgating.theory import (
    check_gap_rate,
    eps,
    g,
    gap_bound,
    gap_identity,
    gap_rates,
    lam,
    surviving_gap_rate,
    vanishing_gap_rate,
)


@pytest.mark.parametrize("depth", range(3, 9))
def test_gap_rates_for_depth_at_least_three(depth):
    rates = gap_rates(depth)
    assert set(rates) == {"surviving", "vanishing"}
    assert sp.simplify(rates["surviving"] - 8 * lam / depth) == 0
    assert sp.simplify(rates["vanishing"] - 4 * lam / depth) == 0
    assert rates["vanishing"].free_symbols == {lam}
    for res in (surviving_gap_rate(depth), vanishing_gap_rate(depth)):
        assert all(step.holds for step in res.steps)


def test_gap_rates_for_group_lasso_depth_two():
    rates = gap_rates(2)
    assert sp.simplify(rates["surviving"] - 4 * lam) == 0
    assert sp.simplify(rates["vanishing"] - (2 * lam + 2 * g)) == 0
    for p in (1, 2, 4):  # the group size changes the Hessian block, not the rate
        res = vanishing_gap_rate(2, p)
        assert all(step.holds for step in res.steps)
        assert sp.simplify(res.rate - rates["vanishing"]) == 0


def test_wrong_gap_rates_are_rejected():
    for depth in (2, 3, 5):
        res = surviving_gap_rate(depth)
        assert check_gap_rate(res.asymptotic, res.rate).holds
        assert not check_gap_rate(res.asymptotic, res.rate / 2).holds
        van = vanishing_gap_rate(depth)
        assert not check_gap_rate(van.asymptotic, res.rate).holds


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_numeric_twin_gap_identity_and_bound(depth, rng):
    assert all(step.holds for step in gap_identity(depth, 2))
    bound, steps = gap_bound(depth)
    assert all(step.holds for step in steps)
    groups = np.array([0, 0, 1, 1, 1])
    X, y = rng.normal(size=(6, 5)), rng.normal(size=6)
    lam_value = 0.3
    obj = GatedObjective(GroupedProblem(X, y, groups), depth, lam_value)
    omega_s = sp.symbols("omega_1:3", real=True)
    gate_s = sp.symbols(f"gamma_1:{depth}", real=True)
    am_gm = gap_identity(depth, 2)[0].rhs / lam
    f = sp.lambdify((*omega_s, *gate_s), am_gm, "numpy")
    for _ in range(5):
        params = GatedParams(rng.normal(size=5), rng.normal(size=(2, depth - 1)))
        # group 0 has size 2, the size the identity was derived for
        derived0 = f(*params.omega[:2], *params.gates[0])
        numeric = obj.gating.penalty_per_group(params) - obj.gating.geometric_means(params)
        assert derived0 == pytest.approx(numeric[0], rel=1e-12, abs=1e-14)
        total_bound = float(bound) * np.abs(obj.gating.imbalance(params)).sum(axis=1)
        assert np.all(numeric <= total_bound + 1e-12)
        assert obj.gap(params) == pytest.approx(lam_value * numeric.sum(), rel=1e-12)


@pytest.mark.parametrize("depth", [2, 3, 6])
def test_numeric_twin_surviving_series(depth, rng):
    """AM - GM at Delta = eps * delta matches the derived quadratic term to O(eps)."""
    res = surviving_gap_rate(depth)
    quad = next(s for s in res.steps if s.name.startswith("quadratic term")).lhs
    A = sp.Symbol("A", positive=True)
    deltas = sp.symbols(f"delta_1:{depth}", real=True)
    f = sp.lambdify((A, *deltas), quad, "numpy")
    a0, dl = 1.7, rng.normal(size=depth - 1)
    for e in (1e-2, 1e-3):
        a = np.concatenate([[a0], a0 - e * dl])
        exact = a.mean() - np.exp(np.log(a).mean())
        # the next term is O(eps^3): relative error O(eps)
        assert exact == pytest.approx(f(a0, *dl) * e**2, rel=20 * e)
    assert eps not in res.rate.free_symbols
