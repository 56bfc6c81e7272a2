"""Effective penalty: derived symbolically, checked against the numpy penalty and the lift."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from dgating.gating import DGating
from dgating.penalties import GroupLqPenalty
from dgating.theory import amgm_chain, check_identity, effective_penalty, r


@pytest.mark.parametrize("depth", range(2, 9))
@pytest.mark.parametrize("group_size", [1, 3])
def test_lagrange_derivation_gives_r_to_the_2_over_d(depth, group_size):
    res = effective_penalty(depth, group_size)
    assert all(step.holds for step in res.steps), [s.name for s in res.steps if not s.holds]
    assert sp.simplify(res.expr - r ** sp.Rational(2, depth)) == 0


def test_amgm_chain_for_symbolic_depth_holds():
    assert all(step.holds for step in amgm_chain())


def test_wrong_penalty_is_rejected_by_the_same_checker():
    res = effective_penalty(3, 2)
    value_step = next(s for s in res.steps if s.name == "value at the balanced points")
    assert not check_identity("wrong exponent", value_step.lhs, r ** sp.Rational(1, 3)).holds
    assert not check_identity("wrong factor", value_step.lhs, 2 * r ** sp.Rational(2, 3)).holds


@pytest.mark.parametrize("depth", [2, 3, 4, 7])
def test_numeric_twin_matches_group_penalty_and_balanced_lift(depth, rng):
    groups = np.array([0, 0, 1, 1, 1, 2])
    f = sp.lambdify(r, effective_penalty(depth, 2).expr, "numpy")
    pen = GroupLqPenalty.from_depth(1.0, depth)
    gating = DGating(depth, groups)
    for _ in range(5):
        w = rng.normal(size=groups.size)
        signs = rng.choice([-1.0, 1.0], size=(3, depth - 1))
        norms = np.array([np.linalg.norm(w[groups == j]) for j in range(3)])
        derived = float(np.sum(f(norms)))
        assert derived == pytest.approx(pen.value(w, groups), rel=1e-12)
        assert derived == pytest.approx(gating.penalty(gating.lift(w, signs)), rel=1e-12)


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_derived_minimisers_lie_on_the_fibre_with_minimal_value(depth, rng):
    p = 3
    res = effective_penalty(depth, p)
    w_syms = sp.symbols(f"w_1:{p + 1}", real=True)
    signs = sp.symbols(f"s_1:{depth}")
    args = (r, *w_syms, *signs)
    omega_f = sp.lambdify(args, list(res.omega), "numpy")
    gates_f = sp.lambdify(args, list(res.gates), "numpy")
    w = rng.normal(size=p)
    s = rng.choice([-1.0, 1.0], size=depth - 1)
    vals = (np.linalg.norm(w), *w, *s)
    omega, gates = np.array(omega_f(*vals)), np.array(gates_f(*vals))
    np.testing.assert_allclose(omega * np.prod(gates), w, rtol=1e-12)
    value = (omega @ omega + gates @ gates) / depth
    assert value == pytest.approx(np.linalg.norm(w) ** (2 / depth), rel=1e-12)
    # any other point of the fibre is worse (rescale one gate against omega)
    for c in (0.5, 0.9, 1.1, 3.0):
        o2, g2 = omega * c, gates.copy()
        g2[0] /= c
        assert (o2 @ o2 + g2 @ g2) / depth > value
