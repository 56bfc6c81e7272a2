"""dgating.nn.optim: coupled weight decay 2 lam / D is the gradient of the gated penalty."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from dgating.nn import (
    DecoupledWeightDecayWarning,
    check_optimizer,
    dgate,
    gated_parameters,
    gated_penalty,
    lq_penalty,
    param_groups,
)

from .helpers import randomise_gates


def _net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2))
    net = net.double()
    dgate(net[0], 2, group="out")
    dgate(net[2], 4, group="in")
    return net


def test_param_groups_decay_is_two_lam_over_depth():
    net = _net()
    lam = 0.3
    groups = param_groups(net, lam)
    assert [g.get("weight_decay") for g in groups] == [2 * lam / 2, 2 * lam / 4, None]
    assert [g.get("dgating_depth") for g in groups] == [2, 4, None]
    gated = {id(p) for g in groups[:2] for p in g["params"]}
    assert gated == {id(p) for p in gated_parameters(net)}
    others = {id(p) for p in groups[2]["params"]}
    assert others == {id(net[2].bias), id(net[4].weight), id(net[4].bias)}
    assert not gated & others


def _one_step(net, x, y, make_opt, extra=None):
    opt = make_opt(net)
    opt.zero_grad()
    loss = ((net(x) - y) ** 2).mean()
    if extra is not None:
        loss = loss + extra(net)
    loss.backward()
    opt.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_with_param_groups_equals_sgd_on_gated_objective(momentum):
    """One SGD step with the param groups = one SGD step on L0 + (lam/D)(|omega|^2+|Gamma|^2)."""
    lam, lr = 0.2, 0.05
    net = _net()
    randomise_gates(net, 4)
    x = torch.randn(9, 5, dtype=torch.float64)
    y = torch.randn(9, 2, dtype=torch.float64)
    a = _one_step(
        copy.deepcopy(net),
        x,
        y,
        lambda m: torch.optim.SGD(param_groups(m, lam), lr=lr, momentum=momentum),
    )
    b = _one_step(
        copy.deepcopy(net),
        x,
        y,
        lambda m: torch.optim.SGD(m.parameters(), lr=lr, momentum=momentum),
        extra=lambda m: gated_penalty(m, lam),
    )
    for pa, pb in zip(a, b):
        assert torch.allclose(pa, pb, rtol=0, atol=1e-14)
    # negative control: a decay of lam / D (a common factor-2 slip) gives a different step
    c = _one_step(
        copy.deepcopy(net),
        x,
        y,
        lambda m: torch.optim.SGD(
            [dict(g, weight_decay=g.get("weight_decay", 0) / 2) for g in param_groups(m, lam)],
            lr=lr,
            momentum=momentum,
        ),
    )
    assert any(not torch.allclose(pa, pc, atol=1e-10) for pa, pc in zip(a, c))


def test_gated_penalty_equals_lam_times_lq_at_balance():
    net = _net()
    lam = 0.45
    assert float(gated_penalty(net, lam).detach()) == pytest.approx(
        float(lq_penalty(net, lam).detach()), rel=1e-12
    )
    randomise_gates(net, 1)  # negative control: off balance the gated penalty is strictly larger
    assert float(gated_penalty(net, lam).detach()) > float(lq_penalty(net, lam).detach()) * 1.001


def test_adamw_warns():
    net = _net()
    with pytest.warns(DecoupledWeightDecayWarning, match="decoupled weight decay"):
        # weight_decay=0: AdamW's default 0.01 on the ungated group would be flagged as well
        opt = torch.optim.AdamW(param_groups(net, 0.1), lr=1e-3, weight_decay=0.0)
    with pytest.warns(DecoupledWeightDecayWarning):
        assert not check_optimizer(opt)
    with pytest.warns(DecoupledWeightDecayWarning):
        torch.optim.Adam(param_groups(net, 0.1), lr=1e-3, decoupled_weight_decay=True)


def test_coupled_optimisers_do_not_warn():
    net = _net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.RMSprop):
            assert check_optimizer(cls(param_groups(net, 0.1), lr=1e-3))
        # lam = 0: decoupled decay of 0 is harmless
        torch.optim.AdamW(param_groups(net, 0.0), lr=1e-3)


def test_overridden_decay_warns():
    net = _net()
    groups = param_groups(net, 0.1)
    groups[0]["weight_decay"] = 1e-4
    with pytest.warns(UserWarning, match="not 2 \\* lam / depth"):
        assert not check_optimizer(torch.optim.SGD(groups, lr=0.1))


def test_decay_on_ungated_parameters_is_flagged():
    net = _net()
    # the case: every parameter, gated or not, decayed at one arbitrary rate
    with pytest.warns(UserWarning, match="not the stated ungated_weight_decay=0.0"):
        assert not check_optimizer(torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=0.01))
    with pytest.warns(UserWarning, match="D-gated parameters in a group not built"):
        check_optimizer(torch.optim.SGD(net.parameters(), lr=0.1), model=net)
    # a stated choice for ungated parameters is respected; a different one is flagged
    groups = param_groups(net, 0.1)
    groups[-1]["weight_decay"] = 1e-3
    opt = torch.optim.SGD(groups, lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_optimizer(opt, ungated_weight_decay=1e-3, model=net)
    with pytest.warns(UserWarning, match="weight_decay 0.001"):
        assert not check_optimizer(opt)
