r"""D-Gating for torch models: gate, train with ordinary optimisers, export a smaller network.

>>> import torch
>>> from torch import nn
>>> from dgating import nn as dnn
>>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).double()
>>> _ = dnn.dgate(net[0], depth=3, group="out")          # 16 neuron groups, q = 2/3
>>> opt = torch.optim.SGD(dnn.param_groups(net, lam=1e-2), lr=0.1)   # decay 2 lam / D
>>> res = dnn.export(net, threshold=1e-3)                 # plain nn.Sequential, dead units removed

* :mod:`dgating.nn.gating`: :func:`dgate` (``nn.Linear``/``nn.Conv2d`` by output or input units,
  ``nn.MultiheadAttention`` by heads), :func:`gated_parameters`, :func:`gated_penalty`,
  :func:`lq_penalty`, :func:`group_norms`.
* :mod:`dgating.nn.optim`: :func:`param_groups` (coupled weight decay :math:`2\lambda/D`),
  :func:`check_optimizer`, :class:`DecoupledWeightDecayWarning`.
* :mod:`dgating.nn.export`: :func:`collapse` (threshold or final prox step), :func:`export`.
* :mod:`dgating.nn.experiments`: sparsity-accuracy trade-offs on digits and wine
  (``dgating nn-experiment``).
"""

from ._export import ExportResult, PrunedMultiheadAttention, collapse, export
from .gating import (
    GateBank,
    GatedUnit,
    SharedGate,
    dgate,
    gate_banks,
    gated_parameters,
    gated_penalty,
    group_norms,
    is_gated,
    lq_penalty,
    max_imbalance,
)
from .optim import DecoupledWeightDecayWarning, check_optimizer, param_groups, weight_decay

__all__ = [
    "DecoupledWeightDecayWarning",
    "ExportResult",
    "GateBank",
    "GatedUnit",
    "SharedGate",
    "check_optimizer",
    "collapse",
    "dgate",
    "export",
    "gate_banks",
    "gated_parameters",
    "gated_penalty",
    "group_norms",
    "is_gated",
    "lq_penalty",
    "max_imbalance",
    "param_groups",
    "weight_decay",
]
