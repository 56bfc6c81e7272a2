r"""``dgating reproduce``: derive, simulate, verify, train, draw, and write one HTML report.

The pipeline is a list of :class:`Step` objects. Each step's result is cached in
``<out>/cache/<step>-<hash>.json`` under a key that hashes its configuration (and the dgating
version and the step's code), so a second run reuses it; ``force=True`` recomputes everything.
Figures are cached the same way (``<out>/data/*.npz``, see :mod:`dgating.figures.registry`); the
simulation sweep and the network experiment are the data of figures F9 and F10 and are computed
once.

Output folder layout::

    report.html          self-contained (figures embedded as base64 PNG), opens offline
    figures/*.pdf|png    every figure, vector PDF and PNG
    data/*.npz           raw figure data
    tables/*.csv, *.json tidy tables: theory vs measured, checks, derivations, ...
    cache/*.json         step results
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import json_safe, write_atomic
from .registry import FIGURES, code_fingerprint, config_hash, render

__all__ = [
    "DEFAULT_OUT",
    "RUN_TIME",
    "RUN_TIME_MACHINE",
    "ReproduceResult",
    "STEPS",
    "Step",
    "reproduce",
]

#: Default output folder (relative to the working directory, never inside the package).
DEFAULT_OUT = "dgating-output"

#: Measured wall time of a first (uncached) run of each mode; the README and ``reproduce --help``
#: quote these strings (``tests/test_readme.py`` keeps them in step).
RUN_TIME = {"default": "about 18 minutes", "quick": "about 45 seconds"}
#: The machine the times were measured on (CPU time: 11 and 0.75 minutes).
RUN_TIME_MACHINE = "2 CPU cores shared with other jobs (load average about 3 to 7)"


@dataclass(frozen=True)
class Step:
    """One stage of the pipeline: ``run(config) -> JSON-ready dict``, with two configurations.

    A step with ``figure`` set computes that figure's data instead (cached with the figure, so the
    figure reuses it) and returns the figure's summary rows.
    """

    name: str
    description: str
    run: Callable[[dict], dict] | None = None
    config: dict = field(default_factory=dict)
    quick_config: dict = field(default_factory=dict)
    figure: str | None = None


@dataclass(frozen=True)
class StepRecord:
    """What happened to a step in this run."""

    name: str
    description: str
    config: dict
    seconds: float
    cached: bool
    status: str  # "ok" or "error: ..."
    result: dict = field(repr=False, default_factory=dict)
    #: Time the result took when it was computed (in this run or, if cached, an earlier one).
    compute_seconds: float | None = None


@dataclass(frozen=True)
class ReproduceResult:
    """Outcome of :func:`reproduce`."""

    out: Path
    report: Path
    steps: tuple[StepRecord, ...]
    figures: tuple
    n_checks: int
    n_failed: int
    seconds: float

    @property
    def passed(self) -> bool:
        """Every check passed and every step ran."""
        return self.n_failed == 0 and all(s.status == "ok" for s in self.steps)


# ---------------------------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------------------------


def _run_derive(config: dict) -> dict:
    """Symbolic derivations (:func:`dgating.theory.derivation.derive`) for each depth."""
    from ..theory.derivation import derive

    derivations, steps = [], []
    for depth in config["depths"]:
        der = derive(int(depth), int(config["group_size"]))
        derivations.append(der.to_json())
        for section, items in der.sections:
            for st in items:
                steps.append({"depth": int(depth), "section": section, **st.to_dict()})
    return {"derivations": derivations, "steps": steps}


def _run_verify(config: dict) -> dict:
    """Numerical checks of the correspondence of minima (:func:`dgating.proofs_check.run_suite`).

    Every row is a check at one problem and depth, or a negative control whose expected outcome
    is a failure; ``ok`` says whether the outcome is the expected one.
    """
    from ..proofs_check import run_suite

    depths = config.get("depths")
    res = run_suite(
        config["suite"],
        None if depths is None else tuple(depths),
        progress=True,
        n_jobs=int(config.get("n_jobs", 1)),
    )
    rows = []
    for r in res.rows:
        d = r.to_dict()
        details = d.pop("details", {}) or {}
        rows.append(
            {
                **{k: v for k, v in d.items() if not isinstance(v, dict | list)},
                "value": details.get("value", d.get("value")),
            }
        )
    runs = [_check_row(r) for r in res.runs]
    return {"rows": rows, "runs": runs, "passed": bool(res.passed), "seconds": res.seconds}


def _check_row(row: Any) -> dict:
    """A JSON-ready dict of one check (a dataclass, a mapping or an object with attributes)."""
    import dataclasses

    if dataclasses.is_dataclass(row):
        raw = dataclasses.asdict(row)
    elif isinstance(row, dict):
        raw = dict(row)
    else:
        raw = {k: getattr(row, k) for k in dir(row) if not k.startswith("_")}
    return json.loads(json.dumps(json_safe(raw), default=str))


def _run_figure_data(name: str, out: Path, quick: bool, force: bool) -> dict:
    from .registry import compute_cached

    spec = FIGURES[name]
    cfg = spec.quick_config if quick else spec.config
    data, path, cached = compute_cached(spec.name, spec.compute, cfg, out / "data", force=force)
    rows = spec.summary(data) if spec.summary else []
    return {"data": path.name, "summary": rows, "cached": cached}


STEPS: tuple[Step, ...] = (
    Step(
        "derive",
        "sympy derivations for each depth (dgating.theory)",
        _run_derive,
        {"depths": [2, 3, 4], "group_size": 2},
        {"depths": [2, 3], "group_size": 1},
    ),
    Step(
        "simulate",
        "gradient-flow sweep over (D, lam): measured vs theoretical rates (F9 data)",
        figure="rates",
    ),
    Step(
        "verify",
        "numerical checks of the correspondence of minima (dgating.proofs_check)",
        _run_verify,
        # The full suite (every problem, D = 2..5, networks) is the largest part of the default
        # run (see RUN_TIME); --quick keeps the quick suite at D = 2, 3.
        {"suite": "full", "n_jobs": 2},
        {"suite": "quick", "depths": [2, 3], "n_jobs": 2},
    ),
    Step(
        "nn",
        "sparsity-accuracy trade-offs on digits and wine (dgating.nn, F10 data)",
        figure="nn_tradeoff",
    ),
)


# ---------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------


def _run_step(
    step: Step,
    out: Path,
    quick: bool,
    force: bool,
    log: Callable[[str], None],
    ledger: dict[str, float],
):
    """Run (or load) one step; ``ledger`` maps cached artefacts to their compute times."""
    start = time.perf_counter()
    artefact = None
    if step.figure is not None:
        spec = FIGURES[step.figure]
        config = {"figure": step.figure, "quick": quick}
        try:
            result = _run_figure_data(step.figure, out, quick, force)
            cached, status, artefact = result["cached"], "ok", result["data"]
            config = {**config, **_config_dict(spec.quick_config if quick else spec.config)}
        except Exception as exc:  # a failing part is reported; the rest of the report still runs
            result, cached, status = {}, False, f"error: {type(exc).__name__}: {exc}"
    else:
        config = dict(step.quick_config if quick else step.config)
        key = config_hash(step.name, config, code_fingerprint(step.run))
        path = out / "cache" / f"{step.name}-{key}.json"
        artefact = path.name
        result = None if force else _cached_result(path)
        if result is not None:
            cached, status = True, "ok"
        else:
            cached = False
            try:
                result, status = step.run(config), "ok"
            except Exception as exc:  # reported in the log and the report
                result, status = {}, f"error: {type(exc).__name__}: {exc}"
            if status == "ok":
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, json.dumps(json_safe(result), default=str))
    seconds = time.perf_counter() - start
    if status == "ok" and not cached:
        ledger[artefact] = seconds
    compute = ledger.get(artefact) if status == "ok" else None
    src = (
        f"cached (computed in {compute:.1f} s)"
        if cached and compute is not None
        else ("cached" if cached else ("computed" if status == "ok" else status))
    )
    log(f"[{step.name:<22}] {seconds:7.2f} s  {src}")
    return StepRecord(step.name, step.description, config, seconds, cached, status, result, compute)


def _load_ledger(path: Path) -> dict[str, float]:
    """Compute times of the cached artefacts (``{}`` if absent or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}


def _cached_result(path: Path) -> dict | None:
    """The cached step result at ``path``, or ``None`` if it is missing or unreadable (a
    truncated or foreign file is recomputed, never trusted)."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def _config_dict(config: Any) -> dict:
    from .registry import config_to_dict

    return config_to_dict(config)


def reproduce(
    out: str | Path = DEFAULT_OUT,
    *,
    quick: bool = False,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    argv: list[str] | None = None,
) -> ReproduceResult:
    r"""Run every step and every figure, then write ``<out>/report.html`` and the tidy tables.

    Parameters
    ----------
    out : path, default="dgating-output"
        Output folder (created).
    quick : bool, default=False
        Small configurations everywhere (see :data:`RUN_TIME` for measured times).
    force : bool, default=False
        Ignore every cache and recompute.
    log : callable, optional
        Receives one progress line per step and figure (default: print to stderr).
    argv : list of str, optional
        The command line, recorded in the report.

    Returns
    -------
    ReproduceResult
    """
    from ._report import collect_checks, write_report, write_tables

    if log is None:

        def log(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    ledger_path = out / "cache" / "compute_times.json"
    ledger = _load_ledger(ledger_path)
    records = [_run_step(step, out, quick, force, log, ledger) for step in STEPS]
    # Figure data computed by a step in this run are fresh: do not recompute them twice.
    by_step = {
        s.figure: s.name
        for s, r in zip(STEPS, records, strict=True)
        if s.figure is not None and r.status == "ok" and not r.cached
    }
    figures, figure_compute = [], {}
    for name, spec in FIGURES.items():
        t0 = time.perf_counter()
        try:
            res = render(
                spec,
                out / "figures",
                quick=quick,
                force=force and name not in by_step,
                data_dir=out / "data",
            )
            if name in by_step:
                res = dataclasses.replace(res, cached=False)
                src = f"computed (data by step {by_step[name]})"
            elif res.cached:
                src = "cached"
            else:
                ledger[res.data_path.name] = res.seconds
                src = "computed"
            figure_compute[name] = ledger.get(res.data_path.name)
            figures.append(res)
        except Exception as exc:  # one broken figure must not hide the others
            figures.append((spec, f"{type(exc).__name__}: {exc}"))
            src = f"error: {type(exc).__name__}: {exc}"
        log(f"[{spec.label:<3} {name:<18}] {time.perf_counter() - t0:7.2f} s  {src}")
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(ledger_path, json.dumps(ledger, indent=1, sort_keys=True))
    seconds = time.perf_counter() - start
    checks = collect_checks(records, figures)
    n_failed = sum(1 for c in checks if not c["passed"])
    write_tables(out, records, figures, checks)
    report = write_report(
        out,
        records,
        figures,
        checks,
        quick=quick,
        seconds=seconds,
        argv=argv,
        figure_compute=figure_compute,
    )
    log(
        f"[{'report':<22}] {report}  ({len(checks) - n_failed}/{len(checks)} checks passed, "
        f"{seconds:.1f} s)"
    )
    return ReproduceResult(
        out, report, tuple(records), tuple(figures), len(checks), n_failed, seconds
    )
