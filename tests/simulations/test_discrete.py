"""Discrete time: the exact imbalance recursion of GD/SGD and the contraction for scalar groups."""

from __future__ import annotations

import numpy as np
import pytest

from dgating import GatedObjective, GroupedProblem
from dgating._validation import InvalidParameterError
from dgating.simulations import (
    imbalance_contraction,
    initial_params,
    make_problem,
    run_sgd,
    steady_state_imbalance,
)

ETA = 0.05


def _scalar_problem(rng) -> GroupedProblem:
    """Six scalar groups; features 0, 1, 4 carry signal, the others vanish for lam = 0.3."""
    X = rng.normal(size=(100, 6))
    y = X @ np.array([2.0, -1.5, 0.0, 0.0, 1.0, 0.0]) + 0.1 * rng.normal(size=100)
    return GroupedProblem(X, y, np.arange(6))


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("batch_size", [None, 8])
def test_exact_imbalance_recursion_holds_per_step(depth, batch_size):
    prob = make_problem(60, 12, 4, seed=depth)
    obj = GatedObjective(prob, depth, 0.2)
    res = run_sgd(
        obj, initial_params(obj, seed=1), eta=ETA, n_steps=300, batch_size=batch_size, seed=2
    )
    assert res.recursion_error.max() <= 1e-12
    # Negative control: dropping the eta^2 term breaks the per-step identity.
    shrink = (1 - 2 * ETA * 0.2 / depth) ** 2
    first_order = shrink * res.imbalance[:-1]
    scale = np.maximum(1.0, np.abs(res.imbalance[1:]))
    assert (np.abs(res.imbalance[1:] - first_order) / scale).max() > 1e-8


def test_scalar_group_contraction(rng):
    depth, lam = 3, 0.3
    obj = GatedObjective(_scalar_problem(rng), depth, lam)
    res = run_sgd(obj, initial_params(obj, seed=2), eta=ETA, n_steps=3000)
    factor = (1 - 2 * ETA * lam / depth) ** 2
    assert res.decay_factor == pytest.approx(factor)
    w = res.omega[-1] * res.gates[-1].prod(axis=1)
    vanishing = np.flatnonzero(np.abs(w) < 1e-6)
    surviving = np.flatnonzero(np.abs(w) > 0.1)
    assert vanishing.size >= 2 and surviving.size >= 2
    for j in vanishing:
        # Purely multiplicative recursion with P_{-d} g -> 0: contraction (1 - 2 eta lam/D)^2.
        assert imbalance_contraction(res, j) == pytest.approx(factor, rel=1e-6)
    for j in surviving:
        # At a balanced stationary point P_{-d}^2 g^2 = (2 lam/D)^2: factor 1 - 4 eta lam/D.
        measured = imbalance_contraction(res, j)
        assert measured == pytest.approx(1 - 4 * ETA * lam / depth, rel=1e-6)
        # Negative control: (1 - 2 eta lam/D)^2 is rejected for these groups.
        assert measured != pytest.approx(factor, rel=1e-6)


def _correlated_scalar_problem() -> GroupedProblem:
    """Six scalar groups on Toeplitz(0.6) features, so the vanishing ones keep ||g_j*|| > 0."""
    rng = np.random.default_rng(1)
    C = 0.6 ** np.abs(np.subtract.outer(np.arange(6), np.arange(6)))
    X = rng.normal(size=(100, 6)) @ np.linalg.cholesky(C).T
    y = X @ np.array([2.0, -1.5, 0.0, 0.0, 1.0, 0.0]) + 0.1 * rng.normal(size=100)
    return GroupedProblem(X, y, np.arange(6))


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_vanishing_scalar_groups_contract_at_the_derived_limit_factor(depth):
    """GD on scalar groups: |Delta| of a vanishing group contracts per step by the factor derived
    in theory.sgd_limit_factors, (1 - eta lam)^2 - eta^2 g*^2 at D = 2 and (1 - 2 eta lam/D)^2 for
    D >= 3, to 1e-6 relative."""
    from dgating.solvers import solve_prox
    from dgating.theory.balancedness import sgd_limit_factors
    from dgating.theory.symbols import eta, g, lam

    lam_value = 0.3
    prob = _correlated_scalar_problem()
    obj = GatedObjective(prob, depth, lam_value)
    res = run_sgd(obj, initial_params(obj, seed=2), eta=ETA, n_steps=3000)
    w_end = res.omega[-1] * res.gates[-1].prod(axis=1)
    limit = solve_prox(prob, depth, lam_value, w0=w_end).w
    g_star = np.abs(prob.grad(limit))
    vanishing = np.flatnonzero(limit == 0)
    assert vanishing.size >= 3
    derived = sgd_limit_factors(depth).vanishing
    first_order = (1 - 2 * ETA * lam_value / depth) ** 2
    for j in vanishing:
        expected = float(derived.subs({eta: ETA, lam: lam_value, g: g_star[j]}))
        measured = imbalance_contraction(res, j)
        assert measured == pytest.approx(expected, rel=1e-6)
        if depth == 2:
            # Negative control: the eta^2 g*^2 term is measurable (|g*| > 0.05 here) and the old
            # statement (1 - eta lam)^2 is rejected at the same tolerance.
            assert g_star[j] > 0.05
            assert measured != pytest.approx(first_order, rel=1e-6)


def test_scalar_groups_never_contract_slower_than_the_decay_factor_under_sgd(rng):
    obj = GatedObjective(_scalar_problem(rng), 4, 0.3)
    res = run_sgd(obj, initial_params(obj, seed=3), eta=ETA, n_steps=500, batch_size=5, seed=1)
    ratio = np.abs(res.imbalance[1:] / res.imbalance[:-1])
    assert np.all(ratio <= res.decay_factor * (1 + 1e-12))
    np.testing.assert_allclose(
        res.imbalance[1:], res.factor * res.imbalance[:-1], rtol=1e-10, atol=1e-14
    )
    # Negative control: vector groups under SGD do exceed it at some steps (eta^2 noise term).
    prob = make_problem(60, 12, 3, seed=0)
    vec = GatedObjective(prob, 4, 0.3)
    res_v = run_sgd(vec, initial_params(vec, seed=3), eta=ETA, n_steps=500, batch_size=5, seed=1)
    ratio_v = np.abs(res_v.imbalance[1:] / res_v.imbalance[:-1])
    assert np.any(ratio_v > res_v.decay_factor * (1 + 1e-6))


def test_steady_state_imbalance_grows_linearly_with_eta():
    prob = make_problem(60, 12, 3, seed=0)
    obj = GatedObjective(prob, 3, 0.1)
    out = steady_state_imbalance(
        obj, initial_params(obj, seed=2), [0.01, 0.02, 0.04], horizon=10.0, batch_size=10
    )
    assert np.all(np.diff(out["imbalance"]) > 0)
    # Fixed point of the recursion ~ eta * noise * D / (4 lam): slope 1 up to O(eta) effects.
    assert 0.7 < float(out["slope"]) < 1.4


def test_run_sgd_validates_its_input():
    prob = make_problem(20, 6, 3, seed=0)
    obj = GatedObjective(prob, 3, 0.1)
    p0 = initial_params(obj)
    with pytest.raises(InvalidParameterError, match="`eta` must be a finite number > 0"):
        run_sgd(obj, p0, eta=0.0, n_steps=3)
    with pytest.raises(InvalidParameterError, match="`batch_size` must be <= n_samples = 20"):
        run_sgd(obj, p0, eta=0.1, n_steps=3, batch_size=50)


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_decay_factor_is_the_symbolic_sgd_contraction(depth):
    from dgating.theory.balancedness import sgd_contraction
    from dgating.theory.symbols import eta, lam

    prob = make_problem(20, 6, 3, seed=0)
    obj = GatedObjective(prob, depth, 0.3)
    res = run_sgd(obj, initial_params(obj), eta=0.07, n_steps=2)
    expected = float(sgd_contraction(depth).subs({eta: 0.07, lam: 0.3}))
    assert res.decay_factor == pytest.approx(expected, rel=1e-14)
    assert res.decay_factor != pytest.approx(1 - 4 * 0.07 * 0.3 / depth, rel=1e-6)
