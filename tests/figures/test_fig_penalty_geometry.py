"""The effective gated penalty at fixed imbalance ([T-variational], [T-transition])."""

from __future__ import annotations

import numpy as np
import pytest

from dgating.figures.fig_penalty_geometry import effective_gated_penalty


def _factorisation(r: float, c: np.ndarray, depth: int) -> tuple[float, np.ndarray]:
    """omega and gates of the factorisation used by the function (rebuilt independently)."""
    value = effective_gated_penalty(np.array([r]), c, depth)[0]
    a = (depth * value + c.sum()) / depth  # ||omega||^2 from the returned penalty
    return np.sqrt(a), np.sqrt(a - c)


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_returned_penalty_comes_from_a_factorisation_with_the_given_imbalances(depth, rng):
    for _ in range(5):
        r = float(rng.uniform(0.0, 3.0))
        c = rng.uniform(0.0, 2.0, size=depth - 1)
        omega, gates = _factorisation(r, c, depth)
        # w = omega * prod(gates) and Delta_d = omega^2 - gamma_d^2 = c_d.
        assert omega * np.prod(gates) == pytest.approx(r, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(omega**2 - gates**2, c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_unbalanced_penalty_exceeds_the_balanced_one(depth, rng):
    r = rng.uniform(0.01, 3.0, size=50)
    balanced = effective_gated_penalty(r, np.zeros(depth - 1), depth)
    np.testing.assert_allclose(balanced, r ** (2.0 / depth), rtol=1e-12)
    c = rng.uniform(0.05, 1.0, size=depth - 1)
    assert np.all(effective_gated_penalty(r, c, depth) > balanced)  # AM-GM, strict off balance


def test_d2_matches_the_closed_form_and_is_smooth_at_zero():
    r = np.linspace(0.0, 2.0, 201)
    h = np.array([0.0, 1e-5])
    for c in (0.1, 0.5, 2.0):
        phi = effective_gated_penalty(r, [c], 2)
        np.testing.assert_allclose(phi, 0.5 * np.sqrt(c**2 + 4 * r**2), rtol=1e-13)
        # Ridge-like: the one-sided slope at 0 is O(h / c), unlike |w| (slope 1).
        near = effective_gated_penalty(h, [c], 2)
        assert (near[1] - near[0]) / h[1] < 1e-3
    # Negative control: the balanced penalty has slope 1 at 0.
    bal = effective_gated_penalty(h, [0.0], 2)
    assert (bal[1] - bal[0]) / h[1] == pytest.approx(1.0)


def test_matches_a_numerical_minimisation_over_factorisations():
    from scipy.optimize import minimize

    depth, r, c = 3, 0.7, np.array([0.2, 0.5])

    # Minimise (1/D)(omega^2 + sum gamma^2) subject to omega*prod(gamma) = r, Delta = c.
    def penalty(x):
        return (x[0] ** 2 + np.sum(x[1:] ** 2)) / depth

    cons = [{"type": "eq", "fun": lambda x: x[0] * np.prod(x[1:]) - r}] + [
        {"type": "eq", "fun": lambda x, d=d: x[0] ** 2 - x[1 + d] ** 2 - c[d]} for d in range(2)
    ]
    res = minimize(
        penalty,
        np.array([1.0, 0.8, 0.6]),
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert res.success
    # SLSQP stops at ~1e-8 feasibility, hence the loose tolerance.
    assert effective_gated_penalty(np.array([r]), c, depth)[0] == pytest.approx(res.fun, rel=1e-6)
