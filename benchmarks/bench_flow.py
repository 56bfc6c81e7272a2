"""Throughput of the batched gradient-flow engine against per-configuration and batched baselines.

Workload (issue 4): 256 configurations of the gated gradient flow on one data set (n = 200,
p = 100, 20 groups of 5), depths D in {2, 3, 4}, lam on a grid, seeded unbalanced initial points,
T = 50, rtol = 1e-8 (atol = 1e-12). Methods:

* ``batched``: :func:`dgating.simulations.integrate_flows` (torch Dormand-Prince 5(4), one adaptive
  step per configuration, finished configurations drop out);
* ``scipy``: a loop of ``solve_ivp(method="DOP853")`` on ``GatedObjective.vector_field``, timed on
  an evenly spread subset and extrapolated to 256 (said in the output);
* ``torchdiffeq``: ``torchdiffeq.odeint(method="dopri5")`` on the whole batch as one ODE (one step
  size for all, error norm over the batch);
* ``radau`` (optional, ``--methods batched,radau``): scipy's implicit Radau IIA with the analytic
  Hessian of L as Jacobian, to see whether curvature information cuts the step count;
* ``diffrax``: ``diffeqsolve(Tsit5, PIDController)`` under ``jax.jit(jax.vmap(...))``, float64,
  timed including compilation (first call) and again warm.

Every method runs in its own subprocess with one thread (OMP/MKL/OpenBLAS/torch/XLA), so the
peak RSS it reports is its own and the comparison is per core; rounds interleave the methods and
the speed-ups use process CPU time (robust to other load on a shared machine), medians over
rounds. Library imports happen before the clock starts (diffrax's compilation is timed, as asked).
Accuracy is compared on the exact imbalance identity: max over configurations of
|Delta(T) - Delta(0) exp(-4 lam T/D)| / max|Delta(0)|.

Usage::

    python benchmarks/bench_flow.py            # 256 configurations, 3 repeats
    python benchmarks/bench_flow.py --quick    # 48 configurations, 1 repeat, smaller scipy subset

torchdiffeq, jax and diffrax are benchmark-only (``pip install torchdiffeq jax diffrax``); a method
whose import fails is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

N_SAMPLES, N_FEATURES, N_GROUPS = 200, 100, 20
T_END, RTOL, ATOL = 50.0, 1e-8, 1e-12
DEPTHS = (2, 3, 4)
LAMS = tuple(np.round(np.geomspace(0.02, 0.5, 8), 4))
METHODS = ("batched", "scipy", "torchdiffeq", "diffrax")


def configurations(n_configs: int) -> list[tuple[int, float, int]]:
    """(depth, lam, seed) for each configuration: D and lam cycle, the seed is the index."""
    return [(DEPTHS[i % 3], float(LAMS[(i // 3) % len(LAMS)]), i) for i in range(n_configs)]


def setup(n_configs: int):
    from dgating import GatedObjective
    from dgating.simulations import initial_params, make_problem

    prob = make_problem(N_SAMPLES, N_FEATURES, N_GROUPS, seed=0)
    objs, params = [], []
    for depth, lam, seed in configurations(n_configs):
        obj = GatedObjective(prob, depth, lam)
        objs.append(obj)
        params.append(initial_params(obj, seed=seed, init_scale=0.5))
    return prob, objs, params


def identity_error(depth: int, lam: float, d0: np.ndarray, dT: np.ndarray) -> float:
    return float(np.abs(dT - d0 * np.exp(-4 * lam * T_END / depth)).max() / np.abs(d0).max())


def padded(prob, objs, params):
    """Packed states with gates padded to max(D) - 1 = 3 columns (padding fixed at 1)."""
    p, J = prob.n_features, prob.n_groups
    K = max(DEPTHS) - 1
    y0 = np.ones((len(objs), p + J * K))
    mask = np.zeros((len(objs), J, K))
    for b, (obj, prm) in enumerate(zip(objs, params)):
        y0[b, :p] = prm.omega
        g = np.ones((J, K))
        g[:, : obj.depth - 1] = prm.gates
        y0[b, p:] = g.ravel()
        mask[b, :, : obj.depth - 1] = 1.0
    wd = np.array([2 * o.lam / o.depth for o in objs])
    onehot = np.zeros((p, J))
    onehot[np.arange(p), prob.groups.labels] = 1.0
    Q = prob.X.T @ prob.X / prob.n_samples
    bvec = prob.X.T @ prob.y / prob.n_samples
    return y0, mask.reshape(len(objs), -1), wd, onehot, Q, bvec, K


def imbalance_from_padded(prob, obj, z) -> np.ndarray:
    p, J = prob.n_features, prob.n_groups
    gates = z[p:].reshape(J, -1)[:, : obj.depth - 1]
    return prob.groups.sq_norms(z[:p])[:, None] - gates**2


def run_batched(n_configs: int, repeats: int) -> dict:
    import torch  # noqa: F401  (imported before the clock starts, like the other libraries)

    from dgating.simulations import integrate_flows

    prob, objs, params = setup(n_configs)
    times, cpu, res = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        res = integrate_flows(
            objs, params, T_END, t_eval=[0.0, T_END], rtol=RTOL, atol=ATOL, record_metrics=False
        )
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    errs = []
    for obj, r in zip(objs, res):
        d0 = obj.gating.imbalance(r.params(0))
        errs.append(identity_error(obj.depth, obj.lam, d0, obj.gating.imbalance(r.params(-1))))
    return {
        "seconds": statistics.median(times),
        "cpu_seconds": statistics.median(cpu),
        "nfev_mean": float(np.mean([r.nfev for r in res])),
        "identity_error": max(errs),
    }


def run_scipy(n_configs: int, subset: int, rtol: float = RTOL) -> dict:
    from scipy.integrate import solve_ivp

    prob, objs, params = setup(n_configs)
    idx = np.unique(np.linspace(0, n_configs - 1, subset).round().astype(int))
    times, cpu, nfev, errs = [], [], [], []
    for i in idx:
        obj, prm = objs[i], params[i]
        z0 = obj.gating.pack(prm)
        start, start_cpu = time.perf_counter(), time.process_time()
        sol = solve_ivp(obj.vector_field, (0, T_END), z0, method="DOP853", rtol=rtol, atol=ATOL)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        nfev.append(sol.nfev)
        d0 = obj.gating.imbalance(prm)
        dT = obj.gating.imbalance(obj.gating.unpack(sol.y[:, -1]))
        errs.append(identity_error(obj.depth, obj.lam, d0, dT))
    return {
        "seconds": float(np.mean(times)) * n_configs,
        "cpu_seconds": float(np.mean(cpu)) * n_configs,
        "extrapolated_from": int(idx.size),
        "seconds_per_config_median": statistics.median(times),
        "nfev_mean": float(np.mean(nfev)),
        "identity_error": max(errs),
    }


def run_radau(n_configs: int, subset: int) -> dict:
    """Implicit Radau IIA (order 5) with the analytic Hessian as Jacobian: does curvature help?"""
    from scipy.integrate import solve_ivp

    prob, objs, params = setup(n_configs)
    idx = np.unique(np.linspace(0, n_configs - 1, max(2, subset // 4)).round().astype(int))
    cpu, steps, nlu, errs = [], [], [], []
    for i in idx:
        obj, prm = objs[i], params[i]

        def jac(t, z, obj=obj):
            return -obj.hessian(obj.gating.unpack(z))

        start_cpu = time.process_time()
        sol = solve_ivp(
            obj.vector_field,
            (0, T_END),
            obj.gating.pack(prm),
            method="Radau",
            rtol=RTOL,
            atol=ATOL,
            jac=jac,
        )
        cpu.append(time.process_time() - start_cpu)
        steps.append(sol.t.size - 1)
        nlu.append(sol.nlu)
        dT = obj.gating.imbalance(obj.gating.unpack(sol.y[:, -1]))
        errs.append(identity_error(obj.depth, obj.lam, obj.gating.imbalance(prm), dT))
    return {
        "seconds": float(np.mean(cpu)) * n_configs,
        "cpu_seconds": float(np.mean(cpu)) * n_configs,
        "extrapolated_from": int(idx.size),
        "steps_mean": float(np.mean(steps)),
        "nlu_mean": float(np.mean(nlu)),
        "identity_error": max(errs),
    }


def run_torchdiffeq(n_configs: int, repeats: int) -> dict:
    import torch
    from torchdiffeq import odeint

    torch.set_num_threads(1)
    prob, objs, params = setup(n_configs)
    y0, mask, wd, onehot, Q, bvec, K = padded(prob, objs, params)
    p, J = prob.n_features, prob.n_groups
    tt = {k: torch.as_tensor(v) for k, v in dict(mask=mask, onehot=onehot, Q=Q, b=bvec).items()}
    wd_t = torch.as_tensor(wd)[:, None]
    nfev = [0]

    def rhs(t, Y):
        nfev[0] += 1
        omega, gates = Y[:, :p], Y[:, p:].reshape(-1, J, K)
        ones = torch.ones_like(gates[..., :1])
        left = torch.cumprod(torch.cat([ones, gates[..., :-1]], -1), -1)
        right = torch.flip(
            torch.cumprod(torch.flip(torch.cat([gates[..., 1:], ones], -1), [-1]), -1), [-1]
        )
        prod = left[..., -1] * gates[..., -1]
        pexp = prod @ tt["onehot"].T
        G = (omega * pexp) @ tt["Q"] - tt["b"]
        inner = (G * omega) @ tt["onehot"]
        d_omega = pexp * G + wd_t * omega
        d_gates = (left * right * inner[..., None]).reshape(-1, J * K) + wd_t * Y[:, p:]
        return -torch.cat([d_omega, d_gates * tt["mask"]], -1)

    times, cpu = [], []
    for _ in range(repeats):
        nfev[0] = 0
        start, start_cpu = time.perf_counter(), time.process_time()
        out = odeint(
            rhs,
            torch.as_tensor(y0),
            torch.tensor([0.0, T_END], dtype=torch.float64),
            rtol=RTOL,
            atol=ATOL,
            method="dopri5",
        )
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    zT = out[-1].numpy()
    errs = []
    for b, obj in enumerate(objs):
        d0 = imbalance_from_padded(prob, obj, y0[b])
        errs.append(identity_error(obj.depth, obj.lam, d0, imbalance_from_padded(prob, obj, zT[b])))
    return {
        "seconds": statistics.median(times),
        "cpu_seconds": statistics.median(cpu),
        "nfev_batch": nfev[0],
        "identity_error": max(errs),
    }


def run_diffrax(n_configs: int, repeats: int) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import diffrax
    import jax.numpy as jnp

    prob, objs, params = setup(n_configs)
    y0, mask, wd, onehot, Q, bvec, K = padded(prob, objs, params)
    p, J = prob.n_features, prob.n_groups
    onehot_j, Q_j, b_j = jnp.asarray(onehot), jnp.asarray(Q), jnp.asarray(bvec)

    def rhs(t, y, args):
        wd_b, mask_b = args
        omega, gates = y[:p], y[p:].reshape(J, K)
        ones = jnp.ones_like(gates[:, :1])
        left = jnp.cumprod(jnp.concatenate([ones, gates[:, :-1]], -1), -1)
        right = jnp.flip(
            jnp.cumprod(jnp.flip(jnp.concatenate([gates[:, 1:], ones], -1), -1), -1), -1
        )
        prod = left[:, -1] * gates[:, -1]
        pexp = onehot_j @ prod
        G = Q_j @ (omega * pexp) - b_j
        inner = onehot_j.T @ (G * omega)
        d_omega = pexp * G + wd_b * omega
        d_gates = (left * right * inner[:, None]).reshape(-1) + wd_b * y[p:]
        return -jnp.concatenate([d_omega, d_gates * mask_b])

    term = diffrax.ODETerm(rhs)

    def solve(y, wd_b, mask_b):
        sol = diffrax.diffeqsolve(
            term,
            diffrax.Tsit5(),
            t0=0.0,
            t1=T_END,
            dt0=None,
            y0=y,
            args=(wd_b, mask_b),
            stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=200_000,
        )
        return sol.ys[-1], sol.stats["num_steps"]

    fn = jax.jit(jax.vmap(solve))
    args = (jnp.asarray(y0), jnp.asarray(wd), jnp.asarray(mask))
    start, start_cpu = time.perf_counter(), time.process_time()
    zT, steps = fn(*args)
    zT.block_until_ready()
    first, first_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    warm, warm_cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        zT, steps = fn(*args)
        zT.block_until_ready()
        warm.append(time.perf_counter() - start)
        warm_cpu.append(time.process_time() - start_cpu)
    zT = np.asarray(zT)
    errs = []
    for b, obj in enumerate(objs):
        d0 = imbalance_from_padded(prob, obj, y0[b])
        errs.append(identity_error(obj.depth, obj.lam, d0, imbalance_from_padded(prob, obj, zT[b])))
    return {
        "seconds": first,
        "cpu_seconds": first_cpu,
        "seconds_warm": statistics.median(warm),
        "cpu_seconds_warm": statistics.median(warm_cpu),
        "compile_seconds": first - statistics.median(warm),
        "steps_mean": float(np.mean(np.asarray(steps))),
        "identity_error": max(errs),
    }


def child(method: str, n_configs: int, repeats: int, subset: int, scipy_rtol: float) -> None:
    # Memory is the peak RSS of this child (tracemalloc is not used: it slows every Python
    # allocation, which would penalise the Python-driven methods, and it does not see torch or
    # XLA buffers anyway).
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if method == "batched":
        out = run_batched(n_configs, repeats)
    elif method == "scipy":
        out = run_scipy(n_configs, subset, scipy_rtol)
    elif method == "torchdiffeq":
        out = run_torchdiffeq(n_configs, repeats)
    elif method == "radau":
        out = run_radau(n_configs, subset)
    else:
        out = run_diffrax(n_configs, repeats)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_at_start_mb"] = rss0 / 1024
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="48 configurations, 1 repeat")
    parser.add_argument("--configs", type=int, default=None, help="number of configurations")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--scipy-subset", type=int, default=None)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--scipy-rtol", type=float, default=RTOL, help="rtol of the scipy loop (to match accuracy)"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.configs or (48 if args.quick else 256)
    repeats = args.repeats or (1 if args.quick else 3)
    subset = args.scipy_subset or (6 if args.quick else 16)
    if args.child:
        child(args.child, n, repeats, subset, args.scipy_rtol)
        return
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"
    env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    print(
        f"bench_flow: {n} configurations, n={N_SAMPLES} p={N_FEATURES} J={N_GROUPS}, "
        f"D in {DEPTHS}, lam in {[float(x) for x in LAMS]}, T={T_END}, rtol={RTOL}, "
        f"atol={ATOL}; "
        f"one thread per method; medians of {repeats} repeat(s)"
    )
    # Rounds interleave the methods (one child process per method and round) so that they see
    # the same background load; each child runs one repeat. Timings: medians over the rounds.
    methods = args.methods.split(",")
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    failures: dict[str, str] = {}
    for _ in range(repeats):
        for method in methods:
            if method in failures:
                continue
            cmd = [
                sys.executable,
                __file__,
                "--child",
                method,
                "--configs",
                str(n),
                "--repeats",
                "1",
                "--scipy-subset",
                str(subset),
                "--scipy-rtol",
                str(args.scipy_rtol),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                failures[method] = (proc.stderr.strip().splitlines() or ["?"])[-1]
                continue
            runs[method].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results = {}
    for method, rs in runs.items():
        if not rs:
            print(f"  {method:12s} skipped/failed: {failures.get(method)}")
            continue
        merged = dict(rs[-1])
        for key in (
            "seconds",
            "cpu_seconds",
            "seconds_warm",
            "cpu_seconds_warm",
            "compile_seconds",
            "peak_rss_mb",
        ):
            if key in merged:
                merged[key] = statistics.median(r[key] for r in rs)
        merged["rounds"] = len(rs)
        results[method] = merged
    base = results.get("batched")
    print(
        f"  {'method':12s} {'CPU s':>8s} {'wall s':>8s} {'configs/s':>10s} {'speed-up':>9s} "
        f"{'identity err':>12s} {'peak RSS MB':>11s}  notes"
    )
    for method, r in results.items():
        rate = n / r["cpu_seconds"]
        ratio = (r["cpu_seconds"] / base["cpu_seconds"]) if base else float("nan")
        note = ""
        if method == "scipy":
            note = (
                f"extrapolated from {r['extrapolated_from']} configs, "
                f"{r['nfev_mean']:.0f} nfev/config"
            )
        elif method == "batched":
            note = f"{r['nfev_mean']:.0f} nfev/config"
        elif method == "torchdiffeq":
            note = f"{r['nfev_batch']} batch evaluations"
        elif method == "radau":
            note = (
                f"extrapolated from {r['extrapolated_from']} configs, "
                f"{r['steps_mean']:.0f} steps and {r['nlu_mean']:.0f} LU per config"
            )
        elif method == "diffrax":
            note = (
                f"incl. {r['compile_seconds']:.2f} s compile; warm "
                f"{r['cpu_seconds_warm']:.3f} CPU s; {r['steps_mean']:.0f} steps/config"
            )
        print(
            f"  {method:12s} {r['cpu_seconds']:8.3f} {r['seconds']:8.3f} {rate:10.1f} "
            f"{ratio:8.1f}x {r['identity_error']:12.1e} {r['peak_rss_mb']:11.0f}  {note}"
        )
    print(
        "  speed-up = method CPU seconds / batched CPU seconds (> 1: the batched engine is "
        "faster); every method is single-threaded, so CPU time is the fair measure on a "
        "shared machine (wall time shown too)"
    )
    print(json.dumps({"n_configs": n, "results": results}))


if __name__ == "__main__":
    main()
