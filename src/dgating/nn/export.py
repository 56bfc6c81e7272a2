r"""Collapse a D-gated model to plain weights and export a structurally smaller network.

Under gradient descent, vanishing groups decay geometrically but never reach exact zero
(docs/theory.md [T-zero-groups]), so :func:`collapse` ends with either a threshold (groups with
:math:`\|w_j\| \le` ``threshold`` become exactly zero) or one proximal step of the group
:math:`L_{2,2/D}` penalty, :math:`w_j \leftarrow \mathrm{prox}_{t\lambda\|\cdot\|^{2/D}}(w_j)`
(:meth:`dgating.GroupLqPenalty.prox`), which zeroes every group below the prox threshold.

:func:`export` then deletes what the zero groups made dead in an ``nn.Sequential`` of ``nn.Linear``
/ ``nn.Conv2d`` layers, element-wise activations, pooling and ``nn.Flatten``:

* hidden unit :math:`k` of a layer whose outgoing weights (the columns of the next layer) are all
  zero: removed with its row and bias, whatever the activation;
* hidden unit :math:`k` whose row and bias are zero: its activation is the constant
  :math:`c_k = \sigma(0)`; removed if :math:`c_k = 0`, otherwise folded into the next layer's
  bias when that layer is ``nn.Linear`` (for a next ``nn.Conv2d`` a non-zero constant channel is
  kept, because zero padding makes its contribution position dependent);
* zero input columns of the first layer, with ``drop_inputs=True``.

Every step is an exact identity, so the exported model computes the collapsed model's function.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import InvalidParameterError, InvalidTypeError, check_lam, check_positive
from ..groups import Groups
from ..penalties import GroupLqPenalty
from .gating import gate_banks

__all__ = ["ExportResult", "collapse", "export"]


def _strip(module: nn.Module) -> None:
    """Replace every parametrised tensor of ``module`` by a plain Parameter with its value.

    Done by hand instead of ``parametrize.remove_parametrizations``: deep copies of a parametrised
    module share its dynamically created class, and ``remove_parametrizations`` deletes the
    property from that class, which would break the original model.
    """
    plist = module.parametrizations
    values = {name: getattr(module, name).detach().clone() for name in plist}
    module.__class__ = module.__class__.__bases__[0]
    del module._modules["parametrizations"]
    for name, value in values.items():
        module.register_parameter(name, nn.Parameter(value))


def collapse(
    model: nn.Module,
    *,
    threshold: float = 0.0,
    lam: float | None = None,
    step: float | None = None,
) -> nn.Module:
    r"""A plain copy of ``model`` with :math:`w = \omega \odot P` and zeroed tiny groups.

    Parameters
    ----------
    model : nn.Module
        A model with D-gated units (:func:`dgating.nn.dgate`); it is not modified.
    threshold : float, default=0.0
        Groups with :math:`\|w_j\|_2 \le` ``threshold`` are set to exactly zero.
    lam, step : float, optional
        If both are given, one proximal step :math:`w_j \leftarrow
        \mathrm{prox}_{\mathrm{step}\,\lambda\|\cdot\|_2^{2/D}}(w_j)` is applied to every gated
        unit after thresholding.

    Returns
    -------
    nn.Module
        A deep copy without parametrisations (module classes restored), in ``model``'s mode.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from dgating.nn import dgate
    >>> lin = dgate(nn.Linear(3, 2, dtype=torch.float64), depth=2)
    >>> with torch.no_grad():
    ...     lin.parametrizations.weight[0].gates[0] = 1e-9
    >>> plain = collapse(lin, threshold=1e-6)
    >>> type(plain).__name__, plain.weight[0].abs().max().item(), abs(plain.bias[0].item())
    ('Linear', 0.0, 0.0)
    """
    if threshold < 0 or not np.isfinite(threshold):
        raise InvalidParameterError(f"`threshold` must be a finite number >= 0; got {threshold}.")
    if (lam is None) != (step is None):
        raise InvalidParameterError(
            "`lam` and `step` must be given together (one final prox step); got only "
            f"{'lam' if step is None else 'step'}."
        )
    if lam is not None:
        check_lam(lam)
        check_positive(step, "step")
    new = copy.deepcopy(model)
    units = gate_banks(new)
    with torch.no_grad():
        for unit in units:
            bank = unit.bank
            w = bank.weights()
            norms = bank.group_sq_norms(w).sqrt()
            keep = (norms > threshold).to(w[0].dtype)
            w = [_scale_member(t, keep, par) for (_, _, par), t in zip(bank.members, w)]
            if lam is not None:
                flat = bank.flatten(w).cpu().numpy()
                groups = Groups(bank.flat_labels().numpy())
                pen = GroupLqPenalty.from_depth(lam, bank.depth)
                flat = pen.prox(flat, step, groups)
                w = bank.unflatten(torch.as_tensor(flat, dtype=w[0].dtype, device=w[0].device))
            for (owner, name, _), t in zip(bank.members, w):
                owner.parametrizations[name].original.copy_(t)
            bank.gates.fill_(1.0)
        for unit in units:
            for owner, _, _ in unit.bank.members:
                if hasattr(owner, "parametrizations"):
                    _strip(owner)
    return new


def _scale_member(t: torch.Tensor, per_group: torch.Tensor, par: nn.Module) -> torch.Tensor:
    p = per_group if par.index is None else per_group[par.index]
    shape = [1] * t.dim()
    shape[par.dim] = -1
    return t * p.reshape(shape)


# ----------------------------------------------------------------------------------------------
# structural export


@dataclass(frozen=True)
class ExportResult:
    """The structurally smaller model and what was removed.

    Attributes
    ----------
    model : nn.Sequential
        Plain model; equals the collapsed model's function (on ``x[..., input_index]`` if
        ``input_index`` is set).
    input_index : LongTensor or None
        Kept input features/channels of the first layer (``drop_inputs=True``), else ``None``.
    units_before, units_after : tuple of int
        Output units of every ``nn.Linear``/``nn.Conv2d`` layer, before and after.
    n_params_before, n_params_after : int
        Parameter counts of the collapsed and the exported model.
    """

    model: nn.Sequential
    input_index: torch.Tensor | None
    units_before: tuple[int, ...]
    units_after: tuple[int, ...]
    n_params_before: int
    n_params_after: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the exported model to full-size inputs (selecting ``input_index`` if set)."""
        if self.input_index is not None:
            x = x.index_select(1, self.input_index.to(x.device))
        return self.model(x)


_ELEMENTWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Identity,
    nn.Dropout,
)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _flatten(seq: nn.Module) -> list[nn.Module]:
    out: list[nn.Module] = []
    for m in seq.children() if isinstance(seq, nn.Sequential) else [seq]:
        if isinstance(m, nn.Sequential):
            out.extend(_flatten(m))
        elif isinstance(m, nn.Linear | nn.Conv2d) and not isinstance(m, nn.LazyLinear):
            if isinstance(m, nn.Conv2d) and m.groups != 1:
                raise InvalidParameterError(
                    f"export needs nn.Conv2d with groups=1; got groups={m.groups}."
                )
            out.append(m)
        elif isinstance(m, _ELEMENTWISE + _POOLS + (nn.Flatten,)):
            out.append(m)
        else:
            raise InvalidTypeError(
                "export supports nn.Sequential of Linear, Conv2d, element-wise activations, "
                f"pooling and Flatten; got {type(m).__name__}."
            )
    return out


def _constant(chain: list[nn.Module]) -> float:
    """The activation of a unit with zero pre-activation after the element-wise modules."""
    z = torch.zeros(1, 1, dtype=torch.float64)
    with torch.no_grad():
        for m in chain:
            if isinstance(m, _ELEMENTWISE) and not isinstance(m, nn.Dropout):
                z = m(z)
    return float(z.reshape(-1)[0])


def _chain_keeps_constants(chain: list[nn.Module]) -> bool:
    # Max pooling and unpadded average pooling map a constant channel to the same constant.
    return all(
        not isinstance(m, nn.AvgPool2d) or m.padding in (0, (0, 0)) or not m.count_include_pad
        for m in chain
    )


def _new_layer(old: nn.Module, n_in: int, n_out: int, bias: bool) -> nn.Module:
    with warnings.catch_warnings():
        # a layer can lose all its units; its (empty) weights are overwritten anyway
        warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
        return _build_layer(old, n_in, n_out, bias)


def _build_layer(old: nn.Module, n_in: int, n_out: int, bias: bool) -> nn.Module:
    kw = {"dtype": old.weight.dtype, "device": old.weight.device}
    if isinstance(old, nn.Linear):
        return torch.nn.utils.skip_init(nn.Linear, n_in, n_out, bias=bias, **kw)
    return torch.nn.utils.skip_init(
        nn.Conv2d,
        n_in,
        n_out,
        old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        bias=bias,
        padding_mode=old.padding_mode,
        **kw,
    )


def export(
    model: nn.Module,
    *,
    threshold: float = 0.0,
    lam: float | None = None,
    step: float | None = None,
    drop_inputs: bool = False,
) -> ExportResult:
    r"""Collapse ``model`` and build a structurally smaller plain ``nn.Sequential``.

    Parameters
    ----------
    model : nn.Sequential
        A (possibly nested) ``nn.Sequential`` of ``nn.Linear``/``nn.Conv2d`` (``groups=1``),
        element-wise activations, ``nn.Dropout``, 2-d pooling and ``nn.Flatten``, D-gated or
        plain. Not modified.
    threshold, lam, step
        Passed to :func:`collapse`.
    drop_inputs : bool, default=False
        Also remove zero input columns/channels of the first layer (input-feature selection);
        the exported model then takes ``x[:, input_index]`` (:meth:`ExportResult.__call__` does
        the selection).

    Returns
    -------
    ExportResult

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from dgating.nn import dgate
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    >>> _ = dgate(net[0], depth=3)
    >>> with torch.no_grad():
    ...     net[0].parametrizations.weight[0].gates[:4] = 0.0
    >>> res = export(net)
    >>> res.units_before, res.units_after
    ((6, 2), (2, 2))
    >>> x = torch.randn(8, 4, dtype=torch.float64)
    >>> bool(torch.allclose(res(x), net(x), atol=1e-12))
    True
    """
    if not isinstance(model, nn.Sequential):
        raise InvalidTypeError(f"`model` must be an nn.Sequential; got {type(model).__name__}.")
    plain = (
        collapse(model, threshold=threshold, lam=lam, step=step)
        if gate_banks(model)
        else (copy.deepcopy(model))
    )
    mods = _flatten(plain)
    layer_pos = [i for i, m in enumerate(mods) if isinstance(m, nn.Linear | nn.Conv2d)]
    if not layer_pos:
        raise InvalidParameterError("`model` must contain at least one nn.Linear or nn.Conv2d.")
    n_params_before = sum(p.numel() for p in plain.parameters())
    weights = [mods[i].weight.detach().clone() for i in layer_pos]
    biases = [None if mods[i].bias is None else mods[i].bias.detach().clone() for i in layer_pos]
    units_before = tuple(w.shape[0] for w in weights)
    keep_out = [torch.ones(w.shape[0], dtype=torch.bool) for w in weights]
    for a, b in zip(range(len(layer_pos) - 1), range(1, len(layer_pos))):
        la, lb = mods[layer_pos[a]], mods[layer_pos[b]]
        chain = mods[layer_pos[a] + 1 : layer_pos[b]]
        n = weights[a].shape[0]
        n_in_b = weights[b].shape[1]
        has_flatten = any(isinstance(m, nn.Flatten) for m in chain)
        if isinstance(lb, nn.Conv2d) and (isinstance(la, nn.Linear) or has_flatten):
            raise InvalidParameterError("export cannot follow a Linear or Flatten by a Conv2d.")
        if isinstance(la, nn.Conv2d) and isinstance(lb, nn.Linear) and not has_flatten:
            raise InvalidParameterError("export needs an nn.Flatten between Conv2d and Linear.")
        if n_in_b % n:
            raise InvalidParameterError(
                f"layer {b} has {n_in_b} inputs, not a multiple of the {n} units of layer {a}."
            )
        per = n_in_b // n  # features per unit (spatial size after Flatten)
        wb = weights[b].reshape(weights[b].shape[0], n, per, -1)
        col_zero = (wb == 0).all(dim=3).all(dim=2).all(dim=0)
        row_zero = (weights[a].reshape(n, -1) == 0).all(dim=1)
        if biases[a] is not None:
            row_zero &= biases[a] == 0
        c = _constant(chain)
        for k in torch.nonzero(row_zero & ~col_zero).flatten().tolist():
            if c == 0.0:
                continue
            if isinstance(lb, nn.Linear) and _chain_keeps_constants(chain):
                fold = c * weights[b][:, k * per : (k + 1) * per].sum(dim=1)
                biases[b] = fold if biases[b] is None else biases[b] + fold
            else:
                row_zero[k] = False  # keep: a constant channel feeding a padded conv
        keep = ~(col_zero | row_zero)
        keep_out[a] = keep
    input_index = None
    keep_in0 = torch.ones(weights[0].shape[1], dtype=torch.bool)
    if drop_inputs:
        w0 = weights[0]
        keep_in0 = ~(w0.transpose(0, 1).reshape(w0.shape[1], -1) == 0).all(dim=1)
        input_index = torch.nonzero(keep_in0).flatten()
    new_mods = list(mods)
    prev_keep = keep_in0
    for a, pos in enumerate(layer_pos):
        old = mods[pos]
        keep = keep_out[a]
        if a > 0:
            n_prev = weights[a - 1].shape[0]
            per = weights[a].shape[1] // n_prev
            prev_feat = prev_keep.repeat_interleave(per)
        else:
            prev_feat = prev_keep
        w = weights[a][keep][:, prev_feat]
        layer = _new_layer(old, int(prev_feat.sum()), int(keep.sum()), biases[a] is not None)
        with torch.no_grad():
            layer.weight.copy_(w)
            if biases[a] is not None:
                layer.bias.copy_(biases[a][keep])
        layer.train(old.training)
        new_mods[pos] = layer
        prev_keep = keep
    out = nn.Sequential(*new_mods).train(plain.training)
    return ExportResult(
        model=out,
        input_index=input_index,
        units_before=units_before,
        units_after=tuple(int(k.sum()) for k in keep_out),
        n_params_before=n_params_before,
        n_params_after=sum(p.numel() for p in out.parameters()),
    )
