"""Checks on known minimisers pass; the same checks flag points that are not minimisers."""

import numpy as np
import pytest

from dgating import GatedObjective, GatedParams, solve_gated, solve_prox
from dgating.proofs_check.checks import (
    check_balanced,
    check_gated_hessian,
    check_gated_minimiser,
    check_penalised_minimiser,
    check_values,
    gated_hessian_extremes,
    perturbation_test_gated,
    perturbation_test_penalised,
)
from dgating.proofs_check.problems import PROBLEMS


@pytest.fixture(scope="module")
def wide():
    return PROBLEMS["reg_wide"].problem()


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_direction_a_gated_minimiser_is_certified(wide, depth):
    lam = PROBLEMS["reg_wide"].lam(depth)
    res = solve_gated(wide, depth, lam)
    obj = GatedObjective(wide, depth, lam)
    checks = check_gated_minimiser(obj, res.params, prefix="a.", n_random=16)
    checks += check_penalised_minimiser(wide, depth, lam, res.w, n_random=16)
    checks += check_values(obj, res.params)
    failed = [(c.name, c.value) for c in checks if not c.passed]
    assert not failed
    assert 0 < len(res.support(wide.groups)) < wide.n_groups  # non-trivial


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_direction_b_lifted_prox_minimiser_is_minimiser_of_L(wide, depth):
    lam = PROBLEMS["reg_wide"].lam(depth)
    w = solve_prox(wide, depth, lam).w
    obj = GatedObjective(wide, depth, lam)
    checks = check_gated_minimiser(obj, obj.gating.lift(w), n_random=16)
    assert all(c.passed for c in checks), [(c.name, c.value) for c in checks]


def test_balancedness_identity_holds_off_the_balanced_set(wide):
    rng = np.random.default_rng(1)
    obj = GatedObjective(wide, 4, 0.3)
    params = GatedParams(rng.normal(size=wide.n_features), rng.normal(size=(wide.n_groups, 3)))
    res = check_balanced(obj, params)
    assert not res.passed  # unbalanced (and not stationary) ...
    assert res.details["identity_error"] <= 1e-12  # ... but the identity is exact
    assert res.value <= res.details["gradient_bound"] * (1 + 1e-12)


@pytest.mark.parametrize("depth", [2, 3])
def test_zero_group_hessian_block_matches_theory(depth):
    # docs/theory.md [T-zero-groups]: at a zero group of a lifted point, the (omega_j, gamma_j)
    # block has the eigenvalues lam +- ||g_j|| (D = 2) or is (2 lam / D) I (D >= 3).
    from dgating import GroupedProblem

    X = np.eye(3) * np.sqrt(3.0)
    prob = GroupedProblem(X, np.array([1.0, 2.0, 0.5]), np.array([0, 0, 1]))
    lam = 0.4
    obj = GatedObjective(prob, depth, lam)
    params = obj.gating.lift(np.zeros(3))
    g = prob.grad(np.zeros(3))
    block = [0, 1, 3]  # omega of group 0 and its gate(s) (packed layout: omega, gates)
    block = [0, 1] + [3 + d for d in range(depth - 1)]
    H = obj.hessian(params, np.array(block))
    evals = np.sort(np.linalg.eigvalsh(H))
    gn = np.linalg.norm(g[:2])
    if depth == 2:
        expected = np.sort([lam - gn, lam, lam + gn])
    else:
        expected = np.full(len(block), 2 * lam / depth)
    np.testing.assert_allclose(evals, expected, rtol=1e-12, atol=1e-14)


def test_lanczos_agrees_with_dense_hessian(wide):
    lam = PROBLEMS["reg_wide"].lam(3)
    obj = GatedObjective(wide, 3, lam)
    params = obj.gating.lift(solve_prox(wide, 3, lam).w)
    lo_d, big_d, _, m_d = gated_hessian_extremes(obj, params)
    lo_l, big_l, vec, m_l = gated_hessian_extremes(obj, params, dense_max=0)
    assert (m_d, m_l) == ("dense", "lanczos")
    assert abs(lo_l - lo_d) <= 1e-8 * big_d
    assert abs(big_l - big_d) <= 1e-8 * big_d
    assert check_gated_hessian(obj, params, dense_max=0).passed


def test_perturbation_tests_find_descent_at_non_minimisers(wide):
    lam = PROBLEMS["reg_wide"].lam(2)
    w = solve_prox(wide, 2, lam).w
    assert perturbation_test_penalised(wide, 2, lam, w, n_random=8).passed
    j = int(np.argmax(wide.groups.norms(w)))
    w_off = w.copy()
    w_off[wide.groups.members(j)] *= 0.9  # shrink one active group: not a minimiser
    res = perturbation_test_penalised(wide, 2, lam, w_off, n_random=8)
    assert not res.passed and res.margin < 0
    obj = GatedObjective(wide, 2, lam)
    assert not perturbation_test_gated(obj, obj.gating.lift(w_off), n_random=8).passed


def test_values_gap_matches_am_gm_formula(wide):
    lam = PROBLEMS["reg_wide"].lam(3)
    obj = GatedObjective(wide, 3, lam)
    res = solve_gated(wide, 3, lam)
    bal, unbal = check_values(obj, res.params)
    assert bal.passed and unbal.passed
    assert unbal.details["formula_error"] <= 1e-12
    assert unbal.details["same_w_error"] <= 1e-12
