"""dgating.nn.export: collapse and structural export of traced models are exact (eval mode, 1e-6
and better) and remove exactly the expected parameters (counted by hand from the architecture)."""

from __future__ import annotations

import io
import pydoc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dgating.nn
from dgating import GroupLqPenalty, Groups
from dgating._validation import InvalidParameterError, InvalidTypeError
from dgating.nn import PrunedMultiheadAttention, collapse, dgate, export, gate_banks, is_gated
from dgating.penalties import prox_threshold

from .helpers import make_module, randomise_gates, run

TOL = 1e-6  # the contract for exported == gated (float64, eval mode)


def _x(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _kill(module, groups, value=0.0):
    with torch.no_grad():
        gate_banks(module)[0].bank.gates[groups] = value


def _err(res, net, *x):
    with torch.no_grad():
        return (res(*x) - net(*x)).abs().max().item()


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------
# models the package does not ship


class Block(nn.Module):
    """Basic residual block: relu(bn2(conv2(relu(bn1(conv1(x))))) + x)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + x)


class ResNet(nn.Module):
    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.blocks = nn.Sequential(Block(c), Block(c))
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(x.mean((2, 3)))


def _resnet(c=8, seed=0):
    torch.manual_seed(seed)
    net = ResNet(c).double()
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():  # trained-looking statistics and shifts
                m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(torch.rand(c, generator=g) - 0.5)
            dgate(m, 3)
    return net.eval()


def test_residual_cnn_with_batchnorm_exports_exactly():
    net = _resnet()
    b0 = net.blocks[0]
    _kill(b0.bn1, [0, 3, 5], 1e-12)  # dead inner channels of block 0 (norm ~1e-36)
    _kill(net.blocks[1].bn1, [2])  # one inner channel of block 1, exactly zero
    _kill(b0.bn2, [1])  # a residual-branch channel: the skip still carries channel 1
    x = _x(4, 1, 8, 8)
    res = export(net, x)
    assert _err(res, net, x) < TOL
    c = 8
    # by hand: an inner channel k of a block removes conv1 filter k (c * 9 weights), bn1's
    # gamma_k and beta_k, and conv2's input slice k (c * 9): 18 c + 2 per channel
    removed = 4 * (18 * c + 2)
    assert res.n_params_before == _n_params(collapse(net))
    assert res.n_params_after == res.n_params_before - removed
    assert res.units_after["blocks.0.conv1"] == 5 and res.units_after["blocks.0.bn1"] == 5
    assert res.units_after["blocks.0.conv2"] == c  # residual: union of both branches' needs
    assert res.units_after["blocks.1.conv1"] == 7
    # negative control: threshold 0 keeps the tiny (not exactly zero) channels of block 0
    assert export(net, x, threshold=0.0).n_params_after == res.n_params_before - (18 * c + 2)


def test_residual_trunk_channel_removed_when_every_branch_drops_it():
    net = _resnet()
    # channel 6 of the trunk: zero stem bn, zero block outputs, zero fc column
    with torch.no_grad():
        for bn in (net.bn, net.blocks[0].bn2, net.blocks[1].bn2):
            gate_banks(bn)[0].bank.gates[6] = 0.0
        net.fc.weight[:, 6] = 0.0
    x = _x(3, 1, 8, 8)
    res = export(net, x)
    assert _err(res, net, x) < TOL
    # trunk channel: stem filter (9) + 3 bn pairs (6) + conv1 input slices of both blocks
    # (2 * 8 * 9) + conv2 filters of both blocks (2 * 8 * 9) + fc column (10)
    assert res.n_params_before - res.n_params_after == 9 + 6 + 4 * 72 + 10
    # the channel is identically zero, so a live fc column reads nothing from it either
    with torch.no_grad():
        net.fc.weight[:, 6] = 1.0
    assert export(net, x).units_after["stem"] == 7
    # negative control: one branch alive again (block 1 writes channel 6): the channel stays
    with torch.no_grad():
        gate_banks(net.blocks[1].bn2)[0].bank.gates[6] = 1.0
    assert export(net, x).units_after["stem"] == 8


def test_conv1d_model_exports_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv1d(3, 6, 3),
        nn.ReLU(),
        nn.Conv1d(6, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8, 2),
    ).double()
    dgate(net[0], 3)
    dgate(net[2], 2)
    _kill(net[0], [1, 2])
    _kill(net[2], [3])
    net.eval()
    x = _x(5, 3, 10)
    res = export(net, x)
    assert _err(res, net, x) < TOL
    # by hand: conv0 4 x (3*3) + 4, conv2 3 x (4*3) + 3, linear 2 x (3*8) + 2
    assert res.n_params_after == (4 * 9 + 4) + (3 * 12 + 3) + (2 * 24 + 2)


def test_fully_pruned_layer_becomes_its_constant():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 3, 3, padding=1),
        nn.Sigmoid(),
        nn.Conv2d(3, 5, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 2),
    ).double()
    dgate(net[0], 3)
    _kill(net[0], slice(None))  # every filter of the first conv
    net.eval()
    x = _x(4, 2, 6, 6)
    res = export(net, x)
    assert _err(res, net, x) < TOL
    # conv2 sees only zeros: its output is its bias, sigmoid(bias) is a constant map fed to
    # the padded conv4, which is kept as it is (position-dependent border terms); conv0 and
    # conv2 are gone: 5 x (3*9) + 5 + 2 x 5 + 2 parameters remain
    assert res.n_params_after == (5 * 27 + 5) + (2 * 5 + 2)
    for m in res.model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            assert m.weight.numel() > 0
    assert res.units_after["0"] == 0
    x2 = _x(7, 2, 6, 6)  # another batch size
    assert _err(res, net, x2) < TOL


def test_whole_mlp_dead_is_a_constant_and_sigmoid_is_folded():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2))
    net = net.double()
    dgate(net[0], 2)
    _kill(net[0], [0, 2])
    net.eval()
    x = _x(6, 4)
    res = export(net, x)
    assert _err(res, net, x) < TOL
    # sigmoid(0) = 1/2 of the dead neurons is folded into layer 2's bias: 3 + 3 neurons
    assert res.n_params_after == (3 * 4 + 3) + (3 * 3 + 3) + (2 * 3 + 2)
    # negative control: removing the neurons without folding the constant changes the output
    plain = collapse(net)
    with torch.no_grad():
        plain[2].weight[:, [0, 2]] = 0.0
    assert (plain(x) - net(x)).abs().max() > 1e-3


class TransformerBlock(nn.Module):
    def __init__(self, e: int = 12, heads: int = 4, hidden: int = 24) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(e), nn.LayerNorm(e)
        self.att = nn.MultiheadAttention(e, heads, batch_first=True)
        self.ff1, self.ff2 = nn.Linear(e, hidden), nn.Linear(hidden, e)

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.att(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.ff2(F.gelu(self.ff1(self.ln2(x))))


def test_transformer_block_heads_are_removed():
    torch.manual_seed(0)
    net = TransformerBlock().double()
    dgate(net.att, 3)
    dgate(net.ff1, 2)
    _kill(net.att, [0, 2])
    _kill(net.ff1, list(range(10)))
    net.eval()
    x = _x(2, 5, 12)
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1)  # causal
    res = export(net, (x, mask))
    assert isinstance(res.model.att, PrunedMultiheadAttention) and res.model.att.num_heads == 2
    assert _err(res, net, x, mask) < TOL
    # by hand: a head of dim 3 holds q, k, v rows (3 x 3 x (12 + 1)) and 3 columns of out_proj
    # (12 x 3); a neuron of ff1 holds 12 + 1 and a column of ff2 (12)
    removed = 2 * (9 * 13 + 36) + 10 * (13 + 12)
    assert res.n_params_before - res.n_params_after == removed
    # negative control: a live head is not removed
    assert export(net, (x, mask), threshold=0.0).units_after["att"] == 2
    with torch.no_grad():
        gate_banks(net.att)[0].bank.gates[0] = 1.0
    assert export(net, (x, mask)).units_after["att"] == 3


def test_depthwise_and_transposed_convs_export_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False),  # depthwise
        nn.ReLU(),
        nn.ConvTranspose2d(6, 4, 2, stride=2),
        nn.ReLU(),
        nn.Conv2d(4, 2, 1),
    ).double()
    dgate(net[0], 2)
    dgate(net[4], 3, group="out")
    _kill(net[0], [1, 4])
    _kill(net[4], [0])
    net.eval()
    x = _x(2, 3, 5, 5)
    res = export(net, x)
    assert _err(res, net, x) < TOL
    assert res.model.get_submodule("2").groups == 4
    assert res.model.get_submodule("4").in_channels == 4
    # by hand: 4 x (3 + 1), depthwise 4 x 9, transposed 4 in x 3 out x 4 + 3, 2 x 3 + 2
    assert res.n_params_after == 16 + 36 + (48 + 3) + 8


@pytest.mark.parametrize("kind", ["conv1d", "conv3d", "convT", "depthwise_in", "embedding"])
def test_new_layers_gate_and_collapse_exactly(kind):
    torch.manual_seed(0)
    if kind == "conv1d":
        mod, x, group = nn.Conv1d(3, 4, 3), _x(2, 3, 7), "in"
    elif kind == "conv3d":
        mod, x, group = nn.Conv3d(2, 3, 2), _x(2, 2, 3, 3, 3), "out"
    elif kind == "convT":
        mod, x, group = nn.ConvTranspose2d(3, 4, 2), _x(2, 3, 4, 4), "out"
    elif kind == "depthwise_in":
        mod, x, group = nn.Conv2d(3, 6, 3, groups=3), _x(2, 3, 5, 5), "in"
    else:
        mod, x, group = nn.Embedding(7, 4), torch.tensor([[0, 3, 6], [1, 1, 2]]), "in"
    mod = mod.double()
    y = mod(x).detach()
    dgate(mod, 3, group=group)
    assert torch.allclose(mod(x), y, rtol=0, atol=1e-12)
    randomise_gates(mod, 2)
    _kill(mod, [1])
    assert torch.allclose(collapse(mod)(x), mod(x), rtol=0, atol=1e-12)
    # the killed group is zero in the collapsed weight, along the axis of the chosen grouping
    w = collapse(mod).weight.detach()
    sl = {"conv1d": (slice(None), 1), "conv3d": (1,), "convT": (slice(None), 1)}
    sl |= {"depthwise_in": (slice(2, 4),), "embedding": (1,)}
    assert bool((w[sl[kind]] == 0).all()) and bool((w != 0).any())


def test_embedding_rows_and_grouped_conv_export():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Embedding(9, 6), nn.Flatten(), nn.Linear(18, 4)).double()
    dgate(net[0], 2, group="out")  # embedding features
    _kill(net[0], [0, 5])
    net.eval()
    x = torch.tensor([[0, 4, 8], [2, 2, 1]])
    res = export(net, x)
    assert _err(res, net, x) < TOL
    # features 0 and 5 of the embedding: the Embedding is not a layer with free outputs here
    # (Flatten of (N, L, E) mixes token and feature axes), so nothing is removed
    assert res.n_params_after == res.n_params_before
    grouped = nn.Sequential(nn.Conv2d(4, 6, 3, groups=2), nn.ReLU(), nn.Conv2d(6, 2, 1)).double()
    xg = _x(2, 4, 5, 5)
    res = export(grouped.eval(), xg)
    assert _err(res, grouped, xg) < TOL and res.n_params_after == _n_params(grouped)


# ----------------------------------------------------------------------------------------------
# thresholds


def _mlp(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3)).double()
    dgate(net[0], 3, group="out")
    return net.eval()


def test_auto_threshold_without_lam_removes_geometric_leftovers():
    net = _mlp()
    _kill(net[0], [1, 4, 7], 1e-9)  # depth 3: group norm ~ 1e-18 of an O(1) layer
    x = _x(16, 10)
    res = export(net, x)
    assert res.units_after["0"] == 17 and _err(res, net, x) < TOL
    # negative controls: threshold 0 keeps them; a group at 1e-3 (alive) is kept by "auto"
    assert export(net, x, threshold=0.0).units_after["0"] == 20
    _kill(net[0], [1], 0.1)  # norm ~ 1e-2 * ||w_1||
    assert export(net, x).units_after["0"] == 18


def test_auto_threshold_with_lam_and_step_is_the_prox_zero_set():
    net = _mlp()
    lam, step, depth = 0.05, 0.1, 3
    tau = float(prox_threshold(step * lam, 2.0 / depth))
    bank = gate_banks(net[0])[0].bank
    with torch.no_grad():
        norms = bank.group_sq_norms(bank.weights()).sqrt()
        # scale group 0 to just below tau and group 1 to just above (gates multiply w_j)
        bank.gates[0] *= (0.99 * tau / norms[0]) ** 0.5
        bank.gates[1] *= (1.01 * tau / norms[1]) ** 0.5
    plain = collapse(net, threshold="auto", lam=lam, step=step)
    rows = plain[0].weight.detach()
    assert bool((rows[0] == 0).all()) and bool((rows[1] != 0).all())
    # the same zero set as one exact group prox step (GroupLqPenalty.prox), living groups unchanged
    flat = bank.flatten([t.detach() for t in bank.weights()]).numpy()
    prox = GroupLqPenalty.from_depth(lam, depth).prox(
        flat, step, Groups(bank.flat_labels().numpy())
    )
    zero = np.array([np.all(prox[bank.flat_labels().numpy() == j] == 0) for j in range(20)])
    np.testing.assert_array_equal(zero, (rows == 0).all(1).numpy())
    torch.testing.assert_close(rows[1:], collapse(net)[0].weight.detach()[1:], rtol=0, atol=0)


def test_collapse_final_prox_step_matches_group_prox():
    net = _mlp()
    randomise_gates(net, 7)
    lam, step = 0.5, 0.1
    out = collapse(net, lam=lam, step=step)
    bank = gate_banks(net)[0].bank
    w = bank.flatten([t.detach() for t in bank.weights()]).numpy()
    expected = GroupLqPenalty.from_depth(lam, 3).prox(w, step, Groups(bank.flat_labels().numpy()))
    got = torch.cat([getattr(out[0], n).detach().reshape(-1) for _, n, _ in bank.members])
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-14)
    assert np.any(expected != w)  # the step did something


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


# ----------------------------------------------------------------------------------------------
# living with torch


def test_fold_bn_is_exact_and_removes_the_norms():
    net = _resnet()
    _kill(net.blocks[0].bn1, [2])
    x = _x(3, 1, 8, 8)
    res = export(net, x, fold_bn=True)
    assert _err(res, net, x) < TOL
    assert not any(isinstance(m, nn.BatchNorm2d) for m in res.model.modules())
    # a whole dead block branch: its conv2 becomes a constant map, bn2 stays (nothing to fold)
    _kill(net.blocks[0].bn1, slice(None))
    res = export(net, x, fold_bn=True)
    assert _err(res, net, x) < TOL
    assert sum(isinstance(m, nn.BatchNorm2d) for m in res.model.modules()) == 1


def test_save_and_reload_gated_state_dict_and_exported_model(tmp_path):
    net = _resnet()
    randomise_gates(net, 3)
    x = _x(2, 1, 8, 8)
    # gated model: state_dict, loaded into a model gated the same way
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    fresh = _resnet(seed=5)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf))
    with torch.no_grad():
        assert torch.equal(fresh(x), net(x))
    # negative control: the fresh model differed before loading
    assert not torch.allclose(_resnet(seed=5)(x), net(x))
    # exported model: whole-module torch.save
    res = export(net, x)
    path = tmp_path / "exported.pt"
    torch.save(res.model, path)
    again = torch.load(path, weights_only=False)
    with torch.no_grad():
        assert torch.equal(again(x), res(x))


def test_help_reaches_the_export_documentation():
    text = pydoc.render_doc(dgating.nn.export, renderer=pydoc.plaintext)
    assert 'threshold="auto"' in text and "1e-25" in text and "torch.save" in text
    assert dgating.nn.export is export and callable(export)


def test_export_rejects_bad_input():
    class Dynamic(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x  # data-dependent control flow: not traceable

    with pytest.raises(InvalidTypeError, match="traceable by torch.fx"):
        export(Dynamic(), _x(2, 3))
    with pytest.raises(InvalidParameterError, match="`threshold` must be 'auto'"):
        export(_mlp(), _x(2, 10), threshold="big")
    with pytest.raises(InvalidParameterError, match="`lam` and `step` must be given together"):
        collapse(_mlp(), lam=0.1)
    with pytest.raises(InvalidParameterError, match="`threshold` must be a finite number >= 0"):
        collapse(_mlp(), threshold=-1.0)
    with pytest.raises(InvalidParameterError, match="`example_input`"):
        export(_mlp(), _x(2, 7))


def test_shared_module_keeps_its_channels():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(6, 6)
            self.b = nn.Linear(6, 2)

        def forward(self, x):
            return self.b(torch.relu(self.a(torch.relu(self.a(x)))))

    torch.manual_seed(0)
    net = Twice().double()
    dgate(net.a, 2)
    _kill(net.a, [1])
    x = _x(3, 6)
    res = export(net.eval(), x)
    assert _err(res, net, x) < TOL and res.n_params_after == res.n_params_before
