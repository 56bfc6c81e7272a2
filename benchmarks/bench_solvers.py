r"""Benchmark of issue 11: ``solve_prox`` and ``solve_gated`` against celer and skglm, all regimes.

Instances (``X`` with Toeplitz column correlation :math:`\rho^{|i-j|}` drawn as an AR(1) recursion,
contiguous groups of 10, signal-to-noise ratio 3; :math:`\lambda` a fraction of
:math:`\lambda_{\max} = \max_j \|\nabla_j L_0(0)\|`):

* small and large supports, :math:`n \gg p` and :math:`n \ll p`: (n, p, :math:`\rho`) =
  (500, 1000, 0.6), (2000, 5000, 0.3), (200, 20000, 0.6), (10000, 500, 0.6) at
  :math:`\lambda / \lambda_{\max} = 0.1, 0.01`;
* logistic loss (labels :math:`\mathrm{sign}(y)`), D = 2, 3;
* sparse ``X`` (CSC, density 1e-3 .. 1e-2) with :math:`p` up to :math:`10^5` (skipped with a message
  where ``GroupedProblem`` rejects sparse ``X``); the :math:`p = 10^5` rows (two sparse, one
  dense with :math:`n = 200`) are *isolated* (below);
* D = 3, 4 (:math:`L_{2,2/3}`, :math:`L_{2,1/2}`), against skglm's ``GroupBCD`` with a group
  :math:`L_{2,q}` penalty written in its custom-penalty interface (:func:`skglm_group_lq`), both
  from the same ridge point (its time excluded from all);
* a path of 50 :math:`\lambda` from :math:`\lambda_{\max}` to :math:`0.01\lambda_{\max}`
  (geometric), warm-started: ``dgating.solve_path`` for our routes; the peers refit at each
  :math:`\lambda` from the previous solution (celer and skglm's ``warm_start`` convention).

Peers: celer ``GroupLasso`` and skglm ``GroupLasso`` (squared, D = 2); skglm ``GroupBCD`` with
``LogisticGroup`` + ``WeightedGroupL2`` (logistic, D = 2); skglm ``GroupBCD`` + the group
:math:`L_{2,q}` penalty (D = 3, 4).

**Same objective.** Every solver, ours included, runs at the loosest ``tol`` of its ladder whose
objective :math:`L_w` is within :math:`10^{-8}` relative of the best objective found by any solver
on that instance (on a path: at every :math:`\lambda`). A solver that never gets there (a
different local minimum for D >= 3) runs at its tightest ``tol`` and is flagged ``*``.

**Timing.** BLAS on one thread (set before numpy loads). Warm times: one untimed call, then
``--repeats`` calls interleaved across solvers; the median and the worst (max) are printed, with
the ratio of each to the best peer's median. The summary prints, per route, the median and the
worst ratio over all instances. The numba compilation of the kernels is reported separately
(``--jit``): a fresh process with an empty numba cache (cold JIT) and one with the cache filled.

**Isolated instances** (``isolate=True``: the :math:`p = 10^5` rows, where one celer fit takes
many minutes and a numba/Cython loop cannot be interrupted in process). Every (solver, tol) fit
runs in a fresh process in its own process group, which regenerates the data from the
deterministic ``make_problem`` spec and first fits the same solver on a 50 x 100 instance of the
same kind, so imports and JIT/Cython loading are not timed. The fit gets ``--timeout`` wall
seconds (default 600); on expiry the process group is killed. Calibration: ours at its tightest
``tol``, the peers on ``ISOLATED_PEER_TOLS`` = 1e-4, 1e-6, 1e-8 (stopping at the first fit within
the target of the best objective so far, or at the first timeout), then ours on ``OUR_TOLS``
loosest first; each solver is then judged against the final best as above. A timed-out solver's
time is printed as ``>T`` and every ratio involving it as a bound (``<`` / ``>``; ``?`` where
bound meets bound). The time is that of the calibration fit, plus ``--isolated-repeats`` - 1 more
fresh-process fits at the chosen ``tol`` (default: 1 fit per solver).

**Memory** (isolated rows). Peak resident memory of the timed fit above the child's level after
imports, data generation and the warm-up: the kernel's high-water mark ``VmHWM`` is reset to the
current resident size (``/proc/self/clear_refs``, Linux) just before the fit and read after it,
so temporaries of the data generation or the warm-up do not hide the fit's own peak. For a
killed fit the parent reads the child's ``VmHWM`` just before the kill: a lower bound of its
peak (``>=``), and our ratio to it an upper bound (``<=``). Each row prints our peak over
celer's and over skglm's.

Usage::

    python benchmarks/bench_solvers.py --quick     # a subset, ~2 minutes
    python benchmarks/bench_solvers.py             # every regime (long)
    python benchmarks/bench_solvers.py --only p=1e5 --timeout 600   # the isolated rows
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# BLAS threads must be fixed before numpy/scipy load their BLAS libraries (scipy ships its own).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

TARGET = 1e-8
GROUP_SIZE = 10
PEER_TOLS = [10.0**-k for k in range(4, 15, 2)]
OUR_TOLS = [10.0**-k for k in range(6, 11)]
ISOLATED_PEER_TOLS = [1e-4, 1e-6, 1e-8]
SETUP_SECONDS = 600.0  # imports, data, warm-up of an isolated fit, before its timeout starts


def make_problem(
    n_samples: int = 500,
    n_features: int = 1000,
    group_size: int = GROUP_SIZE,
    rho: float = 0.6,
    n_active: int = 10,
    snr: float = 3.0,
    seed: int = 0,
    density: float | None = None,
) -> tuple[np.ndarray | sp.csc_matrix, np.ndarray, np.ndarray]:
    """``X`` with Toeplitz correlation ``rho**|i-j|`` between columns (or, with ``density``, a
    CSC matrix of i.i.d. Gaussian entries), ``y``, contiguous groups."""
    rng = np.random.default_rng(seed)
    if density is None:
        noise = rng.standard_normal((n_samples, n_features))
        X = np.empty((n_samples, n_features))
        X[:, 0] = noise[:, 0]
        for j in range(1, n_features):  # AR(1) across columns: corr(x_i, x_j) = rho^|i-j|
            X[:, j] = rho * X[:, j - 1] + np.sqrt(1.0 - rho**2) * noise[:, j]
    else:
        X = sp.random(n_samples, n_features, density=density, format="csc", random_state=seed)
        X.data = rng.standard_normal(X.data.size)
    n_groups = n_features // group_size
    groups = np.repeat(np.arange(n_groups), group_size)
    w = np.zeros(n_features)
    for j in rng.choice(n_groups, n_active, replace=False):
        w[j * group_size : (j + 1) * group_size] = rng.standard_normal(group_size)
    y = X @ w
    y = y + rng.standard_normal(n_samples) * np.std(y) / snr
    return X, y, groups


@functools.cache
def skglm_group_lq():
    r"""Group :math:`L_{2,q}` penalty :math:`\alpha \sum_g \|w_g\|^q`, :math:`q \in \{1/2, 2/3\}`,
    in skglm's custom-penalty interface (modelled on ``WeightedGroupL2`` and ``L2_05``).

    The group prox is skglm's scalar prox of :math:`|\cdot|^q` applied to the group norm.
    ``generalized_support`` is what ``GroupBCD`` needs to size its working sets; no
    ``subdiff_distance`` (use ``ws_strategy="fixpoint"``).
    """
    from numba import float64, int32
    from numpy.linalg import norm
    from skglm.penalties.base import BasePenalty
    from skglm.utils.prox_funcs import prox_05, prox_2_3

    class GroupLq(BasePenalty):
        def __init__(self, alpha, q, grp_ptr, grp_indices):
            self.alpha, self.q = alpha, q
            self.grp_ptr, self.grp_indices = grp_ptr, grp_indices

        def get_spec(self):
            return (
                ("alpha", float64),
                ("q", float64),
                ("grp_ptr", int32[:]),
                ("grp_indices", int32[:]),
            )

        def params_to_dict(self):
            return dict(
                alpha=self.alpha, q=self.q, grp_ptr=self.grp_ptr, grp_indices=self.grp_indices
            )

        def value(self, w):
            out = 0.0
            for g in range(len(self.grp_ptr) - 1):
                w_g = w[self.grp_indices[self.grp_ptr[g] : self.grp_ptr[g + 1]]]
                out += norm(w_g) ** self.q
            return self.alpha * out

        def prox_1group(self, value, stepsize, g):
            nrm = norm(value)
            if nrm == 0.0:
                return np.zeros_like(value)
            if self.q == 0.5:
                r = prox_05(nrm, self.alpha * stepsize)
            else:  # q = 2/3
                r = prox_2_3(nrm, self.alpha * stepsize)
            return (r / nrm) * value

        def is_penalized(self, n_groups):
            return np.ones(n_groups, dtype=np.bool_)

        def generalized_support(self, w):
            n_groups = len(self.grp_ptr) - 1
            supp = np.zeros(n_groups, dtype=np.bool_)
            for g in range(n_groups):
                if np.any(w[self.grp_indices[self.grp_ptr[g] : self.grp_ptr[g + 1]]]):
                    supp[g] = True
            return supp

    return GroupLq


# --- the solvers: fit(X, y, lam, tol, w_start) -> w ---------------------------------------------


def fit_celer(X, y, lam, tol, w_start, loss, depth):
    from celer import GroupLasso

    model = GroupLasso(
        groups=GROUP_SIZE, alpha=lam, fit_intercept=False, tol=tol, max_iter=1000, warm_start=True
    )
    model.coef_ = np.array(w_start, dtype=float)  # the warm start (scikit-learn's convention)
    return model.fit(X, y).coef_


def fit_skglm(X, y, lam, tol, w_start, loss, depth):
    from skglm.datafits import LogisticGroup, QuadraticGroup
    from skglm.penalties import WeightedGroupL2
    from skglm.solvers import GroupBCD
    from skglm.utils.data import grp_converter

    grp_indices, grp_ptr = grp_converter(GROUP_SIZE, X.shape[1])
    n_groups = len(grp_ptr) - 1
    if depth == 2:
        penalty = WeightedGroupL2(lam, np.ones(n_groups), grp_ptr, grp_indices)
        strategy = "subdiff"
    else:
        penalty = skglm_group_lq()(lam, 2.0 / depth, grp_ptr, grp_indices)
        strategy = "fixpoint"
    datafit = (QuadraticGroup if loss == "squared" else LogisticGroup)(grp_ptr, grp_indices)
    solver = GroupBCD(max_iter=1000, max_epochs=10_000, tol=tol, ws_strategy=strategy)
    w = np.array(w_start, dtype=float)  # GroupBCD updates w_init in place
    return solver.solve(X, y, datafit, penalty, w, X @ w)[0]


def fit_prox(X, y, lam, tol, w_start, loss, depth):
    from dgating import GroupedProblem, solve_prox

    problem = GroupedProblem(X, y, np.arange(X.shape[1]) // GROUP_SIZE, loss)
    return solve_prox(problem, depth, lam, w0=w_start, tol=tol).w


def fit_gated(X, y, lam, tol, w_start, loss, depth):
    from dgating import GroupedProblem, solve_gated

    problem = GroupedProblem(X, y, np.arange(X.shape[1]) // GROUP_SIZE, loss)
    return solve_gated(problem, depth, lam, w0=w_start, tol=tol).w


OURS = {"dgating prox": fit_prox, "dgating gated": fit_gated}


def path_fitter(fit: Callable, name: str) -> Callable:
    """Fit a whole path, warm-started: ``dgating.solve_path`` for our routes, else a loop."""

    def run(X, y, lams, tol, w_start, loss, depth):
        if name in OURS:
            from dgating import GroupedProblem, solve_path

            problem = GroupedProblem(X, y, np.arange(X.shape[1]) // GROUP_SIZE, loss)
            method = name.split()[-1]  # "prox" or "gated"
            return list(solve_path(problem, depth, np.asarray(lams), method=method, tol=tol).coefs)
        out, w = [], w_start
        for lam in lams:
            w = fit(X, y, lam, tol, w, loss, depth)
            out.append(w)
        return out

    return run


def peers_for(loss: str, depth: int) -> dict[str, Callable]:
    if depth == 2 and loss == "squared":
        return {"celer GroupLasso": fit_celer, "skglm GroupLasso": fit_skglm}
    if depth == 2:
        return {"skglm GroupBCD+LogisticGroup": fit_skglm}
    return {"skglm GroupBCD+GroupLq": fit_skglm}


# --- equal objective, timing --------------------------------------------------------------------


def within(vals: list[float], best: list[float]) -> bool:
    """Whether every objective value is within TARGET (relative) of the best one."""
    return all(v - b <= TARGET * abs(b) for v, b in zip(vals, best))


def calibrate(run: Callable, tols: list[float], objectives: Callable, best: list[float] | None):
    """The loosest tol whose objectives are within TARGET of ``best``; (tol, values, reached)."""
    if best is None:
        return tols[-1], objectives(run(tols[-1])), True
    for tol in tols:
        vals = objectives(run(tol))
        if within(vals, best):
            return tol, vals, True
    return tols[-1], vals, False


def timed(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall times of each call after one untimed call, interleaved across calls."""
    for fn in calls.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def prepare(spec: dict) -> dict | None:
    """The instance of ``spec``: its problem, lambdas, objective values and one runner per solver
    (``runners[name](tol)`` -> one solution per lambda); None (with a message) if
    ``GroupedProblem`` rejects the data."""
    loss, depth, frac = spec["loss"], spec["depth"], spec["frac"]
    X, y, groups = make_problem(**spec["data"])
    if loss == "logistic":
        y = np.where(y >= 0, 1.0, -1.0)
    from dgating import GroupedProblem, initial_point
    from dgating.objectives import PenalisedObjective

    try:
        problem = GroupedProblem(X, y, groups, loss)
    except Exception as exc:  # e.g. sparse X on a branch without sparse support
        print(f"\n{spec['label']}: skipped (GroupedProblem rejects this X: {str(exc)[:100]})")
        return None
    lam_max = float(problem.groups.norms(problem.grad(np.zeros(problem.n_features))).max())
    lams = [frac * lam_max] if frac else list(lam_max * np.geomspace(1.0, 0.01, spec["n_path"]))
    w_start = np.zeros(X.shape[1]) if depth == 2 else initial_point(problem, lams[0])
    objs = [PenalisedObjective(problem, depth, lam).value for lam in lams]

    solvers = {**OURS, **peers_for(loss, depth)}
    if spec.get("routes"):
        solvers = {k: v for k, v in solvers.items() if k in spec["routes"] or k not in OURS}
    runners = {}
    for name, fit in solvers.items():
        if frac:
            runners[name] = lambda tol, fit=fit: [fit(X, y, lams[0], tol, w_start, loss, depth)]
        else:
            path = path_fitter(fit, name)
            runners[name] = lambda tol, path=path: path(X, y, lams, tol, w_start, loss, depth)
    return dict(
        problem=problem,
        lams=lams,
        runners=runners,
        values=lambda ws: [f(w) for f, w in zip(objs, ws)],
    )


def run_instance(spec: dict, repeats: int, summary: dict) -> None:
    """Calibrate and time every solver in this process (``timed`` warm repeats)."""
    inst = prepare(spec)
    if inst is None:
        return
    runners, values = inst["runners"], inst["values"]
    # Best objective found by any solver at its tightest tol, then each at its loosest tol.
    ladders = {name: (OUR_TOLS if name in OURS else PEER_TOLS) for name in runners}
    best, available, tightest = None, {}, {}
    for name, run in runners.items():
        try:
            tightest[name] = run(ladders[name][-1])
        except Exception as exc:  # a peer that does not handle this input (e.g. sparse X)
            print(f"  {name}: n/a ({type(exc).__name__}: {str(exc)[:80]})")
            continue
        available[name] = run
        vals = values(tightest[name])
        best = vals if best is None else [min(a, b) for a, b in zip(best, vals)]
    cal = {name: calibrate(run, ladders[name], values, best) for name, run in available.items()}
    calls = {name: (lambda run=run, tol=cal[name][0]: run(tol)) for name, run in available.items()}
    times = timed(calls, repeats)
    rows = {
        name: dict(times=times[name], tol=tol, vals=vals, reached=reached)
        for name, (tol, vals, reached) in cal.items()
    }
    header = f"in process, {repeats} warm repeats after 1 untimed"
    report(spec, inst, rows, best, tightest.get("dgating prox"), header, summary)


# --- isolated instances: one fresh process per fit, wall-time limit, peak memory ----------------


def vm_kib(pid: int | str, field: str) -> int:
    """``field`` (e.g. ``VmHWM``, the resident high-water mark) of ``/proc/<pid>/status``, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(job: dict) -> None:
    """Body of the fresh process of :func:`fit_isolated`: warm up, reset the peak, fit once.

    The warm-up runs the same solver at the same ``tol`` on a 50 x 100 instance of the same kind
    (sparse if the instance is), so imports, numba/Cython compilation and cache loading are not
    timed. Then the resident high-water mark ``VmHWM`` is reset to the current resident size
    (``/proc/self/clear_refs``), that level is written to ``ready.json`` as the baseline, and the
    fit is timed; ``result.json`` holds its seconds and ``VmHWM`` minus the baseline, ``w.npy``
    the solution(s).
    """
    from dgating._io import write_atomic

    spec, name, tol, out = job["spec"], job["solver"], job["tol"], Path(job["out"])
    density = 0.1 if spec["data"].get("density") else None
    tiny = dict(spec, data=dict(n_samples=50, n_features=100, n_active=2, density=density))
    tiny["n_path"] = min(spec.get("n_path") or 3, 3)
    prepare(tiny)["runners"][name](tol)
    run = prepare(spec)["runners"][name]
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)
    base = vm_kib("self", "VmHWM")
    write_atomic(out / "ready.json", json.dumps({"baseline_kib": base}))
    start = time.perf_counter()
    ws = run(tol)
    seconds = time.perf_counter() - start
    peak = vm_kib("self", "VmHWM") - base
    np.save(out / "w.npy", np.array(ws))
    write_atomic(out / "result.json", json.dumps({"seconds": seconds, "peak_kib": peak}))


def fit_isolated(spec: dict, name: str, tol: float, timeout: float) -> dict:
    """One fit of solver ``name`` at ``tol`` in a fresh process group (:func:`child`).

    The fit gets ``timeout`` wall seconds from the moment the child is ready (the set-up before
    that, ``SETUP_SECONDS``). Returns ``seconds``, ``peak_kib`` (above the baseline) and ``ws``; on
    expiry the whole process group is killed and ``timeout`` is set, with ``peak_kib`` the child's
    ``VmHWM`` read just before the kill (a lower bound of the fit's peak); on a failure,
    ``error``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        job = json.dumps(dict(spec=spec, solver=name, tol=tol, out=tmp))
        with open(out / "stderr", "w") as err:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child", job],
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # its own process group, killed as a whole
            )
        try:
            ready, deadline = False, time.monotonic() + SETUP_SECONDS
            while proc.poll() is None:
                if not ready and (out / "ready.json").exists():
                    ready, deadline = True, time.monotonic() + timeout
                if time.monotonic() > deadline:
                    hwm = vm_kib(proc.pid, "VmHWM")
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    if not ready:
                        return dict(error=f"set-up exceeded {SETUP_SECONDS:g} s")
                    base = json.loads((out / "ready.json").read_text())["baseline_kib"]
                    return dict(timeout=True, peak_kib=hwm - base)
                time.sleep(0.05)
        finally:
            if proc.poll() is None:  # interrupted: leave no child behind
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.returncode != 0:
            lines = (out / "stderr").read_text().strip().splitlines() or ["no message"]
            return dict(error=f"exit {proc.returncode}: {lines[-1][:80]}")
        res = json.loads((out / "result.json").read_text())
        res["ws"] = list(np.load(out / "w.npy"))
        return res


def run_isolated(spec: dict, timeout: float, repeats: int, summary: dict) -> None:
    """Calibrate and time every solver with one fresh process per fit (:func:`fit_isolated`).

    Ours first at its tightest tol, then the peers on ``ISOLATED_PEER_TOLS`` (loosest first,
    stopping at the first fit within TARGET of the best so far, or at the first timeout), then
    ours on ``OUR_TOLS`` loosest first. Each solver is judged against the final best: its loosest
    fit within TARGET (then ``repeats - 1`` more fits at that tol), else its tightest fit, flagged
    ``*``; a timeout makes its time a lower bound. Failed extra fits are left out of the times.
    """
    inst = prepare(spec)
    if inst is None:
        return
    values = inst["values"]
    fits: dict[str, list[tuple[float, dict]]] = {name: [] for name in inst["runners"]}
    best: list[float] | None = None

    def fit(name: str, tol: float) -> dict:
        nonlocal best
        res = fit_isolated(spec, name, tol, timeout)
        if "ws" in res:
            res["vals"] = values(res["ws"])
            best = res["vals"] if best is None else [min(a, b) for a, b in zip(best, res["vals"])]
        fits[name].append((tol, res))
        return res

    ours = [name for name in fits if name in OURS]
    for name in ours:
        fit(name, OUR_TOLS[-1])
    for name in fits:
        if name in OURS:
            continue
        for tol in ISOLATED_PEER_TOLS:
            res = fit(name, tol)
            if "vals" not in res or within(res["vals"], best):
                break
    for name in ours:
        for tol in OUR_TOLS[:-1]:
            res = fit(name, tol)
            if "vals" not in res or within(res["vals"], best):
                break
    rows = {}
    for name, tried in fits.items():
        usable = [(tol, res) for tol, res in tried if "error" not in res]
        if not usable:
            print(f"  {name}: n/a ({tried[0][1]['error']})")
            continue
        done = [(tol, res) for tol, res in usable if "vals" in res]
        ok = [(tol, res) for tol, res in done if within(res["vals"], best)]
        # the loosest fit that reaches the target, else the tightest one tried (maybe timed out)
        tol, res = max(ok, key=lambda t: t[0]) if ok else min(usable, key=lambda t: t[0])
        row = dict(tol=tol, reached=bool(ok), peak=(res["peak_kib"], 1 if "timeout" in res else 0))
        last = res if "vals" in res else (min(done, key=lambda t: t[0])[1] if done else None)
        row["vals"] = last["vals"] if last else None
        if "timeout" in res:
            row["over"] = timeout
        else:
            extra = [fit_isolated(spec, name, tol, timeout) for _ in range(repeats - 1)]
            extra = [r for r in extra if "seconds" in r]
            row["times"] = [res["seconds"]] + [r["seconds"] for r in extra]
            row["peak"] = (max([res["peak_kib"]] + [r["peak_kib"] for r in extra]), 0)
        rows[name] = row
    prox = dict(fits["dgating prox"]).get(OUR_TOLS[-1], {})
    header = (
        f"isolated: 1 fresh process per fit, {repeats} fit(s) at the chosen tol, "
        f"timeout {timeout:g} s; peak = VmHWM above the post-warm-up level"
    )
    report(spec, inst, rows, best, prox.get("ws"), header, summary)


# --- the table ------------------------------------------------------------------------------------


def bounded(num: tuple[float, int], den: tuple[float, int]) -> tuple[float, int | None]:
    """``num / den`` for (value, sign) pairs: sign 0 exact, +1 the true value is at least the
    value, -1 at most; None: neither (a bound over a bound of the same side)."""
    (a, sa), (b, sb) = num, den
    if b == 0.0:  # e.g. a peak below the page granularity
        return np.nan, 0
    return a / b, (None if sa and sb and sa == sb else (sa or -sb))


def show(pair: tuple[float, int | None], fmt: str, strict: bool = True) -> str:
    """A (value, sign) pair as text: ``> 600``, ``< 0.002`` (``>=``/``<=`` unless ``strict``)."""
    value, sign = pair
    if sign is None or np.isnan(value):
        return "?"
    mark = {0: "", 1: ">", -1: "<"}[sign] + ("" if strict or not sign else "=")
    return f"{mark}{value:{fmt}}"


def aggregate(pairs: list[tuple[float, int | None]], how: Callable) -> tuple[float, int | None]:
    """``how`` (median or max, both monotone) of (value, sign) pairs: a bound of the same side if
    every bound is on one side, None if bounds of both sides (or unknowns) enter."""
    signs = {s for _, s in pairs}
    sign = None if None in signs or {1, -1} <= signs else max(signs, key=abs)
    return float(how([v for v, _ in pairs])), sign


def report(spec, inst, rows, best, w_ref, header, summary) -> None:
    """Print the instance's table and add its ratios to ``summary``."""
    peers = [name for name in rows if name not in OURS]
    if not peers:
        print(f"\n{spec['label']}: no peer ran; skipped")
        return

    def seconds(row, how):
        return (float(how(row["times"])), 0) if "times" in row else (row["over"], 1)

    best_peer = min((seconds(rows[p], np.median) for p in peers), key=lambda t: (t[1], t[0]))
    support = "?" if w_ref is None else np.count_nonzero(inst["problem"].groups.norms(w_ref[-1]))
    frac, memory = spec["frac"], any("peak" in row for row in rows.values())
    where = f"{spec['label']}, " + (f"{frac} lam_max" if frac else "path") + f", D={spec['depth']}"
    print(
        f"\n{spec['label']} [loss={spec['loss']}, D={spec['depth']}, "
        + (
            f"lam={frac} lam_max, {support} active groups]"
            if frac
            else f"{len(inst['lams'])} lambdas]"
        )
        + f"\n  ({header})"
    )
    mem_peers = [p for p in peers if "peak" in rows[p]] if memory else []
    print(
        f"  {'solver':30s} {'median s':>9s} {'worst s':>9s} {'ratio':>9s} {'worst':>9s} "
        f"{'max rel dF':>10s}  {'tol':7s}"
        + (f" {'peak MiB':>9s}" if memory else "")
        + "".join(f" {'/' + p.split()[0]:>8s}" for p in mem_peers)
    )
    for name, row in rows.items():
        med, worst = seconds(row, np.median), seconds(row, np.max)
        rel = max((v - b) / abs(b) for v, b in zip(row["vals"], best)) if row["vals"] else np.nan
        flag = "" if row["reached"] or "over" in row else " *"
        ratios = [show(bounded(t, best_peer), ".3g") for t in (med, worst)]
        line = (
            f"  {name:30s} {show(med, '.4f'):>9s} {show(worst, '.4f'):>9s} "
            f"{ratios[0]:>9s} {ratios[1]:>9s} "
            f"{show((rel, 0), '.1e'):>10s}  {row['tol']:.0e}{flag:2s}"
        )
        if memory:
            peak = (row["peak"][0] / 1024, row["peak"][1])
            line += f" {show(peak, '.1f', strict=False):>9s}"
            for p in mem_peers:
                other = (rows[p]["peak"][0] / 1024, rows[p]["peak"][1])
                ratio = (1.0, 0) if p == name else bounded(peak, other)
                line += f" {show(ratio, '.3g', strict=False):>8s}"
                if name in OURS and not np.isnan(ratio[0]):
                    key = f"{name} peak memory / {p.split()[0]}"
                    summary.setdefault(key, []).append((ratio, where))
        print(line)
        if name in OURS:
            key = f"{name} time{' D=2' if spec['depth'] == 2 else ' D>=3'}"
            summary.setdefault(key, []).append((bounded(med, best_peer), where))
    if "dgating gated" in rows and "dgating prox" in rows:
        g_over_p = bounded(
            seconds(rows["dgating gated"], np.median), seconds(rows["dgating prox"], np.median)
        )
        print(f"  gated / prox: {show(g_over_p, '.2f')}")
        summary.setdefault("gated / prox time", []).append((g_over_p, where))


def instances(quick: bool, n_path: int) -> list[dict]:
    a = dict(n_samples=500, n_features=1000, rho=0.6)
    b = dict(n_samples=2000, n_features=5000, rho=0.3)
    c = dict(n_samples=200, n_features=20000, rho=0.6)
    e = dict(n_samples=10_000, n_features=500, rho=0.6)  # n >> p
    sparse_big = dict(n_samples=2000, n_features=100_000, density=1e-3, n_active=20)
    dense_big = dict(n_samples=200, n_features=100_000, rho=0.6, n_active=20)
    sparse_mid = dict(n_samples=1000, n_features=20_000, density=1e-2, n_active=10)
    out = []

    def add(label, data, frac, loss="squared", depth=2, **kw):
        out.append(dict(label=label, data=data, frac=frac, loss=loss, depth=depth, **kw))

    add("A n=500 p=1000", a, 0.1)
    add("A n=500 p=1000", a, 0.01)
    add("A n=500 p=1000", a, 0.1, depth=3)
    add("A n=500 p=1000", a, 0.2, depth=4)
    add("A logistic", a, 0.1, loss="logistic")
    add("sparse n=1000 p=2e4", sparse_mid, 0.1)
    add("path A", a, None, n_path=n_path if not quick else 20)
    if quick:
        return out
    add("B n=2000 p=5000", b, 0.1)
    add("B n=2000 p=5000", b, 0.01)
    add("C n=200 p=20000", c, 0.1)
    add("C n=200 p=20000", c, 0.01)
    add("E n=10000 p=500", e, 0.1)
    add("E n=10000 p=500", e, 0.01)
    add("E n=10000 p=500", e, 0.05, depth=3)
    add("E logistic", e, 0.01, loss="logistic")
    add("A logistic", a, 0.01, loss="logistic")
    add("A logistic", a, 0.1, loss="logistic", depth=3)
    add("B n=2000 p=5000", b, 0.05, depth=3)
    add("B n=2000 p=5000", b, 0.1, depth=4)
    add("sparse n=2000 p=1e5", sparse_big, 0.1, isolate=True)
    add("sparse n=2000 p=1e5", sparse_big, 0.01, isolate=True)
    add("dense n=200 p=1e5", dense_big, 0.1, isolate=True)
    # skglm's calibration over 50 non-convex solves ran for more than 35 minutes: isolated.
    add("path A, D=3", a, None, depth=3, n_path=n_path, routes=["dgating prox"], isolate=True)
    return out


# --- numba compilation in fresh processes ----------------------------------------------------

JIT = (
    "import time, numpy as np; t = time.perf_counter(); "
    "from dgating import GroupedProblem, solve_prox; t1 = time.perf_counter(); "
    "rng = np.random.default_rng(0); X = rng.standard_normal((50, 40)); "
    "p = GroupedProblem(X, X[:, 0], np.arange(40) // 10); solve_prox(p, {depth}, 0.1); "
    "t2 = time.perf_counter(); solve_prox(p, {depth}, 0.1); t3 = time.perf_counter(); "
    "print(t1 - t, t2 - t1, t3 - t2)"
)


def jit_report(env: dict) -> None:
    print("\nnumba compilation (fresh processes; import s, first solve s, second solve s):")
    for depth in (2, 4):
        with tempfile.TemporaryDirectory() as cache:
            cold_env = dict(env, NUMBA_CACHE_DIR=cache)
            code = JIT.format(depth=depth)
            cold = subprocess.run(
                [sys.executable, "-c", code], env=cold_env, capture_output=True, text=True
            ).stdout.split()
            warm = subprocess.run(
                [sys.executable, "-c", code], env=cold_env, capture_output=True, text=True
            ).stdout.split()
        print(f"  D={depth}: empty cache {' / '.join(cold)}; cache filled {' / '.join(warm)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a subset of the instances")
    parser.add_argument("--repeats", type=int, default=5, help="warm repeats per solver")
    parser.add_argument("--path", type=int, default=50, help="lambdas on the path rows")
    parser.add_argument("--only", type=str, default="", help="run instances whose label has this")
    parser.add_argument("--jit", action="store_true", help="report numba compile times")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="wall seconds per fit on isolated instances"
    )
    parser.add_argument(
        "--isolated-repeats", type=int, default=1, help="fits per solver at its tol, isolated rows"
    )
    parser.add_argument("--child", type=str, default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # the fresh process of one isolated fit
        child(json.loads(args.child))
        return 0
    import warnings

    warnings.filterwarnings("ignore")  # peers' convergence warnings at loose tol
    env = dict(os.environ)
    print(
        f"objective target: within {TARGET:g} relative of the best objective found by any solver; "
        f"BLAS threads={os.environ['OPENBLAS_NUM_THREADS']}; repeats={args.repeats} "
        f"(isolated rows: {args.isolated_repeats} per solver, timeout {args.timeout:g} s)"
    )
    print("path rows: dgating.solve_path for our routes; peers refit with warm starts")
    summary: dict = {}
    try:
        for spec in instances(args.quick, args.path):
            if args.only and args.only not in spec["label"]:
                continue
            if spec.get("isolate"):
                run_isolated(spec, args.timeout, args.isolated_repeats, summary)
            else:
                run_instance(spec, args.repeats, summary)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(
        "\nsummary (ratio of medians to the best peer per instance; median and worst over "
        "instances; < > <= >= mark bounds):"
    )
    for key, rows in summary.items():
        pairs = [r for r, _ in rows]
        worst = rows[int(np.argmax([v for v, _ in pairs]))]
        strict = "memory" not in key  # time-outs are strict bounds, peaks at a kill are not
        print(
            f"  {key:38s} median {show(aggregate(pairs, np.median), '.3g', strict):>9s}  "
            f"worst {show(aggregate(pairs, np.max), '.3g', strict):>9s} ({worst[1]})  "
            f"over {len(rows)} instances"
        )
    if args.jit:
        jit_report(env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
