r"""The verification suite behind ``dgating verify``: every check on every problem and depth, plus
the negative controls.

For each problem of the suite (:mod:`~dgating.proofs_check.problems`) and each depth :math:`D`:

* direction (a): :func:`~dgating.solvers.solve_gated` from the documented start (ridge for
  linear models, ``init="random", seed=0`` for networks); at its minimiser the checks
  ``a.L_gradient``, ``a.L_hessian``, ``a.L_perturbation`` (it is a local minimiser of :math:`L`),
  ``a.balanced``, and the collapsed :math:`w` is certified for :math:`L_w`
  (``a.Lw_stationarity``, ``a.Lw_zero_groups``, ``a.Lw_hessian``, ``a.Lw_perturbation``);
* values: ``values.balanced`` (:math:`L = L_w` there) and ``values.unbalanced``
  (:math:`L > L_w` at unbalanced points with the same :math:`w`);
* direction (b): :func:`~dgating.solvers.solve_prox` from the same start; its minimiser is
  certified for :math:`L_w` (``b.Lw_*``, the premise) and its balanced lift checked for :math:`L`
  (``b.L_gradient``, ``b.L_hessian``, ``b.L_perturbation``, ``b.balanced``);
* ``multistart.certified``: both routes from ``n_starts`` random starts, all minimisers certified;
  the match rate and objective values go to :attr:`SuiteResult.multistart` (figure F7).

Then every negative control of :mod:`~dgating.proofs_check.controls`.

Every row has the ``status`` of its check (``pass``, ``fail``, ``inconclusive``,
``not-applicable``) and an :func:`~dgating.proofs_check.result.outcome`: ``"ok"`` when the status
is the expected one (``not-applicable`` counts as ``pass``), ``"inconclusive"`` for an
inconclusive check that was expected to pass, ``"unexpected"`` otherwise (a failed check, or a
negative control that was not flagged). The suite's ``status`` is ``"fail"`` when any row is
unexpected, else ``"inconclusive"`` when any row is inconclusive, else ``"pass"``; ``passed``
means no unexpected row. ``dgating verify`` exits with 1 on ``"fail"`` and, with ``--strict``,
on ``"inconclusive"`` (otherwise an inconclusive run exits 0 and says so on one stderr line).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import json_safe, write_atomic
from .._validation import InvalidParameterError, check_choice, check_depth
from ..objectives import GatedObjective
from ..solvers import initial_point, solve_gated, solve_prox
from .checks import check_gated_minimiser, check_penalised_minimiser, check_values
from .controls import CONTROLS, run_control
from .multistart import MultiStartResult, check_multistart, run_multistart
from .problems import PROBLEMS, SUITES, suite_problems
from .result import STATUSES, CheckResult, outcome, to_builtin

__all__ = ["SUITE_CONFIGS", "SuiteConfig", "SuiteResult", "SuiteRow", "run_suite"]


@dataclass(frozen=True)
class SuiteConfig:
    """Size of a suite: depths, multi-start count, random perturbation directions."""

    depths: tuple[int, ...]
    n_starts: int
    n_random: int


SUITE_CONFIGS = {
    "quick": SuiteConfig(depths=(2, 3, 4), n_starts=3, n_random=24),
    "full": SuiteConfig(depths=(2, 3, 4, 5), n_starts=6, n_random=48),
}


@dataclass(frozen=True)
class SuiteRow:
    """One check at one problem (or negative control) and depth.

    ``expect`` is ``"pass"`` for the checks of the suite and the expected status for the checks
    of a negative control; ``outcome`` (``"ok"``, ``"inconclusive"`` or ``"unexpected"``, see the
    module docstring) says whether the status matches; ``ok`` is ``outcome == "ok"``.
    """

    problem: str
    depth: int
    lam: float
    check: CheckResult
    kind: str = "check"  # "check" or "control"
    expect: str = "pass"

    @property
    def outcome(self) -> str:
        return outcome(self.check.status, self.expect)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def to_dict(self) -> dict:
        return {
            "problem": self.problem,
            "depth": self.depth,
            "lam": self.lam,
            "kind": self.kind,
            "expect": self.expect,
            "ok": self.ok,
            "outcome": self.outcome,
            **self.check.to_dict(),
        }


@dataclass(frozen=True)
class SuiteResult:
    """Outcome of :func:`run_suite`.

    Attributes
    ----------
    suite : str
    depths : tuple of int
    rows : tuple of SuiteRow
    multistart : tuple of MultiStartResult
        Per problem and depth: objective values and distances of the two routes' minimisers.
    runs : tuple of dict
        Per problem and depth: the two solvers' outcomes (objective, support, stationarity,
        seconds, distance between the two minimisers).
    seconds : float
        Wall-clock time of the suite.
    """

    suite: str
    depths: tuple[int, ...]
    rows: tuple[SuiteRow, ...]
    multistart: tuple[MultiStartResult, ...]
    runs: tuple[dict, ...]
    seconds: float
    config: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No unexpected row: no check failed and every negative control was flagged."""
        return not self.failures

    @property
    def failures(self) -> list[SuiteRow]:
        """Rows with an unexpected status."""
        return [r for r in self.rows if r.outcome == "unexpected"]

    @property
    def inconclusive(self) -> list[SuiteRow]:
        """Rows expected to pass whose check is inconclusive."""
        return [r for r in self.rows if r.outcome == "inconclusive"]

    @property
    def status(self) -> str:
        """``"fail"``, ``"inconclusive"`` or ``"pass"`` (see the module docstring)."""
        if self.failures:
            return "fail"
        return "inconclusive" if self.inconclusive else "pass"

    def status_counts(self, kind: str = "check") -> dict[str, int]:
        """Number of rows of ``kind`` (``"check"`` or ``"control"``) per status."""
        statuses = [r.check.status for r in self.rows if r.kind == kind]
        return {s: statuses.count(s) for s in STATUSES}

    def to_dict(self) -> dict:
        return to_builtin(
            {
                "suite": self.suite,
                "depths": list(self.depths),
                "status": self.status,
                "passed": self.passed,
                "status_counts": self.status_counts("check"),
                "control_status_counts": self.status_counts("control"),
                "n_rows": len(self.rows),
                "n_failures": len(self.failures),
                "n_inconclusive": len(self.inconclusive),
                "seconds": self.seconds,
                "config": self.config,
                "rows": [r.to_dict() for r in self.rows],
                "runs": list(self.runs),
                "multistart": [m.to_dict() for m in self.multistart],
            }
        )

    @classmethod
    def from_dict(cls, data: dict) -> SuiteResult:
        """Rebuild a result from :meth:`to_dict` (or the parsed JSON of :meth:`to_json`, where
        non-finite numbers are ``null``), e.g. to plot figure F7 from a saved run."""

        def num(x) -> float:
            return float("nan") if x is None else float(x)

        rows = tuple(
            SuiteRow(
                r["problem"],
                int(r["depth"]),
                num(r["lam"]),
                CheckResult(
                    r["name"],
                    r["status"],
                    num(r["margin"]),
                    num(r["tol"]),
                    dict(r["details"]),
                ),
                kind=r["kind"],
                expect=r["expect"],
            )
            for r in data["rows"]
        )
        arrays = {
            "objective_gated": float,
            "objective_prox": float,
            "distance": float,
            "same": bool,
            "same_value": bool,
            "certified_gated": bool,
            "certified_prox": bool,
            "inconclusive_gated": bool,
            "inconclusive_prox": bool,
            "support_gated": int,
            "support_prox": int,
        }
        ms = tuple(
            MultiStartResult(
                problem=m["problem"],
                depth=int(m["depth"]),
                lam=float(m["lam"]),
                seeds=tuple(m["seeds"]),
                match_tol=float(m["match_tol"]),
                **{
                    k: np.array([np.nan if v is None else v for v in m.get(k, [])], dtype=t)
                    for k, t in arrays.items()
                },
            )
            for m in data["multistart"]
        )
        return cls(
            suite=data["suite"],
            depths=tuple(data["depths"]),
            rows=rows,
            multistart=ms,
            runs=tuple(data["runs"]),
            seconds=float(data["seconds"]),
            config=dict(data.get("config", {})),
        )

    def to_json(self) -> str:
        """Strict JSON (NaN and infinities become ``null``)."""
        return json.dumps(json_safe(self.to_dict()), indent=1)

    def to_csv(self) -> str:
        """Tidy CSV, one line per row: problem, depth, lam, kind, check, expect, status, passed,
        ok, value, margin, tol."""
        buf = io.StringIO()
        cols = ["problem", "depth", "lam", "kind", "check", "expect", "status", "passed", "ok"]
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols + ["value", "margin", "tol"])
        for r in self.rows:
            c = r.check
            writer.writerow(
                [r.problem, r.depth, repr(r.lam), r.kind, c.name, r.expect, c.status, c.passed]
                + [r.ok]
                + [repr(float(c.value)), repr(float(c.margin)), repr(float(c.tol))]
            )
        return buf.getvalue()

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``verify_<suite>.json`` and ``verify_<suite>.csv`` atomically into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for ext, text in (("json", self.to_json()), ("csv", self.to_csv())):
            paths.append(write_atomic(out / f"verify_{self.suite}.{ext}", text))
        return paths

    def table(self) -> str:
        """Plain-text report: one block per check family, rows = problem x depth, cells = the
        measured value (``!`` marks an unexpected outcome); then the solver summary and the
        negative controls."""
        return _format_table(self)


# --------------------------------------------------------------------------------------------
# Tasks (top-level functions so that they can run in worker processes)
# --------------------------------------------------------------------------------------------
def _init_worker() -> None:
    # Tiny networks: intra-op threads only add contention (and make results thread-dependent).
    import torch

    torch.set_num_threads(1)


def _run_problem(name: str, depth: int, n_starts: int, n_random: int):
    start = time.perf_counter()
    spec = PROBLEMS[name]
    problem = spec.problem()
    lam = spec.lam(depth)
    w0 = None
    if spec.kind == "network":  # the origin is a saddle of a network's L0: start at random
        w0 = initial_point(problem, lam, init="random", seed=0, init_scale=spec.init_scale)
    objective = GatedObjective(problem, depth, lam)
    ra = solve_gated(problem, depth, lam, w0=w0)
    rb = solve_prox(problem, depth, lam, w0=w0)
    checks = check_gated_minimiser(objective, ra.params, n_random=n_random, prefix="a.", seed=1)
    checks += check_penalised_minimiser(problem, depth, lam, ra.w, n_random=n_random, seed=2)
    checks += check_values(objective, ra.params, seed=3)
    checks += check_penalised_minimiser(problem, depth, lam, rb.w, n_random=0, prefix="b.")[:3]
    lifted = objective.gating.lift(rb.w)
    checks += check_gated_minimiser(objective, lifted, n_random=n_random, prefix="b.", seed=4)
    ms = run_multistart(
        problem, depth, lam, seeds=range(n_starts), init_scale=spec.init_scale, name=name
    )
    checks.append(check_multistart(ms))
    groups = problem.groups

    def info(r) -> dict:
        return {
            "objective": r.objective,
            "support": len(r.support(groups)),
            "stationarity": r.stationarity,
            "max_imbalance": r.max_imbalance,
            "converged": r.converged,
            "iterations": r.iterations,
            "seconds": r.seconds,
        }

    run = {
        "problem": name,
        "depth": depth,
        "lam": lam,
        "n_groups": groups.n_groups,
        "n_features": groups.n_features,
        "n_params": objective.gating.n_params,
        "gated": info(ra),
        "prox": info(rb),
        "distance": float(np.linalg.norm(ra.w - rb.w)) / max(1.0, float(np.linalg.norm(rb.w))),
        "task_seconds": time.perf_counter() - start,
    }
    rows = [SuiteRow(name, depth, lam, c) for c in checks]
    return rows, ms, run


def _run_control(name: str, n_random: int):
    res = run_control(name, n_random=n_random)
    rows = [
        SuiteRow(res.name, res.depth, res.lam, c, kind="control", expect=res.expect[c.name])
        for c in res.checks
    ]
    return rows, None, None


def run_suite(
    suite: str = "quick",
    depths: Sequence[int] | None = None,
    *,
    problems: Sequence[str] | None = None,
    controls: bool = True,
    n_starts: int | None = None,
    n_jobs: int = 1,
    progress: bool = True,
) -> SuiteResult:
    r"""Run the verification suite.

    Parameters
    ----------
    suite : {"quick", "full"}, default="quick"
        ``quick``: three linear models and one small network, 3 random starts; ``full``: every
        problem of :data:`~dgating.proofs_check.problems.PROBLEMS`, 6 random starts.
    depths : sequence of int, optional
        Depths :math:`D \ge 2`; default ``(2, 3, 4)`` (quick) or ``(2, 3, 4, 5)`` (full).
    problems : sequence of str, optional
        Restrict to these problem names.
    controls : bool, default=True
        Run the negative controls.
    n_starts : int, optional
        Random starts of the multi-start statistics (default from the suite).
    n_jobs : int, default=1
        Worker processes (each task is one problem and depth, or one control).
    progress : bool, default=True
        Report progress on stderr: a bar on a terminal, one line per step otherwise.

    Returns
    -------
    SuiteResult
    """
    check_choice(suite, "suite", SUITES)
    config = SUITE_CONFIGS[suite]
    depths = config.depths if depths is None else tuple(dict.fromkeys(depths))
    depths = tuple(check_depth(d) for d in depths)
    if not depths:
        raise InvalidParameterError("`depth` must list at least one depth >= 2; got none.")
    specs = suite_problems(suite)
    if problems is not None:
        for name in problems:
            check_choice(name, "problem", PROBLEMS)
        specs = [PROBLEMS[name] for name in problems]
    n_starts = config.n_starts if n_starts is None else int(n_starts)
    tasks = [(_run_problem, (s.name, d, n_starts, config.n_random)) for s in specs for d in depths]
    if controls:
        tasks += [(_run_control, (name, config.n_random)) for name in CONTROLS]
    start = time.perf_counter()
    outputs = _execute(tasks, n_jobs, progress, desc=f"dgating verify ({suite})")
    rows, ms, runs = [], [], []
    for r, m, run in outputs:
        rows += r
        if m is not None:
            ms.append(m)
            runs.append(run)
    return SuiteResult(
        suite=suite,
        depths=depths,
        rows=tuple(rows),
        multistart=tuple(ms),
        runs=tuple(runs),
        seconds=time.perf_counter() - start,
        config={
            "problems": [s.name for s in specs],
            "controls": list(CONTROLS) if controls else [],
            "n_starts": n_starts,
            "n_random": config.n_random,
            "n_jobs": n_jobs,
        },
    )


def _execute(tasks: list, n_jobs: int, progress: bool, desc: str) -> list:
    import torch

    from .._progress import Progress

    bar = Progress(len(tasks), desc, enabled=progress)
    results: list = [None] * len(tasks)
    if n_jobs <= 1:
        threads = torch.get_num_threads()
        _init_worker()
        try:
            for i, (fn, args) in enumerate(tasks):
                bar.set_postfix_str(str(args[0]) + (f" D={args[1]}" if fn is _run_problem else ""))
                results[i] = fn(*args)
                bar.update()
        finally:
            torch.set_num_threads(threads)
    else:
        from concurrent.futures import as_completed

        from .._workers import worker_pool

        # spawn (torch and fork do not mix); workers exit if this process is killed
        with worker_pool(n_jobs, initializer=_init_worker) as pool:
            futures = {pool.submit(fn, *args): i for i, (fn, args) in enumerate(tasks)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update()
    bar.close()
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
_FAMILIES = (
    (
        "Direction (a): smooth-solver minimiser of L -> certified local minimiser of L_w",
        ("a.L_gradient", "a.L_hessian", "a.L_perturbation", "a.balanced")
        + ("a.Lw_stationarity", "a.Lw_zero_groups", "a.Lw_hessian", "a.Lw_perturbation"),
    ),
    (
        "Direction (b): prox minimiser of L_w, lifted -> local minimiser of L",
        ("b.Lw_stationarity", "b.Lw_zero_groups", "b.Lw_hessian")
        + ("b.L_gradient", "b.L_hessian", "b.L_perturbation", "b.balanced"),
    ),
    (
        "Values and multi-start",
        ("values.balanced", "values.unbalanced", "values.gap_formula", "multistart.certified"),
    ),
)


_LABELS = {
    "values.balanced": "L=Lw balanced",
    "values.unbalanced": "L>Lw unbal.",
    "values.gap_formula": "L-Lw=AM-GM",
    "balanced": "balanced",
    "L_gradient": "L grad",
    "L_hessian": "L hess",
    "L_perturbation": "L perturb",
    "Lw_stationarity": "Lw stat",
    "Lw_zero_groups": "Lw zero-grp",
    "Lw_hessian": "Lw hess",
    "Lw_perturbation": "Lw perturb",
    "certified": "ms certified",
}


_MARKS = {"ok": "", "inconclusive": "?", "unexpected": "!"}


def _cell(row: SuiteRow | None) -> str:
    if row is None:
        return "-"
    v = row.check.value
    if row.check.status == "not-applicable":
        return "n/a"
    text = f"{v:.1e}" if np.isfinite(v) else str(v)
    return text + _MARKS[row.outcome]


def _format_table(res: SuiteResult) -> str:
    lines = []
    checks = [r for r in res.rows if r.kind == "check"]
    index = {(r.problem, r.depth, r.check.name): r for r in checks}
    keys = list(dict.fromkeys((r.problem, r.depth, r.lam) for r in checks))
    for title, names in _FAMILIES:
        lines.append(f"{title}")
        tols = {n: next((r.check.tol for r in checks if r.check.name == n), np.nan) for n in names}
        head = f"{'problem':18s} {'D':>2s} {'lam':>6s}"
        head += "".join(
            f" {_LABELS.get(n, _LABELS.get(n.split('.', 1)[1], n)):>13s}" for n in names
        )
        lines.append(head)
        lines.append(f"{'tol':29s}" + "".join(f" {tols[n]:>13.0e}" for n in names))
        for prob, depth, lam in keys:
            cells = "".join(f" {_cell(index.get((prob, depth, n))):>13s}" for n in names)
            lines.append(f"{prob:18s} {depth:>2d} {lam:>6g}{cells}")
        lines.append("")
    lines.append(
        "Solvers from the default start (support = non-zero groups; dist = ||w_gated - w_prox||"
        " / max(1, ||w_prox||)); multi-start: same minimiser (dist <= 1e-6) / same L_w value"
    )
    lines.append(
        f"{'problem':18s} {'D':>2s} {'J':>3s} {'supp a':>6s} {'supp b':>6s} {'L_w gated':>12s} "
        f"{'L_w prox':>12s} {'dist':>8s} {'stat a':>8s} {'stat b':>8s} {'t a':>6s} {'t b':>6s} "
        f"{'same w':>6s} {'same L':>6s}"
    )
    for run, ms in zip(res.runs, res.multistart):
        a, b = run["gated"], run["prox"]
        lines.append(
            f"{run['problem']:18s} {run['depth']:>2d} {run['n_groups']:>3d} {a['support']:>6d} "
            f"{b['support']:>6d} {a['objective']:>12.8f} {b['objective']:>12.8f} "
            f"{run['distance']:>8.1e} {a['stationarity']:>8.1e} {b['stationarity']:>8.1e} "
            f"{a['seconds']:>6.2f} {b['seconds']:>6.2f} "
            f"{int(ms.same.sum()):>3d}/{len(ms.seeds):<2d} "
            f"{int(ms.same_value.sum()):>3d}/{len(ms.seeds):<2d}"
        )
    controls = [r for r in res.rows if r.kind == "control"]
    if controls:
        lines.append("")
        lines.append("Negative controls (expect fail = must be flagged)")
        lines.append(
            f"{'control':22s} {'D':>2s} {'check':28s} {'expect':>6s} {'status':>14s} "
            f"{'value':>10s}  ok"
        )
        for r in controls:
            lines.append(
                f"{r.problem:22s} {r.depth:>2d} {r.check.name:28s} {r.expect:>6s} "
                f"{r.check.status:>14s} {r.check.value:>10.2e}  {'yes' if r.ok else 'NO'}"
            )
    counts = ", ".join(f"{n} {s}" for s, n in res.status_counts("check").items())
    verdict = {"pass": "PASSED", "fail": "FAILED", "inconclusive": "INCONCLUSIVE"}[res.status]
    lines.append("")
    lines.append("cells: ! unexpected outcome, ? inconclusive, n/a not applicable")
    lines.append(
        f"{len(res.rows)} rows; checks: {counts}; {len(res.failures)} unexpected outcomes, "
        f"{len(res.inconclusive)} inconclusive; {verdict} in {res.seconds:.1f} s"
    )
    return "\n".join(lines)
