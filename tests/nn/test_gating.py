"""dgating.nn.gating: function unchanged at init, gradients = chain rule of DGating, state_dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dgating import DGating, GatedParams
from dgating._validation import InvalidParameterError, InvalidTypeError
from dgating.nn import (
    collapse,
    dgate,
    gate_banks,
    gated_parameters,
    gated_penalty,
    group_norms,
    lq_penalty,
    max_imbalance,
)

from .helpers import make_module, member_paths, randomise_gates, run

CASES = [
    ("linear", "out"),
    ("linear", "in"),
    ("conv", "out"),
    ("conv", "in"),
    ("bn", "out"),
    ("mha", "heads"),
]


@pytest.mark.parametrize("kind,group", CASES)
@pytest.mark.parametrize("init", ["balanced", "ones"])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_forward_unchanged_at_init(kind, group, init, depth):
    mod, x = make_module(kind)
    y = run(mod, x).detach()
    dgate(mod, depth, group=group, init=init)
    assert torch.allclose(run(mod, x), y, rtol=0, atol=1e-12)
    # negative control: moving one gate changes the function
    with torch.no_grad():
        gate_banks(mod)[0].bank.gates[0, 0] *= 1.5
    assert not torch.allclose(run(mod, x), y, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind,group", CASES)
def test_weight_attribute_is_collapsed_weight(kind, group):
    mod, _ = make_module(kind)
    dgate(mod, 3, group=group)
    randomise_gates(mod, 1)
    bank = gate_banks(mod)[0].bank
    p = bank.products().detach()
    for (owner, name, par), omega in zip(bank.members, bank.omegas()):
        labels = par.labels(omega.shape)
        assert torch.equal(getattr(owner, name), omega * p[labels])


def _flat_grads(model, bank):
    return torch.cat([o.grad.reshape(-1) for o in bank.omegas()]), bank.gates.grad.clone()


@pytest.mark.parametrize("kind,group", CASES)
@pytest.mark.parametrize("depth", [2, 4])
@pytest.mark.parametrize("fast", [True, False])
def test_gradients_match_dgating_pullback(kind, group, depth, fast):
    """Autograd through the parametrisation = DGating.pullback of autograd on the collapsed w."""
    mod, x = make_module(kind, seed=depth)
    dgate(mod, depth, group=group, fast=fast)
    randomise_gates(mod, seed=3)
    target = torch.randn_like(run(mod, x))
    ((run(mod, x) - target) ** 2).sum().backward()
    bank = gate_banks(mod)[0].bank
    d_omega, d_gates = _flat_grads(mod, bank)

    plain = collapse(mod)
    ((run(plain, x) - target) ** 2).sum().backward()
    grad_w = torch.cat(
        [
            getattr(plain.get_submodule(path), name).grad.reshape(-1)
            for path, name in member_paths(mod, bank)
        ]
    )
    gating = DGating(depth, bank.flat_labels().numpy())
    omega = bank.flatten([o.detach() for o in bank.omegas()]).numpy()
    params = GatedParams(omega, bank.gates.detach().numpy())
    expected = gating.pullback(params, grad_w.numpy())
    np.testing.assert_allclose(d_omega.numpy(), expected.omega, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d_gates.numpy(), expected.gates, rtol=1e-10, atol=1e-12)
    # negative control: the gradient with respect to w itself is not the omega gradient
    assert not np.allclose(d_omega.numpy(), grad_w.numpy(), rtol=1e-6, atol=1e-8)


def test_fast_and_generic_forward_agree():
    for kind, group in CASES[:4]:
        a, x = make_module(kind)
        b, _ = make_module(kind)
        dgate(a, 3, group=group, fast=True)
        dgate(b, 3, group=group, fast=False)
        randomise_gates(a, 2)
        randomise_gates(b, 2)
        assert type(a).forward is not type(b).forward
        assert torch.allclose(a(x), b(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind,group", CASES)
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_balanced_init_penalty_equals_lq_penalty(kind, group, depth):
    mod, _ = make_module(kind)
    dgate(mod, depth, group=group, init="balanced")
    lam = 0.37
    # independent value of lam * sum_j ||w_j||^(2/D) from the collapsed module
    plain = collapse(mod)
    bank = gate_banks(mod)[0].bank
    w = torch.cat(
        [getattr(plain.get_submodule(p), n).reshape(-1) for p, n in member_paths(mod, bank)]
    ).detach()
    labels = bank.flat_labels()
    sq = torch.zeros(bank.n_groups, dtype=w.dtype).index_add(0, labels, w * w)
    expected = lam * float((sq.sqrt() ** (2 / depth)).sum())
    assert float(gated_penalty(mod, lam).detach()) == pytest.approx(expected, rel=1e-12)
    assert float(lq_penalty(mod, lam).detach()) == pytest.approx(expected, rel=1e-12)
    assert max_imbalance(mod) < 1e-12
    # negative control: unit gates are unbalanced and strictly above the bound (AM-GM)
    mod2, _ = make_module(kind)
    dgate(mod2, depth, group=group, init="ones")
    assert float(gated_penalty(mod2, lam).detach()) > expected * (1 + 1e-3)
    assert max_imbalance(mod2) > 1e-3


def test_group_norms_are_row_norms_with_bias():
    lin, _ = make_module("linear")
    dgate(lin, 2, group="out")
    w = torch.cat([lin.weight, lin.bias[:, None]], dim=1).detach()
    assert torch.allclose(group_norms(lin)["weight"], w.norm(dim=1), atol=1e-14)


def test_state_dict_holds_omega_and_gates_once():
    a, x = make_module("linear")
    dgate(a, 3, group="out")
    randomise_gates(a, 5)
    sd = a.state_dict()
    assert set(sd) == {
        "parametrizations.weight.original",
        "parametrizations.weight.0.gates",
        "parametrizations.bias.original",
    }
    b, _ = make_module("linear", seed=9)
    dgate(b, 3, group="out")
    assert not torch.allclose(a(x), b(x))  # negative control
    b.load_state_dict(sd)
    assert torch.allclose(a(x), b(x), rtol=0, atol=1e-14)


def test_gated_parameters_are_omegas_and_gates():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    dgate(net[0], 2, group="out")
    dgate(net[2], 3, group="in")
    params = gated_parameters(net)
    ids = {id(p) for p in params}
    assert len(params) == 5  # (W, b, gates) + (W, gates)
    assert id(net[2].bias) not in ids and id(net[0].parametrizations.bias.original) in ids


def test_heads_gating_zero_head_removes_its_contribution():
    mha, x = make_module("mha")
    dgate(mha, 2)
    with torch.no_grad():
        mha.parametrizations.in_proj_weight[0].gates[1] = 0.0
    w = mha.in_proj_weight
    hd = mha.head_dim
    for block in range(3):
        rows = slice(block * 6 + hd, block * 6 + 2 * hd)
        assert torch.count_nonzero(w[rows]) == 0
    assert torch.count_nonzero(mha.out_proj.weight[:, hd : 2 * hd]) == 0
    assert torch.count_nonzero(mha.out_proj.weight[:, :hd]) > 0


def test_invalid_arguments():
    lin, _ = make_module("linear")
    with pytest.raises(InvalidParameterError, match="`depth` must be an integer >= 2; got 1"):
        dgate(lin, 1)
    with pytest.raises(InvalidParameterError, match="Unknown `group` 'heads'"):
        dgate(lin, 2, group="heads")
    with pytest.raises(InvalidParameterError, match="Unknown `init` 'zeros'"):
        dgate(lin, 2, init="zeros")
    with pytest.raises(InvalidParameterError, match="groups=1"):
        dgate(nn.Conv2d(4, 4, 3, groups=2), 2, group="in")
    with pytest.raises(InvalidTypeError, match="got LayerNorm"):
        dgate(nn.LayerNorm(3), 2)
    with pytest.raises(InvalidParameterError, match="affine=False"):
        dgate(nn.BatchNorm1d(3, affine=False), 2)
    with pytest.raises(InvalidParameterError, match="depthwise"):
        dgate(nn.Conv2d(4, 4, 3, groups=2), 2, group="in")
    with pytest.raises(InvalidParameterError, match="groups=1"):
        dgate(nn.ConvTranspose2d(4, 4, 3, groups=2), 2, group="out")
    dgate(lin, 2)
    with pytest.raises(InvalidParameterError, match="already D-gated"):
        dgate(lin, 2)


@pytest.mark.parametrize("same_dim", [True, False])
def test_heads_gating_unchanged_at_init_in_eval_and_with_kdim(same_dim):
    torch.manual_seed(0)
    kw = {} if same_dim else {"kdim": 5, "vdim": 4}
    mha = nn.MultiheadAttention(6, 3, batch_first=True, **kw).double().eval()
    q = torch.randn(2, 4, 6, dtype=torch.float64)
    k = torch.randn(2, 3, 6 if same_dim else 5, dtype=torch.float64)
    v = torch.randn(2, 3, 6 if same_dim else 4, dtype=torch.float64)
    with torch.no_grad():  # eval + no_grad may take torch's fused fast path
        y = mha(q, k, v)[0]
        dgate(mha, 4)
        assert torch.allclose(mha(q, k, v)[0], y, rtol=0, atol=1e-12)
        names = [n for n in mha.state_dict() if n.endswith("gates")]
        assert len(names) == 1  # the gates are stored once, by the primary tensor
        gate_banks(mha)[0].bank.gates[0] = 0.0
        assert not torch.allclose(mha(q, k, v)[0], y, atol=1e-6)  # negative control


def test_outgoing_weights_join_the_group():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    y = net(x).detach()
    w_in = torch.cat([net[0].weight, net[0].bias[:, None]], 1).detach()
    w_out = net[2].weight.detach().clone()  # dgate overwrites the parameter with omega
    dgate(net[0], 3, outgoing=net[2])
    assert torch.allclose(net(x), y, rtol=0, atol=1e-12)
    # group j = (row j and bias j of layer 0, column j of layer 2): penalty at the balanced lift
    norms = torch.sqrt((w_in**2).sum(1) + (w_out**2).sum(0))
    lam = 0.3
    expected = lam * (norms ** (2 / 3)).sum()
    assert torch.allclose(gated_penalty(net, lam), expected, rtol=1e-12)
    assert torch.allclose(lq_penalty(net, lam), expected, rtol=1e-12)
    # negative control: without the outgoing columns the penalty is smaller
    rows_only = lam * (torch.sqrt((w_in**2).sum(1)) ** (2 / 3)).sum()
    assert float(expected - rows_only) > 1e-3
    # killing a group zeroes the row and the column; collapse is exact and plain
    with torch.no_grad():
        gate_banks(net)[0].bank.gates[2] = 0.0
    plain = collapse(net)
    assert torch.allclose(plain(x), net(x), rtol=0, atol=1e-12)
    assert bool((plain[2].weight[:, 2] == 0).all()) and not hasattr(plain[2], "parametrizations")
    with pytest.raises(InvalidParameterError, match="`outgoing` must be"):
        dgate(nn.Linear(4, 5), 2, outgoing=nn.Linear(4, 2))
