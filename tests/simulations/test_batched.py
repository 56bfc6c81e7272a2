"""The batched engine: per-configuration error control, mixed depths, drop-out of finished rows."""

from __future__ import annotations

import numpy as np

from dgating import GatedObjective
from dgating.simulations import initial_params, integrate_flows, make_problem


def test_each_configuration_keeps_its_own_step_control():
    prob = make_problem(40, 8, 4, seed=0)
    easy = GatedObjective(prob, 2, 0.05)
    hard = GatedObjective(prob, 4, 0.5)
    p_easy, p_hard = initial_params(easy, seed=0, init_scale=0.3), initial_params(hard, seed=1)
    t_eval = [0.0, 10.0]
    both = integrate_flows([easy, hard], [p_easy, p_hard], 10.0, t_eval=t_eval, rtol=1e-8)
    alone = [
        integrate_flows([obj], [prm], 10.0, t_eval=t_eval, rtol=1e-8)[0]
        for obj, prm in ((easy, p_easy), (hard, p_hard))
    ]
    for b, a in zip(both, alone):
        # Same steps as when integrated alone: the batch does not couple the step sizes.
        assert b.nfev == a.nfev
        np.testing.assert_allclose(b.omega, a.omega, rtol=1e-12, atol=1e-14)
    assert both[0].nfev != both[1].nfev  # negative control: the two really differ


def test_mixed_depths_are_padded_exactly():
    prob = make_problem(40, 8, 4, seed=3)
    objs = [GatedObjective(prob, d, 0.2) for d in (2, 5, 3)]
    p0 = [initial_params(o, seed=i) for i, o in enumerate(objs)]
    mixed = integrate_flows(objs, p0, 5.0, t_eval=[0.0, 5.0], rtol=1e-9)
    for obj, prm, res in zip(objs, p0, mixed):
        assert res.gates.shape == (2, 4, obj.depth - 1)
        single = integrate_flows([obj], [prm], 5.0, t_eval=[0.0, 5.0], rtol=1e-9)[0]
        np.testing.assert_allclose(res.gates, single.gates, rtol=1e-12, atol=1e-14)
        assert res.message.startswith("reached t_end")
