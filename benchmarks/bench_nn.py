"""Training-step time and memory of D-gated networks against the same plain networks.

Models (``--model``): ``mlp``, 784-300-100-10 (ReLU), batch 128 of random data; ``resnet``, the
residual CNN of ``dgating nn-experiment`` (:class:`dgating.nn._resnet.DigitsResNet`, 16 channels,
stem + 2 basic blocks with batch norm), batch 128 of random 8x8 images, filter gating on every
batch norm channel. Cross-entropy, CPU. One step = forward + backward + SGD step. Variants:

* ``plain``: ``torch.optim.SGD(weight_decay=2 lam / D)`` (ridge, the same decay work);
* ``gated``: every Linear (MLP) or batch norm (ResNet) D-gated by output units
  (:func:`dgating.nn.dgate` defaults: the MLP's fast forward scales activations; batch norm
  uses the generic parametrisation, so for the ResNet ``gated`` and ``generic`` are the same
  code), ``SGD(param_groups(net, lam))``;
* ``generic``: the same, with ``fast=False`` (plain ``torch.nn.utils.parametrize``, which
  materialises :math:`w = \\omega P` every step), for reference.

Timing: the variants alternate in blocks of ``--block`` steps after a warm-up; the ratio is the
median over blocks of (gated block time / plain block time) from the same run, so the machine's
load drift cancels. Memory: bytes allocated by torch during one step (torch.profiler,
``profile_memory``), parameter counts, and the growth of the resident set of a fresh subprocess
while it builds the model and optimiser and does 30 steps.

Threads: one torch thread by default. On the shared 2-core machine (load 7-9 from other jobs)
two intra-op threads oversubscribe the cores and make every step ~10x slower and the timings
meaningless; ``--threads 2`` measures the two-thread case on a quiet machine.

``--export`` instead times the structural export of the ResNet (5 dead inner channels per block,
float64) against torch-pruning's DependencyGraph (``pip install torch-pruning``), which removes
the same channels when told which ones: median time, parameter count and error of each.

Usage: ``python benchmarks/bench_nn.py [--model mlp|resnet|both] [--dtype float64|float32]
[--depth 3] [--blocks 30] [--threads 1] [--export]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from dgating.nn import dgate, param_groups, weight_decay
from dgating.nn._resnet import DigitsResNet

LAM = 1e-4


def build(variant: str, depth: int, dtype: torch.dtype, model: str = "mlp", seed: int = 0):
    torch.manual_seed(seed)
    if model == "resnet":
        net = DigitsResNet(16).to(dtype)
        units = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    else:
        net = nn.Sequential(
            nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
        ).to(dtype)
        units = [net[0], net[2], net[4]]
    if variant == "plain":
        opt = torch.optim.SGD(net.parameters(), lr=0.01, weight_decay=weight_decay(LAM, depth))
        return net, opt
    for layer in units:
        dgate(layer, depth, group="out", fast=(variant == "gated"))
    return net, torch.optim.SGD(param_groups(net, LAM), lr=0.01)


def make_step(net, opt, x, y):
    def step():
        opt.zero_grad(set_to_none=False)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    return step


def data(dtype, model: str = "mlp", seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (128, 1, 8, 8) if model == "resnet" else (128, 784)
    return torch.randn(*shape, generator=g, dtype=dtype), torch.randint(0, 10, (128,), generator=g)


def step_bytes(variant, depth, dtype, model) -> int:
    """Total bytes allocated by torch in one training step (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    net, opt = build(variant, depth, dtype, model)
    step = make_step(net, opt, *data(dtype, model))
    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    return int(sum(max(e.self_cpu_memory_usage, 0) for e in prof.key_averages()))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_child(variant: str, depth: int, dtype: torch.dtype, model: str) -> float:
    """In a fresh interpreter: RSS growth (MB) while building the model and doing 30 steps."""
    x, y = data(dtype, model)
    build("plain", depth, dtype, model)  # warm the allocator and lazy imports
    r0 = _rss_bytes()
    net, opt = build(variant, depth, dtype, model)
    step = make_step(net, opt, x, y)
    for _ in range(30):
        step()
    return (_rss_bytes() - r0) / 2**20


def rss_growth_mb(variant: str, depth: int, dtype_name: str, model: str) -> float:
    """Growth of the resident set (MB, /proc/self/statm) of a fresh interpreter while it builds
    the model and optimiser and runs 30 steps (parameters, gradients, buffers)."""
    cmd = [sys.executable, __file__, "--rss-child", variant, "--depth", str(depth)]
    cmd += ["--dtype", dtype_name, "--threads", "1", "--model", model]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


VARIANTS = ("plain", "gated", "generic")


def measure(model: str, args: argparse.Namespace) -> dict:
    """Alternating timed blocks of every variant; ratios against ``plain`` from the same run."""
    dtype = getattr(torch, args.dtype)
    steps = {}
    for v in VARIANTS:
        net, opt = build(v, args.depth, dtype, model)
        steps[v] = make_step(net, opt, *data(dtype, model))
        for _ in range(20):  # warm-up
            steps[v]()
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.blocks):
        for v in VARIANTS:
            t0 = time.perf_counter()
            for _ in range(args.block):
                steps[v]()
            times[v].append((time.perf_counter() - t0) / args.block)
    med = {v: statistics.median(ts) for v, ts in times.items()}
    ratio = {
        v: statistics.median(a / b for a, b in zip(times[v], times["plain"]))
        for v in ("gated", "generic")
    }
    n_params = {
        v: sum(p.numel() for p in build(v, args.depth, dtype, model)[0].parameters())
        for v in VARIANTS
    }
    return {
        "model": model,
        "dtype": args.dtype,
        "depth": args.depth,
        "threads": args.threads,
        "steps_timed": args.blocks * args.block,
        "median_step_ms": {v: 1e3 * t for v, t in med.items()},
        "ratio_vs_plain": ratio,
        "n_params": n_params,
        "alloc_bytes_per_step": {v: step_bytes(v, args.depth, dtype, model) for v in VARIANTS},
        "rss_growth_mb": {v: rss_growth_mb(v, args.depth, args.dtype, model) for v in VARIANTS},
        "target_ratio": 1.15,
        "passed": ratio["gated"] <= 1.15,
    }


def report(res: dict, args: argparse.Namespace) -> None:
    title = {"mlp": "MLP 784-300-100-10", "resnet": "ResNet (16 ch, 2 blocks, BN gated)"}
    print(
        f"bench_nn: {title[res['model']]}, batch 128, {args.dtype}, D={args.depth}, "
        f"{args.threads} threads, {args.blocks} x {args.block} steps per variant"
    )
    print(
        f"{'variant':<8} {'median ms/step':>15} {'ratio':>7} {'params':>8} "
        f"{'alloc/step MB':>14} {'+RSS MB':>8}"
    )
    for v in VARIANTS:
        r = 1.0 if v == "plain" else res["ratio_vs_plain"][v]
        print(
            f"{v:<8} {res['median_step_ms'][v]:>15.3f} {r:>7.3f} {res['n_params'][v]:>8d} "
            f"{res['alloc_bytes_per_step'][v] / 2**20:>14.2f} {res['rss_growth_mb'][v]:>8.1f}"
        )
    verdict = "OK" if res["passed"] else "ABOVE TARGET"
    print(f"gated/plain = {res['ratio_vs_plain']['gated']:.3f} (target <= 1.15): {verdict}\n")


def bench_export(repeats: int = 7) -> None:
    """Median time of ``dgating.nn.export`` and of torch-pruning on the same pruned ResNet."""
    from dgating.nn import collapse, export, gate_banks

    torch.manual_seed(0)
    net = DigitsResNet(16).double()
    for block in net.blocks:
        dgate(block.bn1, 3, outgoing=block.conv2)
        with torch.no_grad():
            gate_banks(block)[0].bank.gates[[0, 3, 5, 7, 11]] = 0.0
    net.eval()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)

    def ours():
        return export(net, x).model

    def peer():
        import torch_pruning as tp

        plain = collapse(net)
        graph = tp.DependencyGraph().build_dependency(plain, example_inputs=x)
        for block in plain.blocks:
            dead = (block.bn1.weight == 0) & (block.bn1.bias == 0)
            idx = [int(i) for i in torch.nonzero(dead).flatten()]
            graph.get_pruning_group(block.bn1, tp.prune_batchnorm_out_channels, idxs=idx).prune()
        return plain

    rows = {}
    for name, fn in (("dgating.nn.export", ours), ("torch-pruning", peer)):
        try:
            fn()
        except ImportError:
            print(f"{name}: not installed")
            continue
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model = fn()
            times.append(time.perf_counter() - t0)
        with torch.no_grad():
            err = float((model(x) - net(x)).abs().max())
        n = sum(p.numel() for p in model.parameters())
        rows[name] = statistics.median(times)
        print(f"{name:<18} {1e3 * rows[name]:>8.1f} ms  params {n:>6d}  max |error| {err:.1e}")
    if len(rows) == 2:
        print(
            f"export / torch-pruning time = {rows['dgating.nn.export'] / rows['torch-pruning']:.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="both", choices=["mlp", "resnet", "both"])
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=30)
    ap.add_argument("--block", type=int, default=20, help="steps per timed block")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1; see above)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--export", action="store_true", help="time export against torch-pruning")
    ap.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.export:
        bench_export()
        return
    if args.rss_child:
        print(_rss_child(args.rss_child, args.depth, getattr(torch, args.dtype), args.model))
        return
    models = ("mlp", "resnet") if args.model == "both" else (args.model,)
    results = [measure(m, args) for m in models]
    if args.json:
        print(json.dumps(results))
        return
    for res in results:
        report(res, args)


if __name__ == "__main__":
    main()
