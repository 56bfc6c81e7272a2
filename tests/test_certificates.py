"""Certificates accept minimisers and reject non-minimisers (negative controls)."""

from __future__ import annotations

import numpy as np
import pytest

from dgating import DGating, GatedParams, certify, solve_gated, solve_prox

from .helpers import random_problem


@pytest.fixture
def problem(rng):
    return random_problem(rng, n=50, p=20, n_active=2)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_minimiser_certified_and_perturbed_minimiser_rejected(problem, depth):
    lam = 0.05
    res = solve_prox(problem, depth, lam)
    cert = certify(problem, depth, lam, res.w)
    assert cert.passed and cert.support == res.support(problem.groups)
    assert cert.min_eigenvalue > 0
    perturbed = res.w.copy()
    perturbed[cert.support[0] * 4] *= 1 + 1e-4
    bad = certify(problem, depth, lam, perturbed)
    assert not bad.passed and bad.stationarity > 1e-7


@pytest.mark.parametrize("depth", [2, 3])
def test_unbalanced_point_rejected(problem, depth):
    lam = 0.05
    res = solve_gated(problem, depth, lam)
    assert certify(problem, depth, lam, res.params).passed
    gating = DGating(depth, problem.groups)
    j = res.support(problem.groups)[0]
    gates = res.params.gates.copy()
    gates[j, 0] *= 2.0  # same w, unbalanced factorisation
    omega = res.params.omega * np.where(problem.groups.labels == j, 0.5, 1.0)
    unbalanced = GatedParams(omega, gates)
    np.testing.assert_allclose(gating.collapse(unbalanced), res.w, rtol=1e-14, atol=1e-15)
    cert = certify(problem, depth, lam, unbalanced)
    assert not cert.passed and cert.max_imbalance > 0.1


def test_zero_group_violating_group_lasso_condition_rejected(problem):
    # D = 2: a zero group with ||g_j|| > lam is not a minimiser (docs/theory.md [T-zero-groups]);
    # for D = 3 the same point is fine along that group (infinite slope of r^(2/3) at 0).
    lam = 0.05
    res = solve_prox(problem, 2, lam)
    j = res.support(problem.groups)[0]
    w = res.w.copy()
    w[problem.groups.labels == j] = 0.0
    g = problem.groups.norms(problem.grad(w))[j]
    assert g > lam
    cert = certify(problem, 2, lam, w)
    assert not cert.passed and cert.zero_group_margin < 0
    assert certify(problem, 3, lam, w).zero_group_margin == np.inf


def test_saddle_with_negative_curvature_rejected(rng):
    # A stationary point of the support-restricted problem with negative curvature: for q < 1 and a
    # group whose norm sits at the local maximum of r -> L_w along the ray (a 1-group, 1-feature
    # problem L_w(r) = (r - s)^2/2 + lam r^q has a local max between 0 and the minimiser).
    from dgating import GroupedProblem

    s, lam = 3.0, 1.0
    prob = GroupedProblem(np.array([[1.0]]), np.array([s]), np.array([0]))
    # n = 1: L_w(r) = (s - r)^2 / 2 + lam sqrt(r), stationary where r - s + lam / (2 sqrt r) = 0.
    roots = np.roots([1.0, 0.0, -s, lam / 2])  # u^3 - s u + lam/2 = 0, u = sqrt(r)
    u = np.sort(roots[(np.abs(roots.imag) < 1e-12) & (roots.real > 0)].real)
    r_max, r_min = u[0] ** 2, u[1] ** 2
    assert certify(prob, 4, lam, np.array([r_min])).passed
    cert = certify(prob, 4, lam, np.array([r_max]))
    assert cert.stationarity <= 1e-12  # first order holds ...
    assert not cert.passed and cert.min_eigenvalue < 0  # ... but it is a local maximum
