r"""Sparsity-accuracy trade-offs of D-Gating on small networks (digits, wine, a ResNet on digits).

For every dataset, depth :math:`D \in \{2, 3, 4\}`, :math:`\lambda` on a grid and seed, four ways of
fitting :math:`L_w(w) = L_0(w) + \lambda\sum_j\|w_j\|_2^{2/D}` are compared:

``dgating``
    D-gate the grouped layer (:func:`dgating.nn.dgate`, balanced init) and run plain minibatch SGD
    with coupled weight decay :math:`2\lambda/D` (:func:`dgating.nn.param_groups`) on the smooth
    :math:`L(\omega, \Gamma)`; collapse at the end.
``subgradient``
    SGD directly on :math:`L_w`, with the gradient :math:`\lambda q\|w_j\|^{q-2}w_j` of the
    penalty on non-zero groups and the subgradient 0 on zero groups.
``proximal``
    Proximal SGD: a gradient step on :math:`L_0`, then the group prox of step
    :math:`\eta\lambda` (:meth:`dgating.GroupLqPenalty.prox`), which produces exact zeros.
``magnitude``
    Train without penalty (``lam = 0``), then remove the groups of smallest norm so that the
    sparsity matches the ``dgating`` run with the same dataset, depth, :math:`\lambda` and seed
    (no fine-tuning).

A group counts as removed when :math:`\|w_j\|_2 \le \tau \max_k \|w^{(0)}_k\|_2`, with
:math:`\tau` = ``threshold`` and :math:`w^{(0)}` the layer at initialisation (the same for every
method of a seed), and is set to zero before the test accuracy is measured. The reference is the
initial scale of the layer, not the trained weights, so a layer that vanishes as a whole counts as
removed. A threshold is needed because under (S)GD vanishing groups decay geometrically and never
reach zero within a finite budget (docs/theory.md [T-zero-groups]); it is the same rule for every
method. ``sparsity`` is the fraction of removed groups.

Datasets (bundled with scikit-learn, no download), standardised on the training split:

* ``digits``: 8x8 images, 10 classes; MLP ``64-64-10`` with ReLU, groups = the 64 hidden neurons
  (row of the first layer and its bias, ``group="out"``).
* ``wine``: 13 features, 3 classes; MLP ``13-16-3`` with ReLU, groups = the 13 input features
  (columns of the first layer, ``group="in"``).
* ``digits-resnet``: the paper's granularity, filters of a residual network with batch norm:
  :class:`dgating.nn._resnet.DigitsResNet` (stem + 2 residual blocks, ``resnet_width``
  channels, 8x8 inputs, float32). Groups = the inner channels of the blocks, channel :math:`c`
  of a block being :math:`w_c = (\gamma_c, \beta_c, W^{(2)}_{:,c})`: its batch norm scale and
  shift and its outgoing weights in the block's second convolution (``dgate(bn1, D,
  outgoing=conv2)``); a dead channel removes the filter of the first convolution, the batch norm
  channel and the input slice of the second. The outgoing weights are in the group because a
  filter followed by batch norm has no scale of its own, and without them the penalty shrinks
  the batch norm as a whole (ReLU rescaling symmetry) instead of selecting channels. Methods
  ``dgating``, ``proximal`` (prox step on the same groups) and ``magnitude`` (smallest groups of
  the dense network, over both blocks); a group counts as removed under the rule of
  ``threshold="auto"`` of :func:`dgating.nn.export` with the training :math:`\lambda` and step
  (the prox threshold, docs/theory.md [T-prox]), the same for every method, and the accuracy is that
  of the exported, physically smaller model in eval mode. Its own grid: ``resnet_lams``,
  ``resnet_seeds``.

:func:`run_experiments` returns the tidy rows, :func:`trade_off_table` summarises them (mean over
seeds), :func:`write_results` stores ``results.csv`` and ``results.json`` atomically.

Columns of a row (:data:`COLUMNS`): ``dataset, method, depth, lam, seed``; ``sparsity`` (removed
groups / ``n_groups``), ``n_groups``, ``n_kept``; ``accuracy`` and ``train_accuracy`` of the
thresholded network on the test and training splits; ``train_loss`` (mean cross-entropy on the
training split before thresholding); ``max_imbalance`` (relative
:math:`\max|\Delta_{j,d}|` at the end, ``dgating`` only, NaN otherwise); ``epochs``;
``seconds`` (wall time of the run; for ``magnitude`` it includes the dense training);
``n_params`` and ``n_params_dense``: parameter counts of the exported model
(:func:`dgating.nn.export`) and of the dense one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .._io import json_safe, write_atomic
from .._validation import InvalidParameterError, check_choice, check_depth, check_lam

__all__ = [
    "COLUMNS",
    "DATASETS",
    "METHODS",
    "ExperimentConfig",
    "format_table",
    "quick_config",
    "run_experiments",
    "trade_off_table",
    "write_results",
]

DATASETS = ("digits", "wine", "digits-resnet")
#: Methods run on ``digits-resnet`` (the issue's comparison: proximal SGD and magnitude pruning).
RESNET_METHODS = ("dgating", "proximal", "magnitude")
METHODS = ("dgating", "subgradient", "proximal", "magnitude")
#: Columns of every result row, in order.
COLUMNS = (
    "dataset",
    "method",
    "depth",
    "lam",
    "seed",
    "sparsity",
    "n_groups",
    "n_kept",
    "accuracy",
    "train_accuracy",
    "train_loss",
    "max_imbalance",
    "epochs",
    "seconds",
    "n_params",
    "n_params_dense",
)


@dataclass(frozen=True)
class ExperimentConfig:
    r"""Settings of the trade-off experiment.

    Parameters
    ----------
    datasets : tuple of {"digits", "wine", "digits-resnet"}
    depths : tuple of int
        :math:`D \ge 2`; the penalty exponent is :math:`q = 2/D`.
    lams : tuple of float
        The :math:`\lambda` grid.
    seeds : int
        Seeds ``0 .. seeds-1`` (data split, initialisation and minibatch order).
    methods : tuple of str
        Subset of :data:`METHODS`; ``"magnitude"`` needs ``"dgating"`` (it matches its sparsity).
    epochs : tuple of (dataset, int) pairs
        Epochs of minibatch SGD per dataset.
    batch_size : int
    lr : float
        SGD step :math:`\eta` (no momentum, so the prox step is :math:`\eta\lambda`).
    threshold : float
        Relative threshold :math:`\tau`: groups with :math:`\|w_j\| \le
        \tau\max_k\|w^{(0)}_k\|` (largest group norm at initialisation) count as removed.
    test_fraction : float
        Stratified test split.
    n_jobs : int
        Worker processes (1: run in this process).
    resnet_lams : tuple of float
        The :math:`\lambda` grid of ``digits-resnet``.
    resnet_seeds : int
        Seeds of ``digits-resnet`` (at most ``seeds``).
    resnet_width : int
        Channels of the ResNet.
    """

    datasets: tuple[str, ...] = DATASETS
    depths: tuple[int, ...] = (2, 3, 4)
    lams: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
    seeds: int = 5
    methods: tuple[str, ...] = METHODS
    epochs: tuple[tuple[str, int], ...] = (("digits", 40), ("wine", 200), ("digits-resnet", 10))
    batch_size: int = 64
    lr: float = 0.1
    threshold: float = 1e-2
    test_fraction: float = 0.3
    n_jobs: int = 2
    resnet_lams: tuple[float, ...] = (0.1, 0.15)
    resnet_seeds: int = 3
    resnet_width: int = 8

    def __post_init__(self) -> None:
        for d in self.datasets:
            check_choice(d, "datasets", DATASETS)
        for m in self.methods:
            check_choice(m, "methods", METHODS)
        if "magnitude" in self.methods and "dgating" not in self.methods:
            raise InvalidParameterError(
                "`methods` with 'magnitude' must include 'dgating' (its sparsity is matched); got "
                f"{self.methods}."
            )
        object.__setattr__(self, "depths", tuple(check_depth(d) for d in self.depths))
        object.__setattr__(self, "lams", tuple(check_lam(v) for v in self.lams))
        object.__setattr__(self, "resnet_lams", tuple(check_lam(v) for v in self.resnet_lams))
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise InvalidParameterError(f"`seeds` must be a positive integer; got {self.seeds}.")
        for name in ("resnet_seeds", "resnet_width"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InvalidParameterError(f"`{name}` must be a positive integer; got {v}.")
        if not isinstance(self.n_jobs, int) or self.n_jobs < 1:
            raise InvalidParameterError(f"`n_jobs` must be a positive integer; got {self.n_jobs}.")
        if not (0.0 < self.test_fraction < 1.0):
            raise InvalidParameterError(
                f"`test_fraction` must be in (0, 1); got {self.test_fraction}."
            )

    def epochs_for(self, dataset: str) -> int:
        return dict(self.epochs)[dataset]

    def grid_for(self, dataset: str) -> tuple[tuple[float, ...], int, tuple[str, ...]]:
        """``(lams, seeds, trained methods)`` of ``dataset``."""
        if dataset == "digits-resnet":
            methods = tuple(m for m in self.methods if m in RESNET_METHODS and m != "magnitude")
            return self.resnet_lams, min(self.resnet_seeds, self.seeds), methods
        return self.lams, self.seeds, tuple(m for m in self.methods if m != "magnitude")


def quick_config(**overrides) -> ExperimentConfig:
    """A configuration that runs in seconds (2 depths, 2 lams (1 for the ResNet), 1 seed, few
    epochs, 1 process)."""
    base = ExperimentConfig(
        depths=(2, 3),
        lams=(0.02, 0.2),
        seeds=1,
        epochs=(("digits", 10), ("wine", 150), ("digits-resnet", 10)),
        n_jobs=1,
        resnet_lams=(0.1,),
    )
    return replace(base, **overrides)


# ----------------------------------------------------------------------------------------------
# data and models


def _load(dataset: str, seed: int, test_fraction: float):
    import torch
    from sklearn.datasets import load_digits, load_wine
    from sklearn.model_selection import train_test_split

    X, y = (load_wine if dataset == "wine" else load_digits)(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)  # constant pixels of digits
    f = lambda a: torch.as_tensor((a - mu) / sd, dtype=torch.float64)  # noqa: E731
    return f(Xtr), torch.as_tensor(ytr), f(Xte), torch.as_tensor(yte), int(y.max()) + 1


def _model(dataset: str, n_features: int, n_classes: int, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    hidden = 64 if dataset == "digits" else 16
    net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
    return net.double(), ("out" if dataset == "digits" else "in")


def _group_norms(layer, group: str):
    """Group norms of a plain nn.Linear: rows with bias ('out') or columns ('in')."""
    import torch

    w = layer.weight.detach()
    if group == "out":
        sq = (w * w).sum(dim=1) + (layer.bias.detach() ** 2 if layer.bias is not None else 0.0)
    else:
        sq = (w * w).sum(dim=0)
    return torch.sqrt(sq)


def _scale_groups(layer, group: str, scale) -> None:
    """Multiply every group of a plain nn.Linear by ``scale[j]`` in place."""
    import torch

    with torch.no_grad():
        if group == "out":
            layer.weight.mul_(scale[:, None])
            if layer.bias is not None:
                layer.bias.mul_(scale)
        else:
            layer.weight.mul_(scale[None, :])


def _batches(n: int, batch_size: int, epochs: int, seed: int):
    """Minibatch indices: ``epochs`` passes over ``range(n)`` in a seeded random order."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            yield perm[start : start + batch_size]


def _prox_scale(norms, t: float, q: float):
    r"""Per-group factor of the group prox: :math:`T(\|w_j\|)/\|w_j\|` (0 for zero groups)."""
    import torch

    from ..penalties import scalar_prox

    norms = norms.detach().double().numpy()
    new = scalar_prox(norms, t, q)
    safe = np.where(norms > 0, norms, 1.0)
    return torch.as_tensor(np.where(norms > 0, new / safe, 0.0))


def _smallest_off(norms, sparsity: float):
    """``(k, scale)``: the ``k = round(sparsity * J)`` smallest groups get factor 0, the rest 1."""
    import torch

    k = int(round(sparsity * norms.numel()))
    scale = torch.ones_like(norms)
    scale[torch.argsort(norms)[:k]] = 0.0
    return k, scale


def _accuracy(net, X, y) -> float:
    import torch

    with torch.no_grad():
        return float((net(X).argmax(dim=1) == y).double().mean())


def _train(task: dict) -> dict:
    """One training run; ``task`` holds dataset, method, depth, lam, seed and the config."""
    import torch
    import torch.nn.functional as F

    from ._export import collapse
    from .gating import dgate, max_imbalance
    from .optim import param_groups

    torch.set_num_threads(1)
    if task["dataset"] == "digits-resnet":
        return _train_resnet(task)
    cfg: ExperimentConfig = task["config"]
    dataset, method, depth, lam, seed = (
        task[k] for k in ("dataset", "method", "depth", "lam", "seed")
    )
    t0 = time.perf_counter()
    Xtr, ytr, Xte, yte, n_classes = _load(dataset, seed, cfg.test_fraction)
    net, group = _model(dataset, Xtr.shape[1], n_classes, seed)
    first = net[0]
    ref = float(_group_norms(first, group).max())  # scale of the layer at initialisation
    q = 2.0 / depth if depth else 1.0
    if method == "dgating":
        dgate(first, depth, group=group, init="balanced")
        opt = torch.optim.SGD(param_groups(net, lam), lr=cfg.lr)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    epochs = cfg.epochs_for(dataset)
    for idx in _batches(Xtr.shape[0], cfg.batch_size, epochs, seed):
        opt.zero_grad(set_to_none=False)
        F.cross_entropy(net(Xtr[idx]), ytr[idx]).backward()
        if method == "subgradient" and lam > 0:
            # gradient lam q ||w_j||^{q-2} w_j on non-zero groups, subgradient 0 at w_j = 0
            norms = _group_norms(first, group)
            nz = norms > 0
            coef = torch.zeros_like(norms)
            coef[nz] = lam * q * norms[nz] ** (q - 2.0)
            with torch.no_grad():
                if group == "out":
                    first.weight.grad += coef[:, None] * first.weight
                    first.bias.grad += coef * first.bias
                else:
                    first.weight.grad += coef[None, :] * first.weight
        opt.step()
        if method == "proximal" and lam > 0:
            scale = _prox_scale(_group_norms(first, group), cfg.lr * lam, q)
            _scale_groups(first, group, scale)
    imbalance = max_imbalance(net) if method == "dgating" else float("nan")
    if method == "dgating":
        net = collapse(net)
    with torch.no_grad():
        train_loss = float(F.cross_entropy(net(Xtr), ytr))
    first = net[0]
    norms = _group_norms(first, group)
    data = (Xtr, ytr, Xte, yte)
    extras = {"train_loss": train_loss, "max_imbalance": imbalance, "epochs": epochs}
    finite = bool(torch.isfinite(norms).all())
    if method == "magnitude":
        out = []
        for target in task["match"]:
            k, scale = _smallest_off(norms, target["sparsity"])
            pruned = collapse(net)  # a plain copy
            _scale_groups(pruned[0], group, scale)
            extras["seconds"] = time.perf_counter() - t0
            out.append(
                _row(task, target["depth"], target["lam"], k, norms.numel(), pruned, data, extras)
            )
        return {"rows": out}
    if finite:
        keep = norms > cfg.threshold * ref
    else:  # the subgradient iteration diverged: count the layer as lost
        keep = torch.zeros_like(norms, dtype=torch.bool)
    _scale_groups(first, group, keep.to(norms.dtype))
    k = int((~keep).sum())
    extras["seconds"] = time.perf_counter() - t0
    row = _row(task, depth, lam, k, norms.numel(), net, data, extras)
    return {"rows": [row]}


def _channel_units(net) -> list:
    """``(bn1, conv2)`` of every block: the gated channels and the layer that reads them."""
    return [(b.bn1, b.conv2) for b in net.blocks]


def _channel_norms(net):
    r""":math:`\|(\gamma_c, \beta_c, W^{(2)}_{:,c})\|` of every inner channel of a plain network."""
    import torch

    with torch.no_grad():
        return torch.cat(
            [
                torch.sqrt(bn.weight**2 + bn.bias**2 + (conv.weight**2).sum(dim=(0, 2, 3)))
                for bn, conv in _channel_units(net)
            ]
        )


def _scale_channels(net, scale) -> None:
    r"""Multiply the group :math:`(\gamma_c, \beta_c, W^{(2)}_{:,c})` of every inner channel by
    ``scale[c]``."""
    import torch

    start = 0
    with torch.no_grad():
        for bn, conv in _channel_units(net):
            s = scale[start : start + bn.num_features].to(bn.weight.dtype)
            bn.weight.mul_(s)
            bn.bias.mul_(s)
            conv.weight.mul_(s[None, :, None, None])
            start += bn.num_features


def _train_resnet(task: dict) -> dict:
    """One ``digits-resnet`` run: channel gating inside the blocks, proximal SGD on the same
    groups, or dense training followed by magnitude pruning; every model is exported."""
    import torch
    import torch.nn.functional as F

    from ._export import collapse, export
    from ._resnet import DigitsResNet
    from .gating import dgate, max_imbalance
    from .optim import param_groups

    cfg: ExperimentConfig = task["config"]
    method, depth, lam, seed = (task[k] for k in ("method", "depth", "lam", "seed"))
    t0 = time.perf_counter()
    Xtr, ytr, Xte, yte, n_classes = _load("digits", seed, cfg.test_fraction)
    Xtr, Xte = (a.float().reshape(-1, 1, 8, 8) for a in (Xtr, Xte))
    torch.manual_seed(seed)
    net = DigitsResNet(cfg.resnet_width, n_classes).float()
    if method == "dgating":
        for bn, conv in _channel_units(net):
            dgate(bn, depth, outgoing=conv)
        opt = torch.optim.SGD(param_groups(net, lam), lr=cfg.lr)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    epochs = cfg.epochs_for("digits-resnet")
    q = 2.0 / depth if depth else 1.0
    net.train()
    for idx in _batches(Xtr.shape[0], cfg.batch_size, epochs, seed):
        opt.zero_grad(set_to_none=False)
        F.cross_entropy(net(Xtr[idx]), ytr[idx]).backward()
        opt.step()
        if method == "proximal" and lam > 0:
            _scale_channels(net, _prox_scale(_channel_norms(net), cfg.lr * lam, q))
    net.eval()
    imbalance = max_imbalance(net) if method == "dgating" else float("nan")
    with torch.no_grad():
        train_loss = float(F.cross_entropy(net(Xtr), ytr))
    data = (Xtr, ytr, Xte, yte)
    extras = {"train_loss": train_loss, "max_imbalance": imbalance, "epochs": epochs}
    if method == "magnitude":
        plain, out = collapse(net), []
        norms = _channel_norms(plain)
        for target in task["match"]:
            k, scale = _smallest_off(norms, target["sparsity"])
            pruned = collapse(plain)  # a plain copy
            _scale_channels(pruned, scale)
            res = export(pruned, Xte[:2], threshold=0.0)
            extras |= {"n_params": res.n_params_after, "n_params_dense": res.n_params_before}
            extras["seconds"] = time.perf_counter() - t0
            out.append(
                _row(
                    task, target["depth"], target["lam"], k, norms.numel(), res.model, data, extras
                )
            )
        return {"rows": out}
    auto = {"threshold": "auto", "lam": lam, "step": cfg.lr} if lam > 0 else {"threshold": 0.0}
    norms = _channel_norms(collapse(net, **auto))
    res = export(net, Xte[:2], **auto)
    k = int((norms == 0).sum()) if bool(torch.isfinite(norms).all()) else norms.numel()
    extras |= {"n_params": res.n_params_after, "n_params_dense": res.n_params_before}
    extras["seconds"] = time.perf_counter() - t0
    return {"rows": [_row(task, depth, lam, k, norms.numel(), res.model, data, extras)]}


def _row(task, depth, lam, n_removed, n_groups, net, data, extras) -> dict:
    from ._export import export

    Xtr, ytr, Xte, yte = data
    if "n_params" not in extras:  # MLP rows: the thresholded network, exported
        exported = export(net, Xte[:2], threshold=0.0)
        extras = {**extras, "n_params": exported.n_params_after}
        extras["n_params_dense"] = exported.n_params_before
    return {
        "dataset": task["dataset"],
        "method": task["method"],
        "depth": depth,
        "lam": lam,
        "seed": task["seed"],
        "sparsity": n_removed / n_groups,
        "n_groups": n_groups,
        "n_kept": n_groups - n_removed,
        "accuracy": _accuracy(net, Xte, yte),
        "train_accuracy": _accuracy(net, Xtr, ytr),
        "train_loss": extras["train_loss"],
        "max_imbalance": extras["max_imbalance"],
        "epochs": extras["epochs"],
        "seconds": extras["seconds"],
        "n_params": extras["n_params"],
        "n_params_dense": extras["n_params_dense"],
    }


def _map(fn, tasks: list[dict], n_jobs: int, desc: str, progress: bool) -> list[dict]:
    from .._progress import Progress

    bar = Progress(len(tasks), desc, enabled=progress)
    results: list[dict] = []
    if n_jobs == 1 or len(tasks) <= 1:
        for t in tasks:
            results.append(fn(t))
            bar.update()
    else:
        from .._workers import worker_pool

        # spawn: fresh interpreters, no fork of a process that may hold torch threads; the
        # workers exit when this process dies
        with worker_pool(n_jobs) as pool:
            for res in pool.map(fn, tasks, chunksize=4):
                results.append(res)
                bar.update()
    bar.close()
    return results


def run_experiments(config: ExperimentConfig | None = None, *, progress: bool = True) -> list[dict]:
    r"""Run the trade-off experiment; one tidy row per (dataset, method, depth, lam, seed).

    Parameters
    ----------
    config : ExperimentConfig, optional
        Defaults to :class:`ExperimentConfig` () (the full grid); see :func:`quick_config`.
    progress : bool, default=True
        Report progress on stderr: a bar on a terminal, one line per step otherwise.

    Returns
    -------
    list of dict
        Rows with keys :data:`COLUMNS` (``pandas.DataFrame(rows)`` gives the tidy table).
        ``max_imbalance`` is NaN except for ``dgating``; ``magnitude`` rows carry the depth and
        lam of the ``dgating`` run whose sparsity they match.
    """
    cfg = ExperimentConfig() if config is None else config
    tasks = [
        {"config": cfg, "dataset": ds, "method": m, "depth": d, "lam": lam, "seed": s}
        for ds in cfg.datasets
        for s in range(cfg.grid_for(ds)[1])
        for m in cfg.grid_for(ds)[2]
        for d in cfg.depths
        for lam in cfg.grid_for(ds)[0]
    ]
    rows = [
        r for res in _map(_train, tasks, cfg.n_jobs, "nn-experiment", progress) for r in res["rows"]
    ]
    if "magnitude" in cfg.methods:
        dense = []
        for ds in cfg.datasets:
            for s in range(cfg.grid_for(ds)[1]):
                match = [
                    {"depth": r["depth"], "lam": r["lam"], "sparsity": r["sparsity"]}
                    for r in rows
                    if r["dataset"] == ds and r["seed"] == s and r["method"] == "dgating"
                ]
                dense.append(
                    {
                        "config": cfg,
                        "dataset": ds,
                        "method": "magnitude",
                        "depth": 0,
                        "lam": 0.0,
                        "seed": s,
                        "match": match,
                    }
                )
        for res in _map(_train, dense, min(cfg.n_jobs, len(dense)), "magnitude", progress):
            rows.extend(res["rows"])
    key = {m: i for i, m in enumerate(METHODS)}
    rows.sort(key=lambda r: (r["dataset"], key[r["method"]], r["depth"], r["lam"], r["seed"]))
    return rows


def trade_off_table(rows: Sequence[dict]) -> list[dict]:
    """Mean sparsity and test accuracy over seeds per (dataset, depth, lam, method).

    Returns
    -------
    list of dict
        Keys ``dataset, depth, lam, method, n_seeds, sparsity, accuracy, accuracy_std,
        n_params`` (mean parameter count of the exported models; NaN for rows without it).
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["depth"], r["lam"], r["method"]), []).append(r)
    key = {m: i for i, m in enumerate(METHODS)}
    out = []
    for (ds, d, lam, m), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], key[kv[0][3]])
    ):
        acc = np.array([r["accuracy"] for r in rs])
        out.append(
            {
                "dataset": ds,
                "depth": d,
                "lam": lam,
                "method": m,
                "n_seeds": len(rs),
                "sparsity": float(np.mean([r["sparsity"] for r in rs])),
                "accuracy": float(acc.mean()),
                "accuracy_std": float(acc.std()),
                "n_params": float(np.mean([r.get("n_params", np.nan) for r in rs])),
            }
        )
    return out


def format_table(rows: Sequence[dict]) -> str:
    """The trade-off table as text: one line per (dataset, depth, lam), ``sparsity/accuracy``
    per method (means over seeds); for ``digits-resnet`` also ``parameters/accuracy`` of the
    exported models."""
    summary = trade_off_table(rows)
    methods = [m for m in METHODS if any(s["method"] == m for s in summary)]
    width = max([8, *(len(s["dataset"]) for s in summary)])
    blocks = [("sparsity/accuracy (mean over seeds)", summary, "{sparsity:.2f}/{accuracy:.3f}")]
    resnet = [s for s in summary if s["dataset"] == "digits-resnet"]
    if resnet:
        dense = {r["n_params_dense"] for r in rows if r["dataset"] == "digits-resnet"}
        title = f"digits-resnet: exported parameters/accuracy (mean over seeds; dense {max(dense)})"
        blocks.append((title, resnet, "{n_params:.0f}/{accuracy:.3f}"))
    lines = []
    for title, part, fmt in blocks:
        cells: dict[tuple, dict[str, str]] = {}
        for s in part:
            cells.setdefault((s["dataset"], s["depth"], s["lam"]), {})[s["method"]] = fmt.format(
                **s
            )
        head = f"{'dataset':<{width}} {'D':>2} {'lam':>7}  " + "  ".join(
            f"{m:>12}" for m in methods
        )
        lines += ([""] if lines else []) + [title, head, "-" * len(head)]
        for (ds, d, lam), c in cells.items():
            lines.append(
                f"{ds:<{width}} {d:>2} {lam:>7.3g}  "
                + "  ".join(f"{c.get(m, '-'):>12}" for m in methods)
            )
    return "\n".join(lines)


def write_results(
    rows: Sequence[dict], out_dir: str | os.PathLike, config: ExperimentConfig
) -> dict[str, Path]:
    """Write ``results.csv`` (tidy rows) and ``results.json`` (config, rows, trade-off table)
    into ``out_dir`` (created if needed), each atomically (temporary file + ``os.replace``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r[k] for k in COLUMNS})

    cfg = asdict(config)
    payload = {
        "config": cfg,
        "columns": list(COLUMNS),
        "rows": list(rows),
        "trade_off": trade_off_table(rows),
    }
    paths = {"csv": out / "results.csv", "json": out / "results.json"}
    write_atomic(paths["csv"], buf.getvalue())
    write_atomic(paths["json"], json.dumps(json_safe(payload), indent=1))
    return paths
