"""Small torch modules and utilities shared by the dgating.nn tests."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_module(kind: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """A float64 module of ``kind`` and an input batch for it."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if kind == "linear":
        return nn.Linear(5, 4).double(), torch.randn(7, 5, generator=g, dtype=torch.float64)
    if kind == "conv":
        mod = nn.Conv2d(3, 4, 3, padding=1).double()
        return mod, torch.randn(2, 3, 5, 5, generator=g, dtype=torch.float64)
    if kind == "bn":
        mod = nn.BatchNorm2d(4).double()
        with torch.no_grad():
            mod.weight.copy_(torch.rand(4, generator=g, dtype=torch.float64) + 0.5)
            mod.bias.copy_(torch.randn(4, generator=g, dtype=torch.float64))
        return mod, torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64)
    if kind == "mha":
        mod = nn.MultiheadAttention(6, 3, batch_first=True).double()
        return mod, torch.randn(2, 4, 6, generator=g, dtype=torch.float64)
    raise ValueError(kind)


def run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Forward pass (self-attention for nn.MultiheadAttention)."""
    if isinstance(module, nn.MultiheadAttention):
        return module(x, x, x, need_weights=False)[0]
    return module(x)


def randomise_gates(model: nn.Module, seed: int) -> None:
    """Replace every gate by a random value in +-[0.5, 1.5] (an unbalanced point)."""
    from dgating.nn import gate_banks

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for unit in gate_banks(model):
            gates = unit.bank.gates
            mag = 0.5 + torch.rand(gates.shape, generator=g, dtype=gates.dtype)
            sign = torch.where(torch.rand(gates.shape, generator=g) < 0.3, -1.0, 1.0)
            gates.copy_(mag * sign)


def member_paths(model: nn.Module, bank) -> list[tuple[str, str]]:
    """(module path, tensor name) of every member of ``bank`` inside ``model``."""
    names = {id(m): n for n, m in model.named_modules()}
    return [(names[id(owner)], name) for owner, name, _ in bank.members]


def deep(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)
