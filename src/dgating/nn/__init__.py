r"""D-Gating for torch models: gate, train with ordinary optimisers, export a smaller network.

>>> import torch
>>> from torch import nn
>>> from dgating import nn as dnn
>>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).double()
>>> _ = dnn.dgate(net[0], depth=3, group="out")          # 16 neuron groups, q = 2/3
>>> opt = torch.optim.SGD(dnn.param_groups(net, lam=1e-2), lr=0.1)   # decay 2 lam / D
>>> x = torch.randn(4, 8, dtype=torch.float64)
>>> res = dnn.export(net, x, lam=1e-2, step=0.1)         # smaller model, dead units removed

* :mod:`dgating.nn.gating`: :func:`dgate` (``nn.Linear``, convolutions 1-3 d, transposed,
  grouped/depthwise, batch norm, ``nn.Embedding`` by output or input units,
  ``nn.MultiheadAttention`` by heads), :func:`gated_parameters`, :func:`gated_penalty`,
  :func:`lq_penalty`, :func:`group_norms`.
* :mod:`dgating.nn.optim`: :func:`param_groups` (coupled weight decay :math:`2\lambda/D`),
  :func:`check_optimizer`, :class:`DecoupledWeightDecayWarning`.
* :func:`collapse` (threshold, ``"auto"`` or final prox step) and :func:`export` (structural
  export of any ``torch.fx``-traceable model; ``help(dgating.nn.export)``), in
  ``dgating.nn._export``.
* :mod:`dgating.nn.experiments`: sparsity-accuracy trade-offs on digits and wine, and a small
  ResNet on digits with filter gating (``dgating nn-experiment``).

Saving and reloading: a gated model cannot be pickled whole with ``torch.save(model)`` (a torch
limit of parametrised modules); save ``model.state_dict()`` and load it into the same
architecture gated the same way. The exported model (``export(...).model``) is a plain
``torch.fx.GraphModule``: ``torch.save(result.model, path)`` and
``torch.load(path, weights_only=False)``.
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
    "PrunedMultiheadAttention",
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
