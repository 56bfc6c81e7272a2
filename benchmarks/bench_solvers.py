r"""Benchmark of issue 2: time to relative stationarity :math:`10^{-8}` on group regression.

Problem: :math:`n = 500`, :math:`p = 1000`, 100 groups of 10, correlated Gaussian design
(Toeplitz covariance :math:`\rho^{|i-j|}`, :math:`\rho = 0.6`, drawn as an AR(1) recursion across
the columns), 10 true groups, signal-to-noise ratio 3; :math:`\lambda` is a fixed fraction of
:math:`\lambda_{\max} = \max_j \|\nabla_j L_0(0)\|` chosen to give about 10 active groups.

* ``D = 2`` (group lasso): ``dgating.solve_prox`` and ``dgating.solve_gated`` against celer's and
  skglm's ``GroupLasso`` (``alpha = lam``, ``fit_intercept=False``).
* ``D = 3, 4`` (:math:`L_{2,2/3}`, :math:`L_{2,1/2}`): no library ships a feature-group
  :math:`L_{2,q}` penalty with :math:`q < 1`, so :func:`skglm_group_lq` writes one in skglm's
  custom-penalty interface (skglm's own scalar proxes ``prox_2_3`` / ``prox_05``), solved by
  skglm's ``GroupBCD`` with ``ws_strategy="fixpoint"`` from the same ridge start as dgating.

Equal accuracy: every competitor's ``tol`` is the loosest of :math:`10^{-4}, \dots, 10^{-14}`
whose solution reaches relative stationarity :math:`\le 10^{-8}` in dgating's measure
(``PenalisedObjective(problem, depth, lam).stationarity``); the table reports that measure at
each solver's solution, and the objective gap to dgating's prox solution.

Timings: medians over ``--repeats`` warm calls (after one untimed call), interleaved across
solvers so that load changes hit all of them alike; ratios are solver time / fastest competitor.
The fresh-process rows time ``python -c`` end to end (interpreter start, imports, data loading and
the first fit, i.e. including numba compilation for skglm and celer's import), medians over
``--fresh`` processes. BLAS runs on one thread unless ``OPENBLAS_NUM_THREADS`` (and
``OMP_NUM_THREADS``) say otherwise: skglm and celer run single-threaded, and on a shared 2-core
machine multi-threaded BLAS oversubscribes (10x slower solves were seen under load).

Benchmark-only dependencies: ``pip install skglm celer``.

Usage::

    python benchmarks/bench_solvers.py                      # full run (a few minutes)
    python benchmarks/bench_solvers.py --fresh 1 --repeats 3
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
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

TARGET = 1e-8
#: lam / lam_max per depth (about 10 active groups on the default problem).
LAM_FRACTIONS = {2: 0.2, 3: 0.1, 4: 0.2}
TOLS = [10.0**-k for k in range(4, 15)]
GROUP_SIZE = 10


def make_problem(
    n_samples: int = 500,
    n_features: int = 1000,
    group_size: int = GROUP_SIZE,
    rho: float = 0.6,
    n_active: int = 10,
    snr: float = 3.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` with Toeplitz correlation ``rho**|i-j|`` between columns, ``y``, contiguous groups."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_samples, n_features))
    X = np.empty((n_samples, n_features))
    X[:, 0] = noise[:, 0]
    for j in range(1, n_features):  # AR(1) across columns: corr(x_i, x_j) = rho^|i-j|
        X[:, j] = rho * X[:, j - 1] + np.sqrt(1.0 - rho**2) * noise[:, j]
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


# --- the competitors, one callable per (solver, depth): fit(X, y, tol) -> w -----------------------


def fit_skglm_group_lasso(X, y, lam, tol):
    from skglm import GroupLasso

    model = GroupLasso(groups=GROUP_SIZE, alpha=lam, fit_intercept=False, tol=tol)
    return model.fit(X, y).coef_


def fit_celer_group_lasso(X, y, lam, tol):
    from celer import GroupLasso

    model = GroupLasso(groups=GROUP_SIZE, alpha=lam, fit_intercept=False, tol=tol, max_iter=1000)
    return model.fit(X, y).coef_


def fit_skglm_group_lq(X, y, lam, depth, tol, w_init):
    from skglm.datafits import QuadraticGroup
    from skglm.solvers import GroupBCD
    from skglm.utils.data import grp_converter

    grp_indices, grp_ptr = grp_converter(GROUP_SIZE, X.shape[1])
    penalty = skglm_group_lq()(lam, 2.0 / depth, grp_ptr, grp_indices)
    solver = GroupBCD(max_iter=1000, max_epochs=10_000, tol=tol, ws_strategy="fixpoint")
    w = w_init.copy()  # GroupBCD updates w_init in place
    return solver.solve(X, y, QuadraticGroup(grp_ptr, grp_indices), penalty, w, X @ w)[0]


# --- timing -------------------------------------------------------------------------------------


def interleaved_medians(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each call (seconds), after one untimed call each, interleaved."""
    for fn in calls.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def loosest_tol(fit: Callable[[float], np.ndarray], stationarity) -> tuple[float, np.ndarray]:
    """The loosest tol in :data:`TOLS` whose solution reaches ``stationarity <= TARGET``."""
    for tol in TOLS:
        w = fit(tol)
        if stationarity(w) <= TARGET:
            return tol, w
    return tol, w


def fresh_process(code: str, env: dict[str, str], n: int) -> float:
    """Median wall time of ``python -c code`` over ``n`` fresh interpreters (seconds)."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


LOAD = "import numpy as np; d = np.load({path!r}); X, y, groups = d['X'], d['y'], d['groups']; "
FRESH = {
    "dgating prox": LOAD + "from dgating import GroupedProblem, solve_prox; "
    "solve_prox(GroupedProblem(X, y, groups), {depth}, {lam!r})",
    "dgating gated": LOAD + "from dgating import GroupedProblem, solve_gated; "
    "solve_gated(GroupedProblem(X, y, groups), {depth}, {lam!r})",
    "skglm GroupLasso": LOAD + "from bench_solvers import fit_skglm_group_lasso as f; "
    "f(X, y, {lam!r}, {tol!r})",
    "celer GroupLasso": LOAD + "from bench_solvers import fit_celer_group_lasso as f; "
    "f(X, y, {lam!r}, {tol!r})",
    "skglm GroupBCD+GroupLq": LOAD + "from bench_solvers import fit_skglm_group_lq as f; "
    "from dgating import GroupedProblem, initial_point; "
    "w0 = initial_point(GroupedProblem(X, y, groups), {lam!r}); "
    "f(X, y, {lam!r}, {depth}, {tol!r}, w0)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="warm repeats per solver")
    parser.add_argument("--fresh", type=int, default=3, help="fresh processes per solver (0: skip)")
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--cli", action="store_true", help="also time `dgating solve --json`")
    args = parser.parse_args(argv)

    threads = os.environ["OPENBLAS_NUM_THREADS"]
    env = dict(os.environ)  # the fresh processes inherit the BLAS thread settings
    here = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))

    from dgating import GroupedProblem, initial_point, solve_gated, solve_prox
    from dgating.objectives import PenalisedObjective

    X, y, groups = make_problem()
    problem = GroupedProblem(X, y, groups)
    lam_max = float(problem.groups.norms(problem.grad(np.zeros(problem.n_features))).max())
    workdir = Path(tempfile.mkdtemp(prefix="dgating-bench-"))
    data = workdir / "bench.npz"
    np.savez(data, X=X, y=y, groups=groups)
    n, p = X.shape
    print(
        f"problem: n={n}, p={p}, {problem.n_groups} groups of {GROUP_SIZE}, rho=0.6; "
        f"lam_max={lam_max:.4f}; BLAS threads={threads}; repeats={args.repeats}; "
        f"fresh={args.fresh}; data {data}"
    )

    summary = {}
    for depth in args.depths:
        lam = LAM_FRACTIONS[depth] * lam_max
        obj = PenalisedObjective(problem, depth, lam)
        w0 = initial_point(problem, lam)

        def ours_prox(depth=depth, lam=lam):
            return solve_prox(GroupedProblem(X, y, groups), depth, lam)

        # The competitors' start: 0 for the group lasso, the shared ridge point w0 otherwise.
        start = np.zeros(p) if depth == 2 else w0
        start_name = "dgating prox (from 0)" if depth == 2 else "dgating prox (from w0)"

        def ours_prox_w0(depth=depth, lam=lam, start=start):
            return solve_prox(GroupedProblem(X, y, groups), depth, lam, w0=start)

        def ours_gated(depth=depth, lam=lam):
            return solve_gated(GroupedProblem(X, y, groups), depth, lam)

        calls: dict[str, Callable[[], object]] = {
            "dgating prox (ridge start incl.)": ours_prox,
            start_name: ours_prox_w0,
            "dgating gated (ridge start incl.)": ours_gated,
        }
        solutions = {
            "dgating prox (ridge start incl.)": ours_prox().w,
            start_name: ours_prox_w0().w,
            "dgating gated (ridge start incl.)": ours_gated().w,
        }
        tols, fresh_names = {}, ["dgating prox", "dgating gated"]
        if depth == 2:
            competitors = {
                "skglm GroupLasso": fit_skglm_group_lasso,
                "celer GroupLasso": fit_celer_group_lasso,
            }
            for name, fit in competitors.items():
                tol, w = loosest_tol(lambda t, fit=fit: fit(X, y, lam, t), obj.stationarity)
                tols[name], solutions[name] = tol, w
                calls[name] = lambda fit=fit, tol=tol: fit(X, y, lam, tol)
                fresh_names.append(name)
            note = "competitors start at 0"
        else:
            name = "skglm GroupBCD+GroupLq"
            tol, w = loosest_tol(
                lambda t: fit_skglm_group_lq(X, y, lam, depth, t, w0), obj.stationarity
            )
            tols[name], solutions[name] = tol, w
            calls[name] = lambda tol=tol: fit_skglm_group_lq(X, y, lam, depth, tol, w0)
            fresh_names.append(name)
            note = "skglm starts at the same ridge point w0 (its time excludes computing w0)"

        medians = interleaved_medians(calls, args.repeats)
        competitor_names = [c for c in calls if not c.startswith("dgating")]
        best = min(medians[c] for c in competitor_names)
        ref_obj = obj.value(solutions["dgating prox (ridge start incl.)"])
        print(f"\nD = {depth}: lam = {lam:.4f} ({LAM_FRACTIONS[depth]} lam_max); {note}")
        print(
            f"  {'solver':36s} {'median ms':>10s} {'/ best':>7s} {'rel. stat.':>10s} "
            f"{'dF':>9s} {'groups':>6s}  tol"
        )
        rows = {}
        for name in calls:
            w = solutions[name]
            stat, d_obj = obj.stationarity(w), obj.value(w) - ref_obj
            k = int(np.count_nonzero(problem.groups.norms(w)))
            rows[name] = dict(ms=1e3 * medians[name], ratio=medians[name] / best, stat=stat)
            print(
                f"  {name:36s} {1e3 * medians[name]:10.2f} {medians[name] / best:7.2f} "
                f"{stat:10.1e} {d_obj:9.1e} {k:6d}  {tols.get(name, '')}"
            )
        if args.fresh > 0:
            print(f"  fresh process, end to end (median of {args.fresh}):")
            fresh = {}
            for name in fresh_names:
                code = FRESH[name].format(path=str(data), depth=depth, lam=lam, tol=tols.get(name))
                fresh[name] = fresh_process(code, env, args.fresh)
            skglm_name = [c for c in fresh_names if c.startswith("skglm")][0]
            for name, sec in fresh.items():
                print(f"  {name:36s} {sec:9.2f} s  {sec / fresh[skglm_name]:6.3f} x {skglm_name}")
            rows["fresh"] = fresh
        summary[depth] = rows

    if args.cli:
        lam = LAM_FRACTIONS[2] * lam_max
        dgating = shutil.which("dgating") or "dgating"
        cmd = [dgating, "solve", str(data), "--depth", "2", "--lam", repr(lam), "--json"]
        times, out = [], None
        for _ in range(max(args.fresh, 1)):
            start = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            out = proc
        result = json.loads(out.stdout)
        print(
            f"\nCLI: {' '.join(cmd[1:])}\n  exit {out.returncode}, wall {np.median(times):.2f} s "
            f"(median of {len(times)}), reported seconds {result['seconds']:.3f}, "
            f"converged {result['converged']}, stationarity {result['stationarity']:.1e}, "
            f"support {len(result['support'])} groups, objective {result['objective']:.10f}"
        )
    shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
