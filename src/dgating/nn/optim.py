r"""Optimiser parameter groups for D-gated models: coupled weight decay :math:`2\lambda/D`.

The smooth D-Gating objective (docs/theory.md [C-conventions]) is

.. math::
    L(\omega, \Gamma) = L_0(\omega \odot P)
        + \frac{\lambda}{D}\big(\|\omega\|^2 + \|\Gamma\|_F^2\big),

whose penalty gradient is :math:`\frac{2\lambda}{D}(\omega, \Gamma)`: exactly torch's *coupled*
``weight_decay`` (added to the gradient before the update) with value ``2 * lam / depth``.
:func:`param_groups` returns such groups for ``torch.optim.SGD``/``Adam``/...; every other parameter
goes into one group with only ``"params"`` set, so it keeps the optimiser's defaults (ungated
parameters are not penalised by the theory; pass no ``weight_decay`` to keep it that way).

Decoupled decay (``torch.optim.AdamW``, or ``Adam(decoupled_weight_decay=True)``) shrinks the
parameters outside the adaptive preconditioner; the iteration then does not minimise :math:`L` and
the correspondence with :math:`L_w` does not apply. Building such an optimiser from these groups
emits a :class:`DecoupledWeightDecayWarning`; :func:`check_optimizer` runs the same checks on any
optimiser.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .._validation import check_lam
from .gating import gate_banks, gated_parameters

__all__ = ["DecoupledWeightDecayWarning", "check_optimizer", "param_groups", "weight_decay"]

_MESSAGE = (
    "decoupled weight decay ({what}) on D-gated parameters: the update is no longer a gradient "
    "step on L = L0 + (lam/D)(||omega||^2 + ||Gamma||^2), so the D-Gating theory (equivalence "
    "with lam * sum_j ||w_j||^(2/D)) does not apply. Use torch.optim.SGD or Adam (coupled "
    "weight_decay) with dgating.nn.param_groups."
)


class DecoupledWeightDecayWarning(UserWarning):
    """A decoupled-decay optimiser (e.g. AdamW) was given D-gated parameter groups."""


class _GatedGroup(dict):
    """A param-group dict that notices when an optimiser fills in decoupled decay.

    ``torch.optim.Optimizer.add_param_group`` keeps the dict it is given and completes it with
    ``setdefault(name, default)``; AdamW's defaults contain ``decoupled_weight_decay=True``.
    """

    def setdefault(self, key, default=None):  # type: ignore[override]
        if key == "decoupled_weight_decay" and default and key not in self:
            if self.get("weight_decay", 0.0) > 0:
                warnings.warn(
                    _MESSAGE.format(what="decoupled_weight_decay=True, e.g. AdamW"),
                    DecoupledWeightDecayWarning,
                    stacklevel=4,
                )
        return super().setdefault(key, default)


def weight_decay(lam: float, depth: int) -> float:
    r"""The coupled weight decay :math:`2\lambda/D` (gradient of the gated penalty).

    Examples
    --------
    >>> weight_decay(0.5, 4)
    0.25
    """
    return 2.0 * check_lam(lam) / depth


def param_groups(model: nn.Module, lam: float) -> list[dict]:
    r"""Parameter groups with weight decay :math:`2\lambda/D` on :math:`\omega` and :math:`\Gamma`.

    Parameters
    ----------
    model : nn.Module
        A model with D-gated units (:func:`dgating.nn.dgate`); units of different depths get
        separate groups.
    lam : float
        :math:`\lambda \ge 0`.

    Returns
    -------
    list of dict
        ``{"params", "weight_decay", "dgating_depth", "dgating_lam"}`` per depth, then
        ``{"params": [...]}`` with all other trainable parameters (omitted if empty).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from dgating.nn import dgate
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    >>> _ = dgate(net[0], depth=4)
    >>> groups = param_groups(net, lam=0.1)
    >>> [(g.get("weight_decay"), len(g["params"])) for g in groups]
    [(0.05, 3), (None, 2)]
    >>> opt = torch.optim.SGD(groups, lr=0.1)
    """
    lam = check_lam(lam)
    by_depth: dict[int, list[nn.Parameter]] = {}
    gated_ids: set[int] = set()
    for unit in gate_banks(model):
        params = [*unit.bank.omegas(), unit.bank.gates]
        by_depth.setdefault(unit.bank.depth, []).extend(params)
        gated_ids.update(id(p) for p in params)
    groups: list[dict] = [
        _GatedGroup(
            params=params,
            weight_decay=weight_decay(lam, depth),
            dgating_depth=depth,
            dgating_lam=lam,
        )
        for depth, params in sorted(by_depth.items())
    ]
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in gated_ids]
    if others:
        groups.append({"params": others})
    return groups


def check_optimizer(
    optimizer: torch.optim.Optimizer,
    *,
    ungated_weight_decay: float = 0.0,
    model: nn.Module | None = None,
) -> bool:
    r"""Warn if ``optimizer`` does not train the D-Gating objective the user stated.

    Checks (one warning per finding):

    * every group built by :func:`param_groups` uses coupled decay with its original value
      :math:`2\lambda/D` (a :class:`DecoupledWeightDecayWarning` for decoupled decay, a
      ``UserWarning`` for another value);
    * every other group has ``weight_decay == ungated_weight_decay`` (``UserWarning``): the
      theory does not penalise ungated parameters, so a decay there is a separate choice, and
      ``SGD(net.parameters(), weight_decay=...)`` decays every ungated parameter at the gated
      rate by accident;
    * with ``model``: no D-gated parameter sits outside a :func:`param_groups` group.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    ungated_weight_decay : float, default=0.0
        The weight decay the user chose for ungated parameters (biases, batch norms, ...).
    model : nn.Module, optional
        The model being trained, to find gated parameters in foreign groups.

    Returns
    -------
    bool
        ``True`` when nothing was flagged.

    Examples
    --------
    >>> import warnings
    >>> from torch import nn
    >>> from dgating.nn import dgate
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    >>> _ = dgate(net[0], depth=2)
    >>> with warnings.catch_warnings(record=True):
    ...     check_optimizer(torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=0.1))
    False
    >>> check_optimizer(torch.optim.SGD(param_groups(net, 0.1), lr=0.1))
    True
    """
    ok = True
    decoupled = isinstance(optimizer, torch.optim.AdamW)
    gated_ids = {id(p) for p in gated_parameters(model)} if model is not None else set()
    for group in optimizer.param_groups:
        decay = group.get("weight_decay", 0.0)
        if "dgating_depth" not in group:
            if abs(decay - ungated_weight_decay) > 1e-12 * max(1.0, abs(ungated_weight_decay)):
                warnings.warn(
                    f"a parameter group not built by dgating.nn.param_groups has weight_decay "
                    f"{decay}, not the stated ungated_weight_decay={ungated_weight_decay} "
                    "(the D-Gating objective does not penalise ungated parameters).",
                    UserWarning,
                    stacklevel=2,
                )
                ok = False
            if any(id(p) in gated_ids for p in group["params"]):
                warnings.warn(
                    "D-gated parameters in a group not built by dgating.nn.param_groups: their "
                    "weight decay is not 2 * lam / depth.",
                    UserWarning,
                    stacklevel=2,
                )
                ok = False
            continue
        is_decoupled = decoupled or group.get("decoupled_weight_decay", False)
        if decay > 0 and is_decoupled:
            warnings.warn(
                _MESSAGE.format(what=type(optimizer).__name__),
                DecoupledWeightDecayWarning,
                stacklevel=2,
            )
            ok = False
        expected = weight_decay(group["dgating_lam"], group["dgating_depth"])
        if abs(decay - expected) > 1e-12 * max(1.0, expected):
            warnings.warn(
                f"D-gated parameter group (depth {group['dgating_depth']}) has weight_decay "
                f"{group.get('weight_decay')}, not 2 * lam / depth = {expected}.",
                UserWarning,
                stacklevel=2,
            )
            ok = False
    return ok
