"""dgating.nn.export: collapse and structural export are exact (outputs to 1e-6 and better)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dgating import GroupLqPenalty, Groups
from dgating._validation import InvalidParameterError, InvalidTypeError
from dgating.nn import collapse, dgate, export, gate_banks, is_gated

from .helpers import make_module, randomise_gates, run


def _mlp(act=nn.ReLU, seed=0) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(10, 20), act(), nn.Linear(20, 15), act(), nn.Dropout(0.2), nn.Linear(15, 3)
    ).double()
    dgate(net[0], 3, group="out")
    dgate(net[2], 2, group="out")
    dgate(net[5], 4, group="in")
    return net.eval()


def _kill(net, layer, groups, value=0.0):
    with torch.no_grad():
        net[layer].parametrizations.weight[0].gates[groups] = value


def _x(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.parametrize("kind,group", [("linear", "out"), ("conv", "in"), ("mha", "heads")])
def test_collapse_is_plain_and_exact(kind, group):
    mod, x = make_module(kind)
    dgate(mod, 3, group=group)
    randomise_gates(mod, 0)
    plain = collapse(mod)
    assert not is_gated(plain) and not hasattr(plain, "parametrizations")
    assert type(plain) is type(make_module(kind)[0])
    assert torch.allclose(run(plain, x), run(mod, x), rtol=0, atol=1e-12)
    assert is_gated(mod)  # the original is untouched and still works
    run(mod, x).sum().backward()


def test_export_mlp_is_exact_and_smaller():
    net = _mlp()
    _kill(net, 0, [1, 4, 7], 1e-9)  # tiny (depth 3: group norm ~ 1e-18): thresholded
    _kill(net, 2, [0, 2])  # exactly zero neurons of layer 2
    _kill(net, 5, [3, 5, 6, 9])  # zero input columns of the last layer: dead layer-2 units
    x = _x(64, 10)
    res = export(net, threshold=1e-6)
    assert res.units_before == (20, 15, 3)
    assert res.units_after == (17, 9, 3)
    assert res.n_params_after < res.n_params_before
    assert all(type(m) in (nn.Linear, nn.ReLU, nn.Dropout) for m in res.model)
    with torch.no_grad():
        err = (res(x) - net(x)).abs().max().item()
    assert err < 1e-6
    # negative control: without the threshold the tiny groups are kept
    assert export(net).units_after == (20, 9, 3)


def test_export_exact_zero_groups_to_machine_precision():
    net = _mlp()
    _kill(net, 0, [0, 3])
    res = export(net)
    x = _x(32, 10)
    with torch.no_grad():
        assert torch.allclose(res(x), net(x), rtol=0, atol=1e-12)
    assert res.units_after[0] == 18


def test_export_folds_constant_activation_of_removed_neuron():
    # sigmoid(0) = 1/2: a removed neuron still sends 0.5 * W[:, k] into the next layer's bias
    net = _mlp(act=nn.Sigmoid)
    _kill(net, 0, [2, 5])
    res = export(net)
    x = _x(32, 10)
    assert res.units_after[0] == 18
    with torch.no_grad():
        assert torch.allclose(res(x), net(x), rtol=0, atol=1e-12)
        # negative control: dropping the neurons without folding changes the outputs
        no_fold = collapse(net)
        keep = [k for k in range(20) if k not in (2, 5)]
        layer0 = nn.Linear(10, 18).double()
        layer0.weight.copy_(no_fold[0].weight[keep])
        layer0.bias.copy_(no_fold[0].bias[keep])
        layer2 = nn.Linear(18, 15).double()
        layer2.weight.copy_(no_fold[2].weight[:, keep])
        layer2.bias.copy_(no_fold[2].bias)
        naive = nn.Sequential(layer0, nn.Sigmoid(), layer2, *list(no_fold)[3:]).eval()
        assert (naive(x) - net(x)).abs().max() > 1e-3


def test_export_cnn_is_exact():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 5),
    ).double()
    dgate(net[0], 3, group="out")
    dgate(net[3], 2, group="in")
    dgate(net[7], 2, group="in")
    with torch.no_grad():
        net[0].parametrizations.weight[0].gates[[1, 6]] = 0.0  # filters of conv 1
        net[3].parametrizations.weight[0].gates[[2]] = 0.0  # input channel 2 of conv 2
        net[7].parametrizations.weight[0].gates[4:8] = 0.0  # all features of channel 1
    x = _x(4, 3, 8, 8)
    res = export(net)
    assert res.units_after == (5, 5, 5)
    assert isinstance(res.model[0], nn.Conv2d) and res.model[0].out_channels == 5
    with torch.no_grad():
        assert torch.allclose(res(x), net(x), rtol=0, atol=1e-12)


def test_export_drops_zero_input_features():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(13, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    dgate(net[0], 3, group="in")
    _kill(net, 0, [0, 4, 12])
    res = export(net, drop_inputs=True)
    assert res.input_index.tolist() == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11]
    assert res.model[0].in_features == 10
    x = _x(16, 13)
    with torch.no_grad():
        assert torch.allclose(res(x), net(x), rtol=0, atol=1e-12)
    assert export(net).input_index is None


def test_collapse_final_prox_step_matches_group_prox():
    net = _mlp()
    randomise_gates(net, 7)
    lam, step = 0.5, 0.1
    out = collapse(net, lam=lam, step=step)
    for layer in (0, 2, 5):
        bank = gate_banks(net)[[0, 2, 5].index(layer)].bank
        w = bank.flatten([t.detach() for t in bank.weights()]).numpy()
        groups = Groups(bank.flat_labels().numpy())
        expected = GroupLqPenalty.from_depth(lam, bank.depth).prox(w, step, groups)
        got = torch.cat(
            [getattr(out[layer], name).detach().reshape(-1) for _, name, _ in bank.members]
        ).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
        assert np.any(expected != w)  # the step did something


def test_export_rejects_unsupported_models():
    with pytest.raises(InvalidTypeError, match="nn.Sequential"):
        export(nn.Linear(3, 2))
    with pytest.raises(InvalidTypeError, match="got BatchNorm1d"):
        export(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)))
    with pytest.raises(InvalidParameterError, match="`lam` and `step` must be given together"):
        collapse(_mlp(), lam=0.1)
    with pytest.raises(InvalidParameterError, match="`threshold` must be a finite number >= 0"):
        collapse(_mlp(), threshold=-1.0)


def test_export_removes_a_whole_layer_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 2)).double()
    dgate(net[0], 2)
    _kill(net, 0, slice(None))
    res = export(net)
    assert res.units_after == (0, 2)
    x = _x(6, 4)
    with torch.no_grad():
        assert torch.allclose(res(x), net(x), rtol=0, atol=1e-12)
    # negative control: the constant sigmoid(0) = 1/2 had to be folded into the next bias
    assert not torch.allclose(res.model[2].bias, collapse(net)[2].bias, atol=1e-6)
