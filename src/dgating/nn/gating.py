r"""D-Gating of torch modules: :math:`w_{G_j} = \omega_{G_j} \prod_{d=1}^{D-1} \gamma_{j,d}`.

:func:`dgate` turns the weights of an ``nn.Linear``, a convolution (``nn.Conv1d/2d/3d``, grouped and
depthwise, ``nn.ConvTranspose1d/2d/3d``), a batch norm layer, an ``nn.Embedding`` or an
``nn.MultiheadAttention`` into a D-gated parametrisation with :mod:`torch.nn.utils.parametrize`: the
module keeps its class interface (``module.weight`` is the collapsed :math:`w`), and its
``state_dict`` holds :math:`\omega` as ``parametrizations.<tensor>.original`` and :math:`\Gamma`
(shape ``(n_groups, depth - 1)``) once, as ``parametrizations.<tensor>.0.gates``.

Groups (``group=``):

=====================  ========================================================================
``"out"``              output neurons of ``nn.Linear`` / output filters of a convolution:
                       :math:`w_j = (W_{j,:}, b_j)`; the bias of a gated neuron is gated with its
                       row, so a removed neuron has no bias left and can be deleted exactly
                       (transposed convs: ``groups=1``). Batch norm: channel :math:`c`,
                       :math:`w_c = (\gamma_c, \beta_c)` (the group to use for filters followed by
                       batch norm, whose output does not depend on the filter's scale).
                       ``nn.Embedding``: embedding features (columns).
``"in"``               input features of ``nn.Linear`` / input channels of a convolution
                       (``groups=1``, or depthwise: ``groups = in_channels``, where the group is
                       the channel's filters): :math:`w_j = W_{:,j}`; the bias is ungated and
                       unpenalised. ``nn.Embedding``: token rows (feature selection on tokens).
``"heads"``            heads of ``nn.MultiheadAttention``: the query, key and value rows of the
                       head (and their biases) and its columns of the output projection; the
                       output-projection bias is shared by all heads and stays ungated.
=====================  ========================================================================

Initialisation (``init=``) never changes the function of the network at init:

* ``"balanced"`` (default): the continuous balanced lift of the current weights (docs/theory.md
  [T-minima]), :math:`\gamma_{j,d} = \|w_j\|^{1/D}`, :math:`\omega_j = w_j \|w_j\|^{1/D - 1}`. Then
  :math:`\frac{\lambda}{D}(\|\omega\|^2 + \|\Gamma\|_F^2) = \lambda \sum_j \|w_j\|^{2/D}` exactly
  (AM-GM with equality), training starts on the balanced set, which the regularised gradient flow
  leaves invariant, and on it :math:`w` follows a preconditioned flow of the non-smooth
  :math:`L_w` (docs/theory.md [T-precond-flow]). This is the default because the theory
  (correspondence of minima, the gap :math:`L - L_w = 0`) holds from the first step.
* ``"ones"``: :math:`\Gamma = 1`, :math:`\omega = w`. The first steps on :math:`\omega` are those of
  plain training, but the penalty starts above :math:`\lambda P_D(w)` and the gap decays only at
  rate :math:`4\lambda/D` (docs/theory.md [T-imbalance-flow]).

For ``nn.Linear`` and ``nn.Conv1d/2d/3d`` the forward pass scales activations instead
of materialising :math:`w` (``y = (x \omega^\top + b_\omega) P`` for output groups,
``y = (x P)\omega^\top + b`` for input groups), which is the same function with the same
gradients at a fraction of the cost (batch norm keeps the generic parametrisation: its weights
are vectors, and scaling the activations would cost more than materialising them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .._validation import InvalidParameterError, InvalidTypeError, check_choice, check_depth

__all__ = [
    "GROUP_KINDS",
    "INITS",
    "GateBank",
    "GatedUnit",
    "SharedGate",
    "dgate",
    "gate_banks",
    "gated_parameters",
    "gated_penalty",
    "group_norms",
    "is_gated",
    "lq_penalty",
    "max_imbalance",
]

GROUP_KINDS = ("out", "in", "heads")
INITS = ("balanced", "ones")


def _scale(x: torch.Tensor, per_group: torch.Tensor, dim: int, index: torch.Tensor | None):
    """Multiply ``x`` along ``dim`` by ``per_group[index]`` (``per_group`` itself without index)."""
    p = per_group if index is None else per_group[index]
    shape = [1] * x.dim()
    shape[dim] = -1
    return x * p.reshape(shape)


class _GroupScale(nn.Module):
    """Common part of the parametrisations: which axis of the tensor is grouped, and how."""

    dim: int
    index: torch.Tensor | None

    def _setup(self, dim: int, index: torch.Tensor | None) -> None:
        self.dim = dim
        # Non-persistent: the grouping is structure, not state; it must not clutter state_dict.
        self.register_buffer("index", index, persistent=False)

    def labels(self, shape: torch.Size) -> torch.Tensor:
        """Group label of every entry of a tensor of ``shape`` (int64, same shape)."""
        n = shape[self.dim]
        idx = torch.arange(n) if self.index is None else self.index.cpu()
        view = [1] * len(shape)
        view[self.dim] = n
        return idx.reshape(view).expand(shape)


class GateBank(_GroupScale):
    r"""The gates :math:`\Gamma` of one gated unit, registered as the parametrisation of its primary
    tensor: :math:`w = \omega \odot (P_j)_{j(i)}`, :math:`P_j = \prod_d \gamma_{j,d}`.

    Parameters
    ----------
    n_groups : int
        :math:`J`.
    depth : int
        :math:`D \ge 2`.
    group : {"out", "in", "heads"}
        The kind of group (for display and the fast forward).
    dim : int
        Axis of the primary tensor that carries the groups.
    index : LongTensor, shape (size of ``dim``,), optional
        Group of every slice along ``dim`` (identity if omitted).
    dtype, device
        Of the gates.

    Attributes
    ----------
    gates : Parameter, shape (n_groups, depth - 1)
        :math:`\Gamma`.
    """

    def __init__(
        self,
        n_groups: int,
        depth: int,
        group: str,
        dim: int,
        index: torch.Tensor | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.group = group
        self.gates = nn.Parameter(torch.ones(n_groups, depth - 1, dtype=dtype, device=device))
        self._setup(dim, index)
        # (module, tensor_name, parametrisation) of every tensor gated by these gates; a plain
        # list so the modules are not registered twice (deepcopy keeps it consistent).
        self.members: list[tuple[nn.Module, str, _GroupScale]] = []

    @property
    def n_groups(self) -> int:
        """:math:`J`."""
        return self.gates.shape[0]

    def products(self) -> torch.Tensor:
        r""":math:`P_j = \prod_d \gamma_{j,d}`, shape ``(n_groups,)``."""
        return self.gates.prod(dim=1)

    def forward(self, omega: torch.Tensor) -> torch.Tensor:
        return _scale(omega, self.products(), self.dim, self.index)

    def extra_repr(self) -> str:
        return f"n_groups={self.n_groups}, depth={self.depth}, group={self.group!r}"

    # -- views used by collapse, the optimiser helpers and the tests --------------------------
    def omegas(self) -> list[torch.Tensor]:
        r"""The :math:`\omega` tensors of the members (the ``original`` parameters)."""
        return [m.parametrizations[name].original for m, name, _ in self.members]

    def weights(self) -> list[torch.Tensor]:
        """The collapsed tensors :math:`w` of the members."""
        return [getattr(m, name) for m, name, _ in self.members]

    def flat_labels(self) -> torch.Tensor:
        """Group labels of the concatenated flattened members, shape ``(n_features,)``."""
        return torch.cat(
            [p.labels(t.shape).reshape(-1) for (_, _, p), t in zip(self.members, self.omegas())]
        )

    def flatten(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate member-shaped tensors into one vector (the order of :meth:`flat_labels`)."""
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflatten(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Inverse of :meth:`flatten`."""
        out, start = [], 0
        for t in self.omegas():
            out.append(flat[start : start + t.numel()].reshape(t.shape))
            start += t.numel()
        return out

    def group_sq_norms(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        r""":math:`\|t_j\|^2` over the members, shape ``(n_groups,)``."""
        out = torch.zeros(self.n_groups, dtype=self.gates.dtype, device=self.gates.device)
        for (_, _, p), t in zip(self.members, tensors):
            dims = [d for d in range(t.dim()) if d != p.dim]
            sq = (t * t).sum(dim=dims) if dims else t * t
            idx = torch.arange(sq.numel(), device=sq.device) if p.index is None else p.index
            out = out.index_add(0, idx, sq)
        return out


class SharedGate(_GroupScale):
    """Parametrisation of a secondary tensor of a unit (e.g. the bias of a gated neuron) that
    reuses the gates of its :class:`GateBank` (stored once, in the bank)."""

    def __init__(self, bank: GateBank, dim: int, index: torch.Tensor | None = None) -> None:
        super().__init__()
        object.__setattr__(self, "bank", bank)  # not a submodule: the gates live in the bank
        self._setup(dim, index)

    def forward(self, omega: torch.Tensor) -> torch.Tensor:
        return _scale(omega, self.bank.products(), self.dim, self.index)


@dataclass(frozen=True)
class GatedUnit:
    """One gated unit of a model: its name (module path and primary tensor) and its bank."""

    name: str
    module: nn.Module
    bank: GateBank


# ----------------------------------------------------------------------------------------------
# fast forwards: scale activations instead of materialising w


def _linear_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    plist = self.parametrizations
    bank = plist.weight[0]
    p = bank.products()
    if bank.group == "out":
        b = plist.bias.original if "bias" in plist else None
        return F.linear(x, plist.weight.original, b) * p
    return F.linear(x * p, plist.weight.original, self.bias)


def _conv_forward(self: nn.modules.conv._ConvNd, x: torch.Tensor) -> torch.Tensor:
    plist = self.parametrizations
    bank = plist.weight[0]
    p = bank.products().reshape(-1, *([1] * (x.dim() - 2)))
    if bank.group == "out":
        b = plist.bias.original if "bias" in plist else None
        return self._conv_forward(x, plist.weight.original, b) * p
    return self._conv_forward(x * p, plist.weight.original, self.bias)


_FAST_FORWARDS = {
    nn.Linear: _linear_forward,
    nn.Conv1d: _conv_forward,
    nn.Conv2d: _conv_forward,
    nn.Conv3d: _conv_forward,
}


# ----------------------------------------------------------------------------------------------
# which tensors belong to the groups


def _members(module: nn.Module, group: str) -> tuple[int, list[tuple[nn.Module, str, int, object]]]:
    """``(n_groups, [(owner, tensor_name, dim, index), ...])``; the first entry is the primary."""
    if isinstance(module, nn.MultiheadAttention):
        if group != "heads":
            raise InvalidParameterError(
                f"`group` for nn.MultiheadAttention must be 'heads'; got {group!r}."
            )
        e, h = module.embed_dim, module.num_heads
        head = torch.arange(e) // module.head_dim
        rows3 = head.repeat(3)
        if module._qkv_same_embed_dim:
            mem = [(module, "in_proj_weight", 0, rows3)]
        else:
            mem = [(module, f"{c}_proj_weight", 0, head) for c in "qkv"]
        if module.in_proj_bias is not None:
            mem.append((module, "in_proj_bias", 0, rows3))
        for name in ("bias_k", "bias_v"):
            if getattr(module, name) is not None:
                mem.append((module, name, 2, head))
        mem.append((module.out_proj, "weight", 1, head))
        return h, mem
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if group != "out" or module.weight is None:
            raise InvalidParameterError(
                "batch norm layers are gated by channel (`group='out'`, affine=True); got "
                f"group={group!r}, affine={module.affine}."
            )
        return module.num_features, [(module, "weight", 0, None), (module, "bias", 0, None)]
    if isinstance(module, nn.Embedding):
        check_choice(group, "group", ("out", "in"))
        dim = 0 if group == "in" else 1  # rows = tokens ("in"), columns = features ("out")
        return module.weight.shape[dim], [(module, "weight", dim, None)]
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        # weight (in, out / groups, *kernel)
        check_choice(group, "group", ("out", "in"))
        if group == "in":
            return module.in_channels, [(module, "weight", 0, None)]
        if module.groups != 1:
            raise InvalidParameterError(
                f"`group='out'` needs a transposed conv with groups=1; got groups={module.groups}."
            )
        mem = [(module, "weight", 1, None)]
        if module.bias is not None:
            mem.append((module, "bias", 0, None))
        return module.out_channels, mem
    if isinstance(module, nn.Linear | nn.modules.conv._ConvNd):
        check_choice(group, "group", ("out", "in"))
        if group == "out":
            n = module.weight.shape[0]
            mem = [(module, "weight", 0, None)]
            if module.bias is not None:
                mem.append((module, "bias", 0, None))
            return n, mem
        if isinstance(module, nn.Linear) or module.groups == 1:
            return module.weight.shape[1], [(module, "weight", 1, None)]
        if module.groups == module.in_channels:
            # depthwise: input channel i feeds exactly the filters of group i
            per = module.out_channels // module.groups
            return module.in_channels, [
                (module, "weight", 0, torch.arange(module.out_channels) // per)
            ]
        raise InvalidParameterError(
            "`group='in'` needs a conv with groups=1 or a depthwise conv (groups = in_channels); "
            f"got groups={module.groups}, in_channels={module.in_channels}."
        )
    raise InvalidTypeError(
        "`module` must be an nn.Linear, a convolution (1-3 d, transposed), a batch norm, an "
        f"nn.Embedding or an nn.MultiheadAttention; got {type(module).__name__}."
    )


def is_gated(module: nn.Module) -> bool:
    """Whether ``module`` (itself, not its children) carries a :class:`GateBank`."""
    return _bank_of(module) is not None


def _bank_of(module: nn.Module) -> GateBank | None:
    plist = getattr(module, "parametrizations", None)
    if plist is None:
        return None
    for name in plist:
        for p in plist[name]:
            if isinstance(p, GateBank):
                return p
    return None


def dgate(
    module: nn.Module,
    depth: int,
    *,
    group: str = "out",
    init: str = "balanced",
    fast: bool = True,
    outgoing: nn.Module | None = None,
) -> nn.Module:
    r"""D-gate ``module`` in place: :math:`w_{G_j} = \omega_{G_j}\prod_{d=1}^{D-1}\gamma_{j,d}`.

    Parameters
    ----------
    module : nn.Module
        ``nn.Linear``, ``nn.Conv1d/2d/3d``, ``nn.ConvTranspose1d/2d/3d``, ``nn.BatchNorm1d/2d/3d``,
        ``nn.Embedding`` or ``nn.MultiheadAttention``; modified in place and returned.
    depth : int
        :math:`D \ge 2`; the induced penalty is :math:`\lambda\sum_j\|w_j\|_2^{2/D}`.
    group : {"out", "in", "heads"}, default="out"
        Output neurons/filters (with their biases), input features/channels, or attention heads
        (the only choice for ``nn.MultiheadAttention``, which is always gated by heads).
    init : {"balanced", "ones"}, default="balanced"
        Balanced lift of the current weights, or unit gates with :math:`\omega = w`; both leave
        the module's function unchanged (see the module docstring for why ``"balanced"`` is the
        default).
    fast : bool, default=True
        For ``nn.Linear``/``nn.Conv1d/2d/3d``, scale activations rather than materialise
        :math:`w` in the forward pass (same function and gradients).

    Returns
    -------
    nn.Module
        ``module``, now parametrised; ``module.weight`` is the collapsed :math:`w`.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> lin = nn.Linear(4, 3, dtype=torch.float64)
    >>> x = torch.randn(5, 4, dtype=torch.float64)
    >>> y = lin(x)
    >>> _ = dgate(lin, depth=3)
    >>> gates = lin.parametrizations.weight[0].gates
    >>> bool(torch.allclose(lin(x), y, atol=1e-12)), tuple(gates.shape)
    (True, (3, 2))
    """
    depth = check_depth(depth)
    if isinstance(module, nn.MultiheadAttention) and group == "out":
        group = "heads"
    check_choice(group, "group", GROUP_KINDS)
    check_choice(init, "init", INITS)
    if is_gated(module) or getattr(getattr(module, "out_proj", None), "parametrizations", None):
        raise InvalidParameterError("`module` is already D-gated; collapse it before re-gating.")
    n_groups, mem = _members(module, group)
    if outgoing is not None:
        ok = isinstance(outgoing, nn.Linear) or (
            isinstance(outgoing, nn.modules.conv._ConvNd)
            and not outgoing.transposed
            and outgoing.groups == 1
        )
        if group != "out" or not ok or outgoing.weight.shape[1] != n_groups:
            raise InvalidParameterError(
                "`outgoing` must be an nn.Linear or convolution (groups=1) with one input per "
                f"unit ({n_groups}) of a module gated with group='out'; got "
                f"{type(outgoing).__name__} with {outgoing.weight.shape[1]} inputs, "
                f"group={group!r}."
            )
        if hasattr(outgoing, "parametrizations"):
            raise InvalidParameterError("`outgoing` is already D-gated or parametrised.")
        mem = [*mem, (outgoing, "weight", 1, None)]
    owner0, name0, dim0, idx0 = mem[0]
    t0 = getattr(owner0, name0)
    mem = [(o, n, d, None if i is None else i.to(t0.device)) for o, n, d, i in mem]
    idx0 = mem[0][3]
    bank = GateBank(n_groups, depth, group, dim0, idx0, dtype=t0.dtype, device=t0.device)
    with torch.no_grad():
        w = [getattr(o, n).detach().clone() for o, n, _, _ in mem]
        if init == "balanced":
            # balanced lift: gamma = ||w_j||^{1/D}, omega = w_j ||w_j||^{1/D - 1} (0 if w_j = 0)
            sq = torch.zeros(n_groups, dtype=t0.dtype, device=t0.device)
            for (_, _, dim, idx), t in zip(mem, w):
                dims = [d for d in range(t.dim()) if d != dim]
                s = (t * t).sum(dim=dims) if dims else t * t
                ids = torch.arange(s.numel(), device=s.device) if idx is None else idx
                sq = sq.index_add(0, ids, s)
            norms = sq.sqrt()
            root = norms ** (1.0 / depth)
            scale = torch.where(norms > 0, root / torch.where(norms > 0, norms, 1.0), 0.0)
            bank.gates.copy_(root[:, None].expand(n_groups, depth - 1))
            omegas = [_scale(t, scale, dim, idx) for (_, _, dim, idx), t in zip(mem, w)]
        else:
            omegas = w
    for k, (owner, name, dim, idx) in enumerate(mem):
        par = bank if k == 0 else SharedGate(bank, dim, idx)
        # unsafe=True: no right_inverse; the original is set to omega just below.
        parametrize.register_parametrization(owner, name, par, unsafe=True)
        with torch.no_grad():
            owner.parametrizations[name].original.copy_(omegas[k])
        bank.members.append((owner, name, par))
    fast_fwd = _FAST_FORWARDS.get(parametrize.type_before_parametrizations(module))
    if fast and fast_fwd is not None and len(module.parametrizations) == len(mem):
        # The Parametrized<Cls> class is created per instance by parametrize, so setting
        # `forward` on it affects this module (and its deep copies) only.
        module.__class__.forward = fast_fwd
    return module


def gate_banks(model: nn.Module) -> list[GatedUnit]:
    """All gated units of ``model``, in ``named_modules`` order."""
    return [
        GatedUnit(f"{name}.{bank.members[0][1]}" if name else bank.members[0][1], mod, bank)
        for name, mod in model.named_modules()
        if (bank := _bank_of(mod)) is not None
    ]


def gated_parameters(model: nn.Module) -> list[nn.Parameter]:
    r"""The parameters :math:`\omega` and :math:`\Gamma` of every gated unit of ``model``."""
    out: list[nn.Parameter] = []
    for unit in gate_banks(model):
        out.extend(unit.bank.omegas())
        out.append(unit.bank.gates)
    return out


def _iter_banks(model: nn.Module) -> Iterator[GateBank]:
    for unit in gate_banks(model):
        yield unit.bank


def gated_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    r"""The smooth penalty :math:`\sum_{\text{units}} \frac{\lambda}{D}(\|\omega\|^2 +
    \|\Gamma\|_F^2)` (differentiable; its gradient is the coupled weight decay
    :math:`\frac{2\lambda}{D}` of :func:`dgating.nn.param_groups`)."""
    total = torch.zeros(())
    for bank in _iter_banks(model):
        sq = sum((o * o).sum() for o in bank.omegas()) + (bank.gates**2).sum()
        total = total + (lam / bank.depth) * sq
    return total


def lq_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    r"""The non-smooth penalty :math:`\lambda \sum_j \|w_j\|_2^{2/D}` of the collapsed weights."""
    total = torch.zeros(())
    for bank in _iter_banks(model):
        norms = bank.group_sq_norms(bank.weights()).sqrt()
        total = total + lam * (norms ** (2.0 / bank.depth)).sum()
    return total


def group_norms(model: nn.Module) -> dict[str, torch.Tensor]:
    r""":math:`\|w_j\|_2` of every group of every gated unit, keyed by unit name (detached)."""
    with torch.no_grad():
        return {u.name: u.bank.group_sq_norms(u.bank.weights()).sqrt() for u in gate_banks(model)}


def max_imbalance(model: nn.Module) -> float:
    r""":math:`\max |\Delta_{j,d}| / \max(1, \|\omega_j\|^2)` over all gated units (0 if none)."""
    out = 0.0
    with torch.no_grad():
        for bank in _iter_banks(model):
            sq = bank.group_sq_norms(bank.omegas())
            delta = (sq[:, None] - bank.gates**2).abs() / sq.clamp(min=1.0)[:, None]
            if delta.numel():
                out = max(out, float(delta.max()))
    return out
