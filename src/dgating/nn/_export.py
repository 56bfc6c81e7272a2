r"""Collapse a D-gated model to plain weights and export a structurally smaller network.

:func:`collapse` multiplies the gates out (:math:`w = \omega \odot P`) and zeroes the groups that
training has killed; :func:`export` traces the collapsed model with :mod:`torch.fx`, follows every
removed group through the graph and returns a smaller :class:`torch.fx.GraphModule` with the dead
channels, neurons, input features and attention heads physically removed. The function
docstrings carry the details (``help(dgating.nn.export)``).
"""

from __future__ import annotations

import copy
import math
import operator
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from .._validation import InvalidParameterError, InvalidTypeError, check_lam, check_positive
from ..groups import Groups
from ..penalties import GroupLqPenalty, prox_threshold
from .gating import _scale, gate_banks

__all__ = ["ExportResult", "PrunedMultiheadAttention", "collapse", "export"]


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


def _check_threshold(threshold: float | str, lam: float | None, step: float | None) -> None:
    if isinstance(threshold, str):
        if threshold != "auto":
            raise InvalidParameterError(
                f"`threshold` must be 'auto' or a finite number >= 0; got {threshold!r}."
            )
    elif threshold < 0 or not np.isfinite(threshold):
        raise InvalidParameterError(f"`threshold` must be a finite number >= 0; got {threshold}.")
    if (lam is None) != (step is None):
        raise InvalidParameterError(
            "`lam` and `step` must be given together (one final prox step); got only "
            f"{'lam' if step is None else 'step'}."
        )
    if lam is not None:
        check_lam(lam)
        check_positive(step, "step")


def _auto_cutoffs(norms: list[torch.Tensor], depths: list[int], lam, step) -> list[float]:
    r"""Per-unit norm below which ``threshold="auto"`` zeroes a group.

    With ``lam`` and ``step``: the prox threshold :math:`\tau(\mathrm{step}\,\lambda, 2/D)`
    (docs/theory.md [T-prox]). Otherwise :math:`\sqrt{\epsilon}\max_k\|w_k\|` over all gated groups
    of the model (:math:`\epsilon` the machine epsilon of the weights' dtype).
    """
    if lam is not None:
        return [float(prox_threshold(step * lam, 2.0 / d)) for d in depths]
    finite = [n[torch.isfinite(n)] for n in norms]
    top = max((float(n.max()) for n in finite if n.numel()), default=0.0)
    return [math.sqrt(torch.finfo(n.dtype).eps) * top for n in norms]


def collapse(
    model: nn.Module,
    *,
    threshold: float | str = 0.0,
    lam: float | None = None,
    step: float | None = None,
) -> nn.Module:
    r"""A plain copy of ``model`` with :math:`w = \omega \odot P` and zeroed dead groups.

    Under (S)GD, vanishing groups decay geometrically but never reach exact zero (docs/theory.md
    [T-zero-groups]): after training they sit at norms like 1e-25, and a rule is needed to call them
    zero.

    Parameters
    ----------
    model : nn.Module
        A model with D-gated units (:func:`dgating.nn.dgate`); it is not modified.
    threshold : float or "auto", default=0.0
        A number: groups with :math:`\|w_j\|_2 \le` ``threshold`` are set to exactly zero.
        ``"auto"``: with ``lam`` and ``step`` (the training :math:`\lambda` and step size), zero
        exactly the groups that one proximal step of the group :math:`L_{2,2/D}` penalty,
        :math:`\mathrm{prox}_{\mathrm{step}\,\lambda\|\cdot\|_2^{2/D}}`, sets to zero, i.e.
        :math:`\|w_j\| \le \tau(\mathrm{step}\,\lambda, 2/D)` (docs/theory.md [T-prox]), and leave
        the other groups unchanged. The reason: a fixed point of proximal gradient descent with that
        step has no non-zero group below :math:`\tau`, so the rule removes what the non-smooth
        problem would remove and nothing that a converged run keeps. Without ``lam``/``step``:
        zero the groups with :math:`\|w_j\| \le \sqrt{\epsilon}\max_k\|w_k\|` (max over every
        gated group of the model; float64: 1.5e-8 of the largest group), which dead groups cross
        after enough steps of geometric decay while living groups stay at the scale of the data.
    lam, step : float, optional
        With a numeric ``threshold``: if both are given, one proximal step :math:`w_j \leftarrow
        \mathrm{prox}_{\mathrm{step}\,\lambda\|\cdot\|_2^{2/D}}(w_j)` is applied to every gated
        unit after thresholding (this also shrinks the living groups). With ``"auto"``: the
        parameters of the prox threshold.

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
    _check_threshold(threshold, lam, step)
    new = copy.deepcopy(model)
    units = gate_banks(new)
    with torch.no_grad():
        weights = [u.bank.weights() for u in units]
        norms = [u.bank.group_sq_norms(w).sqrt() for u, w in zip(units, weights)]
        if threshold == "auto":
            cutoffs = _auto_cutoffs(norms, [u.bank.depth for u in units], lam, step)
        else:
            cutoffs = [float(threshold)] * len(units)
        for unit, w, nrm, cut in zip(units, weights, norms, cutoffs):
            bank = unit.bank
            keep = (nrm > cut).to(w[0].dtype)
            w = [_scale(t, keep, par.dim, par.index) for (_, _, par), t in zip(bank.members, w)]
            if lam is not None and threshold != "auto":
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


# ----------------------------------------------------------------------------------------------
# modules that the export builds


class PrunedMultiheadAttention(nn.Module):
    r"""``nn.MultiheadAttention`` with some heads removed: ``num_heads`` heads of ``head_dim``.

    The input and output width stay ``embed_dim``; the query/key/value projections map to
    ``num_heads * head_dim`` features and the output projection back to ``embed_dim``. The scores
    are scaled by :math:`1/\sqrt{\mathrm{head\_dim}}` as in the original module, so the output
    equals the original's whenever the removed heads contributed nothing. Attention weights
    (``need_weights=True``) are averaged over the kept heads. ``attn_mask`` may be 2-d or
    boolean/float; ``key_padding_mask`` boolean or float; ``is_causal`` is honoured.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int,
        *,
        kdim: int,
        vdim: int,
        dropout: float,
        batch_first: bool,
        bias: bool,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        width = num_heads * head_dim
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        self.dropout, self.batch_first = dropout, batch_first
        self.q_proj = nn.Linear(embed_dim, width, bias=bias, **kw)
        self.k_proj = nn.Linear(kdim, width, bias=bias, **kw)
        self.v_proj = nn.Linear(vdim, width, bias=bias, **kw)
        self.out_proj = nn.Linear(width, embed_dim, **kw)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, lq, _ = query.shape
        ls = key.shape[1]

        def heads(t: torch.Tensor, length: int) -> torch.Tensor:
            return t.reshape(n, length, self.num_heads, self.head_dim).transpose(1, 2)

        q = heads(self.q_proj(query), lq)
        k = heads(self.k_proj(key), ls)
        v = heads(self.v_proj(value), ls)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if is_causal and attn_mask is None:
            attn_mask = torch.ones(lq, ls, dtype=torch.bool, device=q.device).triu(1)
        for mask, view in ((attn_mask, (1, 1, lq, ls)), (key_padding_mask, (n, 1, 1, ls))):
            if mask is None:
                continue
            mask = mask.reshape(view)
            if mask.dtype == torch.bool:
                scores = scores.masked_fill(mask, float("-inf"))
            else:
                scores = scores + mask.to(scores.dtype)
        attn = scores.softmax(dim=-1)
        attn_used = F.dropout(attn, self.dropout, self.training)
        out = (attn_used @ v).transpose(1, 2).reshape(n, lq, self.num_heads * self.head_dim)
        out = self.out_proj(out)
        weights = None
        if need_weights:
            weights = attn.mean(dim=1) if average_attn_weights else attn
            weights = weights.squeeze(0) if unbatched else weights
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


class _Constant(nn.Module):
    """The constant output of a layer that lost every input: ``value`` broadcast over the
    leading (batch) dimensions of a reference tensor (the model's first input)."""

    def __init__(self, value: torch.Tensor, n_lead: int) -> None:
        super().__init__()
        self.register_buffer("value", value)
        self.n_lead = n_lead

    def forward(self, ref: torch.Tensor) -> torch.Tensor:
        return self.value.expand(*ref.shape[: self.n_lead], *self.value.shape)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.value.shape)}"


# ----------------------------------------------------------------------------------------------
# channel analysis of the traced graph


class _Space:
    """A set of tensors whose channel axes must keep the same channels (union-find node)."""

    def __init__(self, n: int, fixed: bool) -> None:
        self.n, self.fixed, self.parent = n, fixed, None
        self.req = torch.zeros(n, dtype=torch.bool)

    def root(self) -> _Space:
        s = self
        while s.parent is not None:
            s = s.parent
        return s


@dataclass
class _Slot:
    """The channel axis ``dim`` of one node's tensor: channel ``c`` of ``space`` covers entries
    ``c * per ... (c + 1) * per - 1`` (``per > 1`` after flattening ``(N, C, H, W)``)."""

    space: _Space
    per: int
    dim: int

    def mask(self) -> torch.Tensor:
        return self.space.root().req.repeat_interleave(self.per)


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
)
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_POOLS = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)
_UNARY = {
    "relu", "relu_", "relu6", "sigmoid", "tanh", "gelu", "silu", "elu", "selu", "celu", "mish",
    "leaky_relu", "hardtanh", "hardswish", "hardsigmoid", "softplus",
}  # fmt: skip
_BINARY = {
    "add": operator.add, "iadd": operator.add, "add_": operator.add, "sub": operator.sub,
    "isub": operator.sub, "sub_": operator.sub, "mul": operator.mul, "imul": operator.mul,
    "mul_": operator.mul, "truediv": operator.truediv, "div": operator.truediv,
}  # fmt: skip
_POOL_FUNCS = {
    f"{kind}{n}d" for kind in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool")
    for n in (1, 2, 3)
}  # fmt: skip


def _is_layer(m: nn.Module) -> bool:
    """Layers whose input and output channels are independent (removal on both sides)."""
    return isinstance(m, nn.Linear) or (isinstance(m, nn.modules.conv._ConvNd) and m.groups == 1)


def _is_depthwise(m: nn.Module) -> bool:
    return (
        isinstance(m, nn.modules.conv._ConvNd)
        and not m.transposed
        and m.groups > 1
        and m.groups == m.in_channels == m.out_channels
    )


def _in_out_weight(m: nn.Module) -> torch.Tensor:
    """The weight as ``(out, in, -1)`` (transposed convs store ``(in, out, *kernel)``)."""
    w = m.weight.detach()
    if isinstance(m, nn.modules.conv._ConvNd) and m.transposed:
        w = w.transpose(0, 1)
    return w.reshape(w.shape[0], w.shape[1], -1)


def _folds_constants(m: nn.Module) -> bool:
    """Whether a constant input channel adds the same amount at every output position."""
    if isinstance(m, nn.Linear):
        return True
    pad = m.padding
    return not m.transposed and pad != "same" and all(p == 0 for p in np.atleast_1d(pad))


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if hasattr(meta, "shape") else None


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: out.append(n))
    return out


class _Analysis:
    """Which channels of every traced tensor are constant (forward) and needed (backward)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.slot: dict[fx.Node, _Slot] = {}
        self.const: dict[fx.Node, torch.Tensor] = {}
        self.spaces: list[_Space] = []
        self.layers: dict[fx.Node, fx.Node | None] = {}  # layer -> its tracked input
        self.norms: list[fx.Node] = []
        self.depthwise: list[fx.Node] = []
        self.heads: list[fx.Node] = []
        self.placeholders: list[fx.Node] = []
        calls: dict[str, list[fx.Node]] = {}
        for node in gm.graph.nodes:
            self._visit(node)
            if node.op == "call_module":
                calls.setdefault(node.target, []).append(node)
        for nodes in calls.values():  # a shared module keeps its shape
            if len(nodes) > 1:
                for n in nodes:
                    self._opaque(n, keep_output=True)
        self._solve()

    # -- slots -------------------------------------------------------------------------------
    def _fresh(self, node: fx.Node, dim: int, fixed: bool) -> None:
        shape = _shape(node)
        space = _Space(shape[dim], fixed)
        self.spaces.append(space)
        self.slot[node] = _Slot(space, 1, dim)
        self.const[node] = torch.full((shape[dim],), math.nan, dtype=torch.float64)

    def _alias(self, node: fx.Node, src: fx.Node, const: torch.Tensor, per: int = 1, dim=None):
        s = self.slot[src]
        self.slot[node] = _Slot(s.space, s.per * per, s.dim if dim is None else dim)
        self.const[node] = const.repeat_interleave(per).to(torch.float64)

    def _unify(self, a: _Slot, b: _Slot) -> None:
        ra, rb = a.space.root(), b.space.root()
        if ra is rb:
            return
        if a.per != b.per or ra.n != rb.n or a.dim != b.dim:
            ra.fixed = rb.fixed = True
            return
        rb.parent = ra
        ra.fixed = ra.fixed or rb.fixed

    def _opaque(self, node: fx.Node, keep_output: bool = False) -> None:
        """Unknown operation: its inputs keep every channel, its output is a fixed new space."""
        for arg in _tensor_args(node):
            if arg in self.slot:
                self.slot[arg].space.root().fixed = True
        if node in self.slot:
            if keep_output:
                self.slot[node].space.root().fixed = True
            return
        shape = _shape(node)
        if shape is not None and len(shape) >= 1:
            self._fresh(node, 1 if len(shape) >= 2 else 0, fixed=True)

    def _input(self, node: fx.Node, dim: int, n: int) -> fx.Node | None:
        """The tracked first argument of ``node`` if its channel axis is ``dim`` of size ``n``."""
        arg = node.args[0] if node.args else None
        s = self.slot.get(arg)
        if s is None:
            return None
        if s.dim != dim or s.per * s.space.root().n != n:
            s.space.root().fixed = True
            return None
        return arg

    # -- forward pass: slots and constant channels ----------------------------------------------
    def _visit(self, node: fx.Node) -> None:
        shape = _shape(node)
        if node.op == "placeholder":
            self.placeholders.append(node)
            if shape is not None and len(shape) >= 2:
                self._fresh(node, 1, fixed=True)
            return
        if node.op == "output":
            for arg in _tensor_args(node):
                if arg in self.slot:
                    self.slot[arg].space.root().fixed = True
            return
        if shape is None or len(shape) < 2:
            name = node.target if isinstance(node.target, str) else node.target.__name__
            if name not in ("size", "dim", "getattr"):  # shape queries constrain nothing
                self._opaque(node)
            if node.op == "call_module" and isinstance(
                self.modules[node.target], nn.MultiheadAttention
            ):
                self.heads.append(node)
            return
        if node.op == "call_module":
            self._visit_module(node, self.modules[node.target], shape)
        elif node.op in ("call_function", "call_method"):
            self._visit_function(node, shape)
        else:
            self._opaque(node)

    def _visit_module(self, node: fx.Node, m: nn.Module, shape) -> None:  # noqa: C901
        last = len(shape) - 1
        if _is_layer(m):
            dim = last if isinstance(m, nn.Linear) else 1
            n_in = m.in_features if isinstance(m, nn.Linear) else m.in_channels
            src = self._input(node, dim, n_in)
            self._fresh(node, dim, fixed=False)
            self.layers[node] = src
            c_in = (
                self.const[src]
                if src is not None
                else torch.full((n_in,), math.nan, dtype=torch.float64)
            )
            w = _in_out_weight(m)
            b = (
                m.bias.detach().double()
                if m.bias is not None
                else torch.zeros(w.shape[0], dtype=torch.float64)
            )
            nonzero_in = torch.isnan(c_in) | (c_in != 0)
            touched = (w[:, nonzero_in] != 0).flatten(1).any(1)
            self.const[node] = torch.where(touched, math.nan, b)
            if isinstance(m, nn.Linear):  # exact constants for rows fed only by constants
                nan_in = torch.isnan(c_in)
                fed = (w[:, nan_in, 0] != 0).any(1)
                value = b + w[:, ~nan_in, 0].double() @ c_in[~nan_in]
                self.const[node] = torch.where(fed, math.nan, value)
            return
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            src = self._input(node, 1, m.num_features)
            if src is None:
                return self._opaque(node)
            self._alias(node, src, self._bn_const(m, self.const[src]))
            self.norms.append(node)
            return None
        if _is_depthwise(m):
            src = self._input(node, 1, m.in_channels)
            if src is None:
                return self._opaque(node)
            w = m.weight.detach().reshape(m.out_channels, -1)
            b = (
                m.bias.detach().double()
                if m.bias is not None
                else torch.zeros(m.out_channels, dtype=torch.float64)
            )
            c = self.const[src]
            self._alias(node, src, torch.where((w == 0).all(1) | (c == 0), b, math.nan))
            self.depthwise.append(node)
            return None
        src = node.args[0] if node.args else None
        s = self.slot.get(src)
        if s is None:
            self._opaque(node)
            if isinstance(m, nn.MultiheadAttention):
                self.heads.append(node)
            return None
        c = self.const[src]
        if isinstance(m, _ELEMENTWISE):
            with torch.no_grad():
                return self._alias(node, src, m(c.clone().reshape(1, -1)).reshape(-1))
        if isinstance(m, _DROPOUT):  # the identity in eval mode
            return self._alias(node, src, c)
        if isinstance(m, _POOLS) and s.dim == 1:
            keeps = not isinstance(m, nn.modules.pooling._AvgPoolNd) or (
                all(p == 0 for p in np.atleast_1d(m.padding)) or not m.count_include_pad
            )
            return self._alias(node, src, c if keeps else torch.where(c == 0, 0.0, math.nan))
        if isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1 and s.dim == 1:
            return self._alias(node, src, c, per=math.prod(_shape(src)[2:]))
        return self._opaque(node)

    @staticmethod
    def _bn_const(m: nn.Module, c: torch.Tensor) -> torch.Tensor:
        """Constant channels after a batch norm in eval mode (any mode for ``gamma = 0``)."""
        gamma = (
            m.weight.detach().double()
            if m.affine
            else torch.ones(m.num_features, dtype=torch.float64)
        )
        beta = (
            m.bias.detach().double()
            if m.affine
            else torch.zeros(m.num_features, dtype=torch.float64)
        )
        if m.track_running_stats and m.running_mean is not None:
            scale = gamma / torch.sqrt(m.running_var.double() + m.eps)
            out = (c - m.running_mean.double()) * scale + beta
        else:  # batch statistics: a constant channel normalises to 0
            out = torch.where(torch.isnan(c), math.nan, beta)
        return torch.where(gamma == 0, beta, out)

    def _visit_function(self, node: fx.Node, shape) -> None:
        t = node.target
        name = t if isinstance(t, str) else getattr(t, "__name__", "")
        args = list(node.args)
        src = args[0] if args and isinstance(args[0], fx.Node) else None
        s = self.slot.get(src)
        if name in _BINARY and not node.kwargs:
            ins = [a for a in args if isinstance(a, fx.Node)]
            if not ins or any(a not in self.slot or _shape(a) != shape for a in ins):
                return self._opaque(node)
            if len(args) != 2 or not all(isinstance(a, fx.Node | int | float) for a in args):
                return self._opaque(node)
            axes = {(self.slot[a].dim, self.slot[a].per * self.slot[a].space.root().n) for a in ins}
            if len(axes) > 1:
                return self._opaque(node)
            vals = [self.const[a] if isinstance(a, fx.Node) else a for a in args]
            self._alias(node, ins[0], _BINARY[name](*vals))
            for a in ins[1:]:
                self._unify(self.slot[ins[0]], self.slot[a])
            return None
        if s is None:
            return self._opaque(node)
        if name in _UNARY or name == "dropout":
            c = self.const[src]
            if name != "dropout":
                fn = getattr(torch.Tensor, name) if node.op == "call_method" else t
                with torch.no_grad():
                    c = fn(c.clone().reshape(1, -1), *args[1:], **node.kwargs).reshape(-1)
            return self._alias(node, src, c)
        in_shape = _shape(src)
        if name == "flatten" and s.dim == 1 and len(shape) == 2:
            start = args[1] if len(args) > 1 else node.kwargs.get("start_dim", 0)
            if start == 1 and shape[1] == math.prod(in_shape[1:]):
                return self._alias(node, src, self.const[src], per=math.prod(in_shape[2:]))
        if name in ("view", "reshape") and s.dim == 1 and len(shape) == 2 and s.per == 1:
            if shape[0] == in_shape[0] and shape[1] == math.prod(in_shape[1:]):
                return self._alias(node, src, self.const[src], per=math.prod(in_shape[2:]))
        if name in _POOL_FUNCS and s.dim == 1:
            return self._alias(node, src, torch.where(self.const[src] == 0, 0.0, math.nan))
        if name in ("mean", "amax") and s.dim == 1 and s.per == 1:
            dims = args[1] if len(args) > 1 else node.kwargs.get("dim")
            dims = [dims] if isinstance(dims, int) else list(dims or [])
            dims = [d % len(in_shape) for d in dims]
            if dims and 0 not in dims and 1 not in dims:
                return self._alias(node, src, self.const[src])
        return self._opaque(node)

    # -- backward pass: needed channels (least fixed point) --------------------------------------
    def _needed(self, node: fx.Node, keep_out: torch.Tensor) -> torch.Tensor:
        """Input channels of layer ``node`` that its kept outputs read and cannot fold."""
        m = self.modules[node.target]
        w = _in_out_weight(m)[keep_out]
        reads = (w != 0).any(2).any(0)
        c = self.const[self.layers[node]]
        fold = (c == 0) | (torch.isfinite(c) & _folds_constants(m))
        return reads & ~fold

    def _solve(self) -> None:
        for space in self.spaces:
            if space.root() is space:
                space.req = torch.full((space.n,), space.fixed, dtype=torch.bool)
        changed = True
        while changed:
            changed = False
            for node, src in self.layers.items():
                if src is None or self.slot[src].space.root().fixed:
                    continue
                s = self.slot[src]
                need = self._needed(node, self.slot[node].mask()).reshape(-1, s.per).any(1)
                root = s.space.root()
                if bool((need & ~root.req).any()):
                    root.req = root.req | need
                    changed = True


# ----------------------------------------------------------------------------------------------
# rebuilding the smaller modules


def _skip_init(cls, *args, **kwargs) -> nn.Module:
    with warnings.catch_warnings():  # a kept layer may be empty on one side only in edge cases
        warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
        return torch.nn.utils.skip_init(cls, *args, **kwargs)


def _set_module(gm: fx.GraphModule, target: str, module: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, module)


def _conv_kwargs(m: nn.Module) -> dict:
    kw = {
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "padding": m.padding,
        "dilation": m.dilation,
        "padding_mode": m.padding_mode,
        "dtype": m.weight.dtype,
        "device": m.weight.device,
    }
    if m.transposed:
        kw["output_padding"] = m.output_padding
    return kw


def _rebuild_layer(an: _Analysis, node: fx.Node) -> None:
    """Slice the kept rows and columns of a layer, fold removed constant inputs into its bias,
    and replace a layer that lost every input by the constant it computes."""
    m = an.modules[node.target]
    keep_out = an.slot[node].mask()
    src = an.layers[node]
    n_in = _in_out_weight(m).shape[1]
    keep_in = an.slot[src].mask() if src is not None else torch.ones(n_in, dtype=torch.bool)
    if bool(keep_out.all()) and bool(keep_in.all()):
        return
    w = _in_out_weight(m)
    bias = m.bias.detach().clone() if m.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
    removed = ~keep_in
    if src is not None:
        c = an.const[src]
        fold = removed & torch.isfinite(c) & (c != 0)
        if bool(fold.any()):  # constant input channels: their contribution joins the bias
            bias = bias + (w[:, fold].sum(2).double() @ c[fold]).to(bias.dtype)
    has_bias = m.bias is not None or bool((bias != 0).any())
    if not bool(keep_in.any()):
        out_shape = _shape(node)
        if isinstance(m, nn.Linear):
            value, n_lead = bias[keep_out], len(out_shape) - 1
        else:
            value = bias[keep_out].reshape(-1, *[1] * (len(out_shape) - 2))
            value, n_lead = value.expand(-1, *out_shape[2:]).clone(), 1
        ref = next(
            (p for p in an.placeholders if _shape(p) and _shape(p)[:n_lead] == out_shape[:n_lead]),
            node.args[0],
        )
        _set_module(an.gm, node.target, _Constant(value, n_lead))
        node.args = (ref,)
        node.kwargs = {}
        return
    n_o, n_i = int(keep_out.sum()), int(keep_in.sum())
    if isinstance(m, nn.Linear):
        new = _skip_init(nn.Linear, n_i, n_o, bias=has_bias, dtype=w.dtype, device=w.device)
        weight = w[keep_out][:, keep_in, 0]
    else:
        cls = type(m)
        new = _skip_init(cls, n_i, n_o, bias=has_bias, **_conv_kwargs(m))
        weight = m.weight.detach()
        weight = weight[keep_in][:, keep_out] if m.transposed else weight[keep_out][:, keep_in]
    with torch.no_grad():
        new.weight.copy_(weight)
        if has_bias:
            new.bias.copy_(bias[keep_out])
    _set_module(an.gm, node.target, new.train(m.training))


def _rebuild_norm(an: _Analysis, node: fx.Node) -> None:
    m = an.modules[node.target]
    keep = an.slot[node].mask()
    if bool(keep.all()):
        return
    new = copy.deepcopy(m)
    new.num_features = int(keep.sum())
    for name in ("weight", "bias"):
        if getattr(m, name) is not None:
            setattr(new, name, nn.Parameter(getattr(m, name).detach()[keep].clone()))
    for name in ("running_mean", "running_var"):
        if getattr(m, name) is not None:
            setattr(new, name, getattr(m, name)[keep].clone())
    _set_module(an.gm, node.target, new)


def _rebuild_depthwise(an: _Analysis, node: fx.Node) -> None:
    m = an.modules[node.target]
    keep = an.slot[node].mask()
    if bool(keep.all()):
        return
    n = int(keep.sum())
    new = _skip_init(type(m), n, n, groups=n, bias=m.bias is not None, **_conv_kwargs(m))
    with torch.no_grad():
        new.weight.copy_(m.weight[keep])
        if m.bias is not None:
            new.bias.copy_(m.bias[keep])
    _set_module(an.gm, node.target, new.train(m.training))


def _dead_heads(m: nn.MultiheadAttention) -> torch.Tensor:
    """Heads whose output-projection columns are zero or whose value rows and bias are zero."""
    e, h, d = m.embed_dim, m.num_heads, m.head_dim
    out_cols = (m.out_proj.weight.detach().reshape(e, h, d) == 0).all(2).all(0)
    if m._qkv_same_embed_dim:
        wv = m.in_proj_weight.detach()[2 * e :]
    else:
        wv = m.v_proj_weight.detach()
    v_zero = (wv.reshape(h, -1) == 0).all(1)
    if m.in_proj_bias is not None:
        v_zero &= (m.in_proj_bias.detach()[2 * e :].reshape(h, d) == 0).all(1)
    return out_cols | v_zero


def _rebuild_attention(an: _Analysis, node: fx.Node) -> None:
    m = an.modules[node.target]
    if m.bias_k is not None or m.add_zero_attn:
        return  # the extra key/value slots make a head's share depend on every head
    keep = ~_dead_heads(m)
    if bool(keep.all()):
        return
    e, d = m.embed_dim, m.head_dim
    rows = keep.repeat_interleave(d)
    if m._qkv_same_embed_dim:
        wq, wk, wv = m.in_proj_weight.detach().split(e)
    else:
        wq, wk, wv = (getattr(m, f"{c}_proj_weight").detach() for c in "qkv")
    has_bias = m.in_proj_bias is not None
    new = PrunedMultiheadAttention(
        e, int(keep.sum()), d, kdim=m.kdim, vdim=m.vdim, dropout=m.dropout,
        batch_first=m.batch_first, bias=has_bias, dtype=wq.dtype, device=wq.device,
    )  # fmt: skip
    with torch.no_grad():
        biases = m.in_proj_bias.detach().split(e) if has_bias else (None,) * 3
        for proj, w, b in zip((new.q_proj, new.k_proj, new.v_proj), (wq, wk, wv), biases):
            proj.weight.copy_(w[rows])
            if b is not None:
                proj.bias.copy_(b[rows])
        new.out_proj.weight.copy_(m.out_proj.weight.detach()[:, rows])
        if m.out_proj.bias is not None:
            new.out_proj.bias.copy_(m.out_proj.bias.detach())
        else:
            new.out_proj.bias.zero_()
    _set_module(an.gm, node.target, new.train(m.training))


def _fold_norms(an: _Analysis) -> None:
    """Fold each eval-mode batch norm into the convolution or linear layer that alone feeds it:
    :math:`W' = W\\,\\mathrm{diag}(s)`, :math:`b' = (b - \\mu) s + \\beta`,
    :math:`s = \\gamma/\\sqrt{\\sigma^2 + \\epsilon}`."""
    modules = dict(an.gm.named_modules())
    alive = set(an.gm.graph.nodes)
    for node in an.norms:
        if node not in alive:  # removed with a dead branch
            continue
        bn, src = modules[node.target], node.args[0]
        layer = modules.get(src.target) if src.op == "call_module" else None
        ok = isinstance(layer, nn.Linear) or (_is_layer(layer) and not layer.transposed)
        if not (
            ok and len(src.users) == 1 and bn.track_running_stats and bn.running_var is not None
        ):
            continue
        with torch.no_grad():
            s = torch.rsqrt(bn.running_var + bn.eps)
            shift = -bn.running_mean * s
            if bn.affine:
                s, shift = s * bn.weight, shift * bn.weight + bn.bias
            b = layer.bias if layer.bias is not None else torch.zeros_like(s)
            new = copy.deepcopy(layer)
            new.weight.copy_(layer.weight * s.reshape(-1, *[1] * (layer.weight.dim() - 1)))
            new.bias = nn.Parameter(b * s + shift)
        _set_module(an.gm, src.target, new)
        node.replace_all_uses_with(src)
        an.gm.graph.erase_node(node)


# ----------------------------------------------------------------------------------------------
# structural export


@dataclass(frozen=True)
class ExportResult:
    """The structurally smaller model and what was removed.

    Attributes
    ----------
    model : torch.fx.GraphModule
        Plain model with the removed channels, neurons, inputs and heads physically gone; in eval
        mode it computes the gated model's function on inputs of the example's shape.
    units_before, units_after : dict of str to int
        Output channels / features (heads for attention, channels for batch norm) of every layer
        of the collapsed model, keyed by module path, before and after; a layer replaced by its
        constant output keeps its outputs, a layer that was deleted has 0.
    n_params_before, n_params_after : int
        Parameter counts of the collapsed and the exported model.
    """

    model: fx.GraphModule
    units_before: dict[str, int] = field(default_factory=dict)
    units_after: dict[str, int] = field(default_factory=dict)
    n_params_before: int = 0
    n_params_after: int = 0

    def __call__(self, *args, **kwargs):
        """Apply the exported model."""
        return self.model(*args, **kwargs)


def _units(model: nn.Module) -> dict[str, int]:
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention | PrunedMultiheadAttention):
            out[name] = m.num_heads
        elif isinstance(m, nn.Linear):
            out[name] = m.out_features
        elif isinstance(m, nn.modules.conv._ConvNd):
            out[name] = m.out_channels
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            out[name] = m.num_features
        elif isinstance(m, _Constant):
            out[name] = m.value.shape[0]
    return out


def export(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    *,
    threshold: float | str = "auto",
    lam: float | None = None,
    step: float | None = None,
    fold_bn: bool = False,
) -> ExportResult:
    r"""Collapse ``model`` and physically remove everything its zero groups made dead.

    The collapsed model (:func:`collapse`) is traced with :mod:`torch.fx`; the channel axis of
    every intermediate tensor is followed through the graph, and

    * an output channel/neuron is removed when nothing downstream reads it: its consumers'
      weights on it are zero, or it is constant (a zero row and bias, a batch norm channel with
      :math:`\gamma_c = \beta_c = 0`, ...) and the constant is zero or folded exactly into the
      consumer's bias (a linear layer, or a convolution without padding; a constant channel
      into a padded convolution is kept, its contribution depends on the position);
    * batch norm layers, activations, dropout and pooling pass channels through (batch norm
      layers lose the removed channels; with ``fold_bn=True`` an eval-mode batch norm is folded
      into the convolution or linear layer that feeds it);
    * additions and other element-wise operations of two tensors (residual connections) tie their
      channels together: a channel stays if either branch still needs it;
    * ``flatten`` maps a channel to its block of features; ``mean`` over spatial axes and pooling
      keep channels;
    * a layer left without inputs is replaced by the constant it computes (its bias, plus folded
      constants), not by an empty layer; layers left without outputs are deleted;
    * attention heads (``nn.MultiheadAttention``) whose output-projection columns or value rows
      are zero are removed by building a :class:`PrunedMultiheadAttention` with fewer heads;
    * anything else (an unknown function, a module called twice, a custom leaf module, the
      model's inputs and outputs) keeps all channels of the tensors it touches, so the export is
      exact for any traceable model and only as small as the analysis can prove.

    Dead groups of a trained model are not exactly zero (under SGD they shrink geometrically,
    to about 1e-25, docs/theory.md [T-zero-groups]); ``threshold="auto"`` decides which are zero
    from the theory, see below. Groups kept are not changed, so in eval mode the exported model
    equals the gated model up to the removed groups' (negligible) contribution.

    Parameters
    ----------
    model : nn.Module
        A traceable model (``torch.fx.symbolic_trace``), D-gated or plain. Not modified.
    example_input : Tensor or tuple of Tensor
        Inputs for one forward pass (shapes of intermediate tensors; the spatial size of a
        layer replaced by its constant).
    threshold : float or "auto", default="auto"
        ``"auto"`` with ``lam`` and ``step``: zero the groups that one exact proximal step of
        :math:`\mathrm{step}\cdot\lambda\|\cdot\|_2^{2/D}` sets to zero (norm below the prox
        threshold :math:`\tau(\mathrm{step}\,\lambda, 2/D)`, docs/theory.md [T-prox]): a fixed point
        of proximal gradient descent with that step has no non-zero group below it. ``"auto"``
        without them: zero the groups below :math:`\sqrt{\epsilon}` times the largest group norm
        of the model. A number: zero the groups with :math:`\|w_j\| \le` ``threshold`` (``0``:
        only exact zeros). See :func:`collapse`.
    lam, step : float, optional
        The training :math:`\lambda` and step size (SGD learning rate), for ``"auto"``.
    fold_bn : bool, default=False
        Fold eval-mode batch norms into the preceding layer (the result is then an inference
        model: batch statistics no longer update).

    Returns
    -------
    ExportResult

    Saving: ``torch.save(result.model, path)`` stores the exported model (a ``GraphModule``,
    reload with ``torch.load(path, weights_only=False)``); a gated model cannot be pickled whole
    (a torch limit of parametrised modules): save its ``state_dict()`` and load it into a model
    gated the same way (``dgate`` the same layers, then ``load_state_dict``).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from dgating.nn import dgate
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    >>> _ = dgate(net[0], depth=3)
    >>> with torch.no_grad():
    ...     net[0].parametrizations.weight[0].gates[:4] = 1e-12   # four dead neurons
    >>> x = torch.randn(8, 4, dtype=torch.float64)
    >>> res = export(net, x)
    >>> res.units_after
    {'0': 2, '2': 2}
    >>> bool(torch.allclose(res(x), net(x), atol=1e-12))
    True
    """
    _check_threshold(threshold, lam, step)
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    plain = collapse(model, threshold=threshold, lam=lam, step=step)
    try:
        gm = fx.symbolic_trace(plain)
    except Exception as exc:  # torch.fx raises many types for untraceable code
        raise InvalidTypeError(
            f"`model` must be traceable by torch.fx.symbolic_trace; got {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    training = gm.training
    try:
        with torch.no_grad():
            fx.passes.shape_prop.ShapeProp(gm.eval()).propagate(*args)
    except RuntimeError as exc:
        raise InvalidParameterError(
            "`example_input` must be a valid input of `model`; the forward pass failed: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    an = _Analysis(gm)
    units_before = _units(gm)
    for node in an.layers:
        _rebuild_layer(an, node)
    for node in an.norms:
        _rebuild_norm(an, node)
    for node in an.depthwise:
        _rebuild_depthwise(an, node)
    for node in an.heads:
        _rebuild_attention(an, node)
    gm.graph.eliminate_dead_code()
    if fold_bn:
        _fold_norms(an)
    gm.recompile()
    gm.delete_all_unused_submodules()
    gm.train(training)
    after = _units(gm)
    return ExportResult(
        model=gm,
        units_before=units_before,
        units_after={k: after.get(k, 0) for k in units_before},
        n_params_before=sum(p.numel() for p in plain.parameters()),
        n_params_after=sum(p.numel() for p in gm.parameters()),
    )
