"""The scalar and group prox against brute-force 1-D minimisation, including the jump."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dgating import GroupLqPenalty, Groups, effective_q, scalar_prox
from dgating.penalties import _prox_scalar, group_residuals, prox_threshold

# q = 1, 2/3, 1/2 use closed forms; 2/5, 2/7, 1/4 use the safeguarded Newton iteration.
QS = [1.0, 2.0 / 3.0, 0.5, 0.4, 2.0 / 7.0, 0.25]


def brute_force_prox(s: float, t: float, q: float) -> float:
    """argmin_{r >= 0} (r - s)^2 / 2 + t r^q by a dense grid, then bisection on the derivative
    inside the best grid cell, then comparison with r = 0 (the global minimiser)."""
    f = lambda r: 0.5 * (r - s) ** 2 + t * r**q  # noqa: E731
    if s == 0:
        return 0.0
    grid = np.linspace(0.0, s, 4001)
    i = int(np.argmin(f(grid)))
    if i == 0:
        return 0.0
    lo, hi = grid[i - 1], grid[min(i + 1, grid.size - 1)]
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid - s + t * q * mid ** (q - 1) > 0:
            hi = mid
        else:
            lo = mid
    r = 0.5 * (lo + hi)
    return r if f(r) < f(0.0) else 0.0


#: The public array map and the compiled scalar kernel it maps (which the BCD kernels call).
PROXES = {"array": scalar_prox, "scalar": _prox_scalar}


@pytest.mark.parametrize("impl", PROXES)
@pytest.mark.parametrize("q", QS)
@given(t=st.floats(1e-3, 10.0), ratio=st.floats(0.0, 4.0))
def test_scalar_prox_matches_brute_force(impl, q, t, ratio):
    # Inputs are expressed relative to the threshold so the jump region is well sampled.
    s = ratio * float(prox_threshold(t, q))
    ref, ours = brute_force_prox(s, t, q), float(PROXES[impl](s, t, q))
    if abs(ours - ref) <= 1e-10 * max(1.0, ref):
        return
    # Only a tie at s = tau may differ: then 0 and the jump value are both global minimisers.
    f = lambda r: 0.5 * (r - s) ** 2 + t * r**q  # noqa: E731
    assert min(ours, ref) == 0.0 and abs(f(ours) - f(ref)) <= 1e-12 * f(0.0)


@pytest.mark.parametrize("q", [q for q in QS if q < 1])
def test_jump_at_threshold(q):
    t = 0.7
    tau = float(prox_threshold(t, q))
    jump = (2 * t * (1 - q)) ** (1 / (2 - q))
    below, above = scalar_prox(tau * (1 - 1e-9), t, q), scalar_prox(tau * (1 + 1e-9), t, q)
    assert below == 0.0
    assert abs(float(above) - jump) <= 1e-4 * jump  # sqrt(1e-9)-sized move of the root
    # At tau both candidates have the same objective: that is what defines the threshold.
    f = lambda r: 0.5 * (r - tau) ** 2 + t * r**q  # noqa: E731
    assert abs(f(jump) - f(0.0)) <= 1e-12 * f(0.0)


@pytest.mark.parametrize("q", QS)
def test_prox_is_vectorised_and_monotone(q):
    s = np.linspace(0, 5, 2001)
    out = scalar_prox(s, 0.5, q)
    assert out.shape == s.shape
    assert np.all(np.diff(out) >= 0) and np.all(out <= s)


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_group_prox_is_radial_and_minimises(rng, depth):
    pen = GroupLqPenalty.from_depth(0.8, depth)
    groups = Groups(np.array([0, 0, 0, 1, 1, -1]))
    z = rng.normal(size=6) * 2
    out = pen.prox(z, 0.5, groups)
    assert out[5] == z[5]  # unpenalised entries are untouched
    for j in range(2):
        m = groups.labels == j
        if np.any(out[m]):
            np.testing.assert_allclose(out[m] / np.linalg.norm(out[m]), z[m] / np.linalg.norm(z[m]))
    # Negative control: random nearby points never beat the prox on its objective.
    obj = lambda x: 0.5 * np.sum((x - z) ** 2) + 0.5 * pen.value(x, groups)  # noqa: E731
    best = obj(out)
    for _ in range(200):
        assert obj(out + 1e-3 * rng.normal(size=6)) >= best - 1e-14


def test_effective_q_and_value():
    assert effective_q(3) == pytest.approx(2 / 3)
    pen = GroupLqPenalty(2.0, effective_q(4))
    groups = Groups(np.array([0, 0, 1, -1]))
    assert pen.value(np.array([3.0, 4.0, -9.0, 100.0]), groups) == pytest.approx(2 * (5**0.5 + 3))


def reference_residuals(w, grad, labels, lam, q):
    """First-order residuals from the definition, one group at a time (no dgating code)."""
    out = []
    for j in range(labels.max() + 1):
        wj, gj = w[labels == j], grad[labels == j]
        if np.linalg.norm(wj) > 0:  # the penalty is differentiable: its gradient plus g_j
            out.append(np.linalg.norm(gj + lam * q * np.linalg.norm(wj) ** (q - 2) * wj))
        elif q == 1.0:  # subdifferential lam * unit ball: distance of -g_j to it
            out.append(max(np.linalg.norm(gj) - lam, 0.0))
        else:  # infinite slope at 0: every g_j is absorbed
            out.append(0.0)
    return np.array(out + [np.linalg.norm(grad[labels < 0])])


@pytest.mark.parametrize("q", QS)
def test_residuals_match_the_definition(rng, q):
    labels = np.array([0, 0, 0, 1, 1, -1, 2, 2, 3, -1])
    w = rng.normal(size=labels.size)
    w[labels == 1] = 0.0  # a zero group with a large gradient, one with a small one
    w[labels == 3] = 0.0
    grad = rng.normal(size=labels.size)
    grad[labels == 3] *= 1e-3
    lam = 0.7
    res, sq_w, sq_g = group_residuals(w, grad, Groups(labels), lam, q)
    np.testing.assert_allclose(res, reference_residuals(w, grad, labels, lam, q), rtol=1e-13)
    assert res[3] == 0.0 and (res[1] > 0) == (q == 1.0)
    np.testing.assert_allclose(sq_w, [np.sum(w[labels == j] ** 2) for j in range(4)], rtol=1e-14)
    np.testing.assert_allclose(sq_g, [np.sum(grad[labels == j] ** 2) for j in range(4)], rtol=1e-14)
    np.testing.assert_array_equal(GroupLqPenalty(lam, q).residuals(w, grad, Groups(labels)), res)
    if q < 1.0:  # negative control: the definition at another q gives other residuals
        wrong = reference_residuals(w, grad, labels, lam, 1.0)
        assert np.max(np.abs(res - wrong)) > 1e-3


def test_residuals_vanish_at_the_group_lasso_solution():
    # X = I (n = p = 4): the group lasso minimiser is block soft thresholding of y by n lam, so
    # the residual must be zero there and positive a little away from it.
    y, labels, lam = np.array([3.0, 4.0, 0.1, -0.2]), np.array([0, 0, 1, 1]), 0.25
    n = y.size
    w = np.zeros(n)
    for j in (0, 1):
        yj = y[labels == j]
        w[labels == j] = max(1 - n * lam / np.linalg.norm(yj), 0.0) * yj
    grad = (w - y) / n  # squared loss (1 / 2n) ||y - w||^2
    res = GroupLqPenalty(lam, 1.0).residuals(w, grad, Groups(labels))
    assert np.max(res) <= 1e-15
    res_off = GroupLqPenalty(lam, 1.0).residuals(1.01 * w, (1.01 * w - y) / n, Groups(labels))
    assert res_off[0] > 1e-3
