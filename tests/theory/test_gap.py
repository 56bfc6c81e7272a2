"""Objective gap: identity, bound and the asymptotic rates by group class."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from dgating.gating import GatedParams
from dgating.objectives import GatedObjective
from dgating.problem import GroupedProblem
from dgating.theory import (
    eps,
    g,
    gap_bound,
    gap_identity,
    gap_rates,
    lam,
    stated_gap_rates,
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


def _clear_caches():
    surviving_gap_rate.cache_clear()
    vanishing_gap_rate.cache_clear()


@pytest.fixture
def fresh_gap_caches():
    _clear_caches()
    yield
    _clear_caches()


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_derived_rates_depend_on_the_imbalance_law(depth, monkeypatch, fresh_gap_caches):
    """Seeded fault: a wrong imbalance rate (5 lam/D) must fail the derivation of both classes."""
    import dgating.theory.gap as gap_module
    from dgating.theory.balancedness import ImbalanceResult

    def wrong_dynamics(spec):
        rate = 5 * lam / spec.depth
        delta0 = sp.Symbol("Delta_0", real=True)
        return ImbalanceResult(rate, delta0 * sp.exp(-rate * gap_module.t), ())

    monkeypatch.setattr(gap_module, "imbalance_dynamics", wrong_dynamics)
    for res in (surviving_gap_rate(depth), vanishing_gap_rate(depth)):
        assert not res.holds
        # the failure is found inside the derivation, not only in the final comparison (for
        # D >= 3 the vanishing rate comes from the Hessian alone; "rho = 2 mu" fails)
        assert any(not step.holds for step in res.steps[:-1])
    assert sp.simplify(surviving_gap_rate(depth).rate - stated_gap_rates(depth)["surviving"]) != 0


@pytest.mark.parametrize("depth", [2, 4])
def test_derived_rates_depend_on_the_weight_decay(depth, monkeypatch, fresh_gap_caches):
    """Seeded fault: a Hessian with the penalty doubled (weight decay 4 lam/D) is caught."""
    import dgating.theory.gap as gap_module

    original = gap_module._linearisation

    def doubled_decay(spec):
        H, grad, gs = original(spec)
        pen = lam * spec.penalty
        return H + sp.hessian(pen, spec.theta), grad, gs

    monkeypatch.setattr(gap_module, "_linearisation", doubled_decay)
    assert not surviving_gap_rate(depth).holds
    assert not vanishing_gap_rate(depth).holds


@pytest.mark.parametrize("depth", [2, 3])
def test_a_wrong_statement_is_rejected(depth, monkeypatch, fresh_gap_caches):
    """Negative control on the last step: the derivation is right, the statement is not."""
    import dgating.theory.gap as gap_module

    def wrong_statement(d):
        return {k: v / 2 for k, v in stated_gap_rates(d).items()}

    monkeypatch.setattr(gap_module, "stated_gap_rates", wrong_statement)
    for res in (surviving_gap_rate(depth), vanishing_gap_rate(depth)):
        assert [step.holds for step in res.steps].count(False) == 1
        assert not res.steps[-1].holds


def test_every_rate_comes_with_its_hypotheses():
    for depth in (2, 3):
        for res in (surviving_gap_rate(depth), vanishing_gap_rate(depth)):
            assert res.hypotheses and all(isinstance(h, str) and h for h in res.hypotheses)
            # the leading term is built from derived pieces: it is an exponential in t
            assert res.leading.has(sp.exp) and gap_module_t() in res.leading.free_symbols


def gap_module_t():
    from dgating.theory import t

    return t


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
