"""The non-sparse -> sparse transition along the flow, and the prox/subgradient baselines."""

from __future__ import annotations

import numpy as np
import pytest

from dgating import GatedObjective, solve_prox
from dgating.simulations import (
    compare_paths,
    initial_params,
    integrate_flow,
    make_problem,
    prox_gradient_path,
    sparse_transition,
    subgradient_path,
)


@pytest.fixture(scope="module")
def setting():
    prob = make_problem(60, 12, 6, seed=0)
    obj = GatedObjective(prob, 3, 0.3)
    return prob, obj, initial_params(obj, init="ridge", seed=0, init_scale=0.3)


def test_groups_enter_the_sparse_regime_and_stay(setting):
    prob, obj, p0 = setting
    res = integrate_flow(obj, p0, (0.0, 40.0), t_eval=np.linspace(0, 40, 161))
    trans = sparse_transition(res)
    final = res.support[-1]
    assert np.all(np.isinf(trans.entry_time[final]))
    assert np.all(np.isfinite(trans.entry_time[~final]))
    for j in np.flatnonzero(~final):
        after = trans.t >= trans.entry_time[j]
        assert not res.support[after, j].any()
    # The flow's final support is the support of a local minimiser of L_w found by prox.
    ref = solve_prox(prob, 3, 0.3, w0=obj.gating.collapse(p0))
    assert sorted(np.flatnonzero(final)) == ref.support(prob.groups)
    # Vanishing groups never reach exact zero along the flow (a threshold is needed).
    assert np.all(res.group_norms[-1] > 0)
    assert np.all(trans.threshold_time[~final] >= trans.entry_time[~final])


def test_prox_reaches_exact_zeros_and_subgradient_does_not(setting):
    prob, obj, p0 = setting
    w0 = obj.gating.collapse(p0)
    prox = prox_gradient_path(prob, 3, 0.3, w0, n_iter=300)
    sub = subgradient_path(prob, 3, 0.3, w0, n_iter=300)
    zero = prox.group_norms[-1] == 0
    assert zero.any() and not zero.all()
    assert np.all(np.diff(prox.objective) <= 1e-12)  # prox gradient with step 1/L is monotone
    # Subgradient: the would-be zero groups keep oscillating at a non-zero norm.
    assert np.all(sub.group_norms[-1][zero] > 0)
    assert sub.objective[-1] > prox.objective[-1]
    np.testing.assert_array_equal(prox.t, sub.t)


def test_compare_paths_returns_aligned_arrays(setting):
    _, obj, p0 = setting
    out = compare_paths(obj, p0, 10.0, n_t=41)
    J = obj.gating.groups.n_groups
    assert out["flow_norms"].shape == (41, J)
    assert out["prox_norms"].shape[1] == J and out["subgradient_norms"].shape[1] == J
    assert out["prox_t"][-1] >= 10.0 and out["flow_t"][-1] == 10.0
    np.testing.assert_allclose(out["prox_norms"][0], out["flow_norms"][0])
