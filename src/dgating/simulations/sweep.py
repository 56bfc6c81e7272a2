r"""Sweeps of gradient-flow rate measurements over a grid of configurations, resumable and parallel.

A :class:`SweepConfig` is the Cartesian grid of depths :math:`D`, strengths :math:`\lambda`, problem
sizes, seeds, initialisations and losses. Each :class:`Configuration` generates its data with
:func:`make_problem` (seeded), integrates the flow
(:func:`~dgating.simulations.flow.integrate_flow`) to :math:`T = \mathrm{decay}\cdot D/(4\lambda)`
(the imbalance falls by :math:`e^{-\mathrm{decay}}`) unless ``t_end`` is given, and measures the
rates (:func:`~dgating.simulations.rates.flow_rates`).

Output layout of :func:`run_sweep` in ``out/``:

* ``configs/<key>.json``: one file per finished configuration, written atomically (temporary file
  then :func:`os.replace`) as soon as it finishes, so an interrupted sweep loses at most the
  configurations in flight and a rerun skips every finished one;
* ``results.csv``: the tidy table, one row per configuration (sorted by key), rebuilt from
  ``configs/`` at the end;
* ``summary.json``: counts and, per depth, the worst relative errors of the measured rates.

Parallelism: ``workers > 1`` uses a local :class:`concurrent.futures.ProcessPoolExecutor`;
``scheduler="tcp://host:port"`` sends the configurations to a dask.distributed cluster (the results
come back to this process, which writes them).

Example TOML file (``dgating simulate --config sweep.toml``; every key optional, lists are grids)::

    [sweep]
    depths = [2, 3, 4, 5]
    lams = [0.1, 0.2, 0.4]
    seeds = [0, 1, 2]
    n_samples = [60]
    n_features = [12]
    n_groups = [6]
    inits = ["random"]         # or "ridge"
    losses = ["squared"]       # or "logistic"
    init_scale = 1.0
    decay = 30.0               # T = decay * D / (4 lam) unless t_end is set
    n_eval = 400
    rtol = 1e-10
    backend = "scipy"          # or "batched"

The built-in configurations are :data:`DEFAULT_SWEEP` and :data:`QUICK_SWEEP` (names ``"default"``
and ``"quick"`` for ``--config``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from itertools import product
from pathlib import Path

import numpy as np

from .._io import json_safe, write_atomic
from .._validation import (
    LIMITS,
    InvalidParameterError,
    check_choice,
    check_horizon,
    check_integer,
    check_positive,
    check_real,
    check_seed,
)

__all__ = [
    "DEFAULT_SWEEP",
    "QUICK_SWEEP",
    "Configuration",
    "SweepConfig",
    "SweepResult",
    "check_scheduler",
    "load_sweep_config",
    "make_problem",
    "rate_grid",
    "run_configuration",
    "run_sweep",
]


def make_problem(
    n_samples: int, n_features: int, n_groups: int, *, loss: str = "squared", seed: int = 0
):
    r"""A seeded synthetic group-sparse problem.

    ``X`` has i.i.d. :math:`\mathcal N(0, 1)` entries, the ``n_features`` features form
    ``n_groups`` contiguous groups of (nearly) equal size, the first third of the groups (at least
    one) carry :math:`\mathcal N(0, 1)` true weights, and ``y = X w* + 0.1 noise`` (squared) or
    ``sign(X w* + 0.1 noise)`` (logistic). Drawn with ``numpy.random.default_rng([seed, 1])``.

    Examples
    --------
    >>> prob = make_problem(30, 6, 3, seed=0)
    >>> prob.X.shape, prob.n_groups
    ((30, 6), 3)
    """
    from ..problem import GroupedProblem

    n = check_positive(n_samples, "n_samples", integer=True)
    p = check_positive(n_features, "n_features", integer=True)
    J = check_positive(n_groups, "n_groups", integer=True)
    if J > p:
        raise InvalidParameterError(f"`n_groups` must be <= n_features = {p}; got {J}.")
    check_choice(loss, "loss", ("squared", "logistic"))
    rng = np.random.default_rng([int(seed), 1])
    labels = np.sort(np.arange(p) % J)
    X = rng.normal(size=(n, p))
    w = np.where(labels < max(1, J // 3), rng.normal(size=p), 0.0)
    z = X @ w + 0.1 * rng.normal(size=n)
    y = z if loss == "squared" else np.where(z >= 0, 1.0, -1.0)
    return GroupedProblem(X, y, labels, loss)


#: Runge-Kutta steps allowed per configuration (scipy backend): a flow too stiff to finish (e.g. a
#: large ``init_scale`` at a large depth) is recorded as failed instead of running for hours.
MAX_STEPS = 200_000


@dataclass(frozen=True)
class Configuration:
    """One point of a sweep grid (all fields are plain JSON types)."""

    depth: int
    lam: float
    n_samples: int
    n_features: int
    n_groups: int
    seed: int
    init: str
    loss: str
    init_scale: float
    t_end: float
    n_eval: int
    rtol: float
    backend: str

    @property
    def key(self) -> str:
        """A stable, readable, unique file name stem."""
        body = json.dumps(asdict(self), sort_keys=True)
        digest = hashlib.sha1(body.encode()).hexdigest()[:10]
        return (
            f"D{self.depth}_lam{self.lam:g}_n{self.n_samples}_p{self.n_features}_J{self.n_groups}"
            f"_s{self.seed}_{self.init}_{self.loss}_{digest}"
        )


#: Grid axes of a :class:`SweepConfig` and the check (and normalisation) of each value.
_AXES = {
    "depths": lambda v, name: check_integer(v, name, 2, LIMITS["depth"]),
    "lams": lambda v, name: check_real(v, name, 0.0, 1e6, lo_open=True),
    "seeds": check_seed,
    "n_samples": lambda v, name: check_integer(v, name, 1, 1_000_000),
    "n_features": lambda v, name: check_integer(v, name, 1, 100_000),
    "n_groups": lambda v, name: check_integer(v, name, 1, 100_000),
    "inits": lambda v, name: check_choice(v, name, ("random", "ridge")),
    "losses": lambda v, name: check_choice(v, name, ("squared", "logistic")),
}


@dataclass(frozen=True)
class SweepConfig:
    r"""A grid of flow configurations (see the module docstring for the TOML form).

    Every value is checked up front (types, ranges and the bounds of
    :data:`dgating._validation.LIMITS` that keep each flow's work bounded); repeated grid values
    are computed once.

    Parameters
    ----------
    depths, lams, seeds, n_samples, n_features, n_groups, inits, losses : tuple
        Grid axes.
    init_scale : float
        :math:`S` of :func:`~dgating.simulations.flow.initial_params`.
    decay : float
        :math:`T = \mathrm{decay}\cdot D / (4\lambda)` when ``t_end`` is ``None``.
    t_end : float or None
        Fixed end time for every configuration.
    n_eval : int
        Output times (equispaced on :math:`[0, T]`).
    rtol : float
        Integration tolerance (``atol`` is fixed at ``1e-12``).
    backend : {"scipy", "batched"}
    """

    depths: tuple[int, ...] = (2, 3, 4)
    lams: tuple[float, ...] = (0.2, 0.4)
    seeds: tuple[int, ...] = (0,)
    n_samples: tuple[int, ...] = (60,)
    n_features: tuple[int, ...] = (12,)
    n_groups: tuple[int, ...] = (6,)
    inits: tuple[str, ...] = ("random",)
    losses: tuple[str, ...] = ("squared",)
    init_scale: float = 1.0
    decay: float = 30.0
    t_end: float | None = None
    n_eval: int = 400
    rtol: float = 1e-10
    backend: str = "scipy"

    def __post_init__(self) -> None:
        for name, check in _AXES.items():
            value = getattr(self, name)
            if not isinstance(value, list | tuple):
                value = (value,)
            if not value:
                raise InvalidParameterError(f"`{name}` must be a non-empty list; got [].")
            # Checked, normalised (1 and 1.0 are one value) and deduplicated, in order.
            value = tuple(dict.fromkeys(check(v, name) for v in value))
            object.__setattr__(self, name, value)
        check_choice(self.backend, "backend", ("scipy", "batched"))
        object.__setattr__(
            self,
            "init_scale",
            check_real(self.init_scale, "init_scale", 0.0, LIMITS["init_scale"], lo_open=True),
        )
        object.__setattr__(
            self, "decay", check_real(self.decay, "decay", 0.0, LIMITS["decay"], lo_open=True)
        )
        object.__setattr__(self, "rtol", check_real(self.rtol, "rtol", 1e-14, 1e-2))
        object.__setattr__(
            self, "n_eval", check_integer(self.n_eval, "n_eval", 10, LIMITS["n_eval"])
        )
        if self.t_end is not None:
            for depth, lam in product(self.depths, self.lams):
                check_horizon(depth, lam, self.t_end, "t_end")
        for p, J in product(self.n_features, self.n_groups):
            if J > p:
                raise InvalidParameterError(
                    f"`n_groups` must be <= n_features for every pair; got {J} > {p}."
                )
        elements = max(self.n_samples) * max(self.n_features)
        if elements > LIMITS["elements"]:
            raise InvalidParameterError(
                f"`n_samples` x `n_features` must be <= {LIMITS['elements']:,}; got {elements:,}."
            )
        size = int(np.prod([len(getattr(self, name)) for name in _AXES]))
        if size > LIMITS["grid"]:
            raise InvalidParameterError(
                f"the sweep grid must have at most {LIMITS['grid']:,} configurations; got {size:,}."
            )

    def configurations(self) -> list[Configuration]:
        """All grid points, in a deterministic order."""
        out = []
        for depth, lam, n, p, J, seed, init, loss in product(
            self.depths,
            self.lams,
            self.n_samples,
            self.n_features,
            self.n_groups,
            self.seeds,
            self.inits,
            self.losses,
        ):
            t_end = self.t_end if self.t_end is not None else self.decay * depth / (4 * lam)
            out.append(
                Configuration(
                    int(depth),
                    float(lam),
                    int(n),
                    int(p),
                    int(J),
                    int(seed),
                    str(init),
                    str(loss),
                    float(self.init_scale),
                    float(t_end),
                    int(self.n_eval),
                    float(self.rtol),
                    str(self.backend),
                )
            )
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SweepConfig:
        """Build from a mapping (e.g. the ``[sweep]`` table of a TOML file); unknown keys fail."""
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise InvalidParameterError(
                f"Unknown sweep keys {unknown}. Valid: {', '.join(sorted(valid))}."
            )
        return cls(**data)


#: Default grid for figure F9 (measured/theory rates over (D, lam)): 4 x 4 x 3 = 48 flows.
DEFAULT_SWEEP = SweepConfig(depths=(2, 3, 4, 5), lams=(0.05, 0.1, 0.2, 0.4), seeds=(0, 1, 2))
#: A small grid for smoke tests and ``--quick`` runs: 3 x 2 = 6 flows of a few seconds in total.
QUICK_SWEEP = SweepConfig(depths=(2, 3, 4), lams=(0.2, 0.4), seeds=(0,), n_eval=300)
_BUILTIN = {"default": DEFAULT_SWEEP, "quick": QUICK_SWEEP}


def load_sweep_config(source: str | os.PathLike) -> SweepConfig:
    """Read a TOML file (table ``[sweep]`` or top level), or return a built-in by name."""
    from .._io import read_toml

    if str(source) in _BUILTIN and not Path(source).exists():
        return _BUILTIN[str(source)]
    path = Path(source)
    if not path.is_file():
        raise InvalidParameterError(
            f"`--config` must be a TOML file or one of {sorted(_BUILTIN)}; got '{path}' "
            "(not found)."
        )
    data = read_toml(path, "--config")
    table = data.get("sweep", data)
    if not isinstance(table, dict):
        raise InvalidParameterError(f"`--config` table [sweep] must be a table; got '{path}'.")
    return SweepConfig.from_dict(table)


def run_configuration(config: Configuration) -> dict:
    """Integrate one configuration and measure its rates; returns one flat table row."""
    import warnings

    from ..objectives import GatedObjective
    from .flow import initial_params, integrate_flow
    from .rates import flow_rates

    start = time.perf_counter()
    problem = make_problem(
        config.n_samples, config.n_features, config.n_groups, loss=config.loss, seed=config.seed
    )
    obj = GatedObjective(problem, config.depth, config.lam)
    params0 = initial_params(obj, init=config.init, seed=config.seed, init_scale=config.init_scale)
    t_eval = np.linspace(0.0, config.t_end, config.n_eval)
    row = asdict(config)
    row["key"] = config.key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = integrate_flow(
            obj,
            params0,
            (0.0, config.t_end),
            backend=config.backend,
            rtol=config.rtol,
            atol=1e-12,
            t_eval=t_eval,
            throw=False,
            max_steps=MAX_STEPS,
        )
    row.update(status=res.status, nfev=res.nfev, message=res.message)
    if res.success:
        rates = flow_rates(res, obj)
        c = 4 * config.lam / config.depth
        d0 = res.imbalance[0]
        ident = float(np.abs(res.imbalance[-1] - d0 * np.exp(-c * res.t[-1])).max())
        ident /= float(np.abs(d0).max())
        rel = rates.relative_errors()
        row.update(
            rate_imbalance=rates.imbalance.rate,
            rate_imbalance_theory=rates.theory["imbalance"],
            rel_err_imbalance=rel["imbalance"],
            imbalance_identity_error=ident,
            rate_gap=rates.gap.rate,
            rate_gap_surviving=None if rates.gap_surviving is None else rates.gap_surviving.rate,
            rate_gap_surviving_theory=rates.theory["surviving"],
            rel_err_surviving=rel.get("surviving"),
            rate_gap_vanishing=None if rates.gap_vanishing is None else rates.gap_vanishing.rate,
            rate_gap_vanishing_theory=rates.theory["vanishing"]
            if rates.gap_vanishing is not None
            else None,
            rel_err_vanishing=rel.get("vanishing"),
            n_surviving=int((~rates.vanishing).sum()),
            n_vanishing=int(rates.vanishing.sum()),
            gap_final=float(res.gap[-1]),
        )
    row["seconds"] = time.perf_counter() - start
    return json_safe(row)


@dataclass(frozen=True)
class SweepResult:
    """Paths and counts of a finished :func:`run_sweep`.

    Attributes
    ----------
    table : Path
        ``results.csv``.
    summary : Path
        ``summary.json``.
    rows : list of dict
        The table, one dict per configuration.
    n_total, n_computed, n_skipped : int
        Configurations in the grid, computed now, and found finished on disk.
    """

    table: Path
    summary: Path
    rows: list
    n_total: int
    n_computed: int
    n_skipped: int


_COLUMNS = (
    "key depth lam n_samples n_features n_groups seed init loss init_scale t_end n_eval rtol "
    "backend status nfev seconds rate_imbalance rate_imbalance_theory rel_err_imbalance "
    "imbalance_identity_error rate_gap rate_gap_surviving rate_gap_surviving_theory "
    "rel_err_surviving rate_gap_vanishing rate_gap_vanishing_theory rel_err_vanishing "
    "n_surviving n_vanishing gap_final message"
).split()


def _summary(rows: list[dict], n_computed: int, n_skipped: int) -> dict:
    def worst(key: str, subset: Iterable[dict]) -> float | None:
        vals = [r[key] for r in subset if r.get(key) is not None]
        return max(vals) if vals else None

    per_depth = {}
    for depth in sorted({r["depth"] for r in rows}):
        sub = [r for r in rows if r["depth"] == depth]
        per_depth[str(depth)] = {
            "configurations": len(sub),
            "failed": sum(r["status"] != 0 for r in sub),
            "max_rel_err_imbalance": worst("rel_err_imbalance", sub),
            "max_rel_err_surviving": worst("rel_err_surviving", sub),
            "max_rel_err_vanishing": worst("rel_err_vanishing", sub),
            "max_imbalance_identity_error": worst("imbalance_identity_error", sub),
        }
    return {
        "configurations": len(rows),
        "computed": n_computed,
        "resumed": n_skipped,
        "failed": sum(r["status"] != 0 for r in rows),
        "seconds": sum(r["seconds"] for r in rows),
        "per_depth": per_depth,
    }


def run_sweep(
    config: SweepConfig,
    out: str | os.PathLike,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
) -> SweepResult:
    r"""Run (or resume) a sweep, writing one JSON file per configuration and the merged table.

    Parameters
    ----------
    config : SweepConfig
        The grid.
    out : path
        Output directory (created).
    workers : int, default=1
        Local processes; 1 runs in this process.
    scheduler : str, optional
        Address of a dask.distributed scheduler (e.g. ``"tcp://127.0.0.1:8786"``); overrides
        ``workers``.
    progress : bool, default=True
        Report progress on stderr: a bar on a terminal, one line per step otherwise.

    Returns
    -------
    SweepResult
    """
    workers = check_integer(workers, "workers", 1, 256)
    out = Path(out)
    cdir = out / "configs"
    cdir.mkdir(parents=True, exist_ok=True)
    with _folder_lock(out):
        return _run_locked(config, out, cdir, workers, scheduler, progress)


@contextlib.contextmanager
def _folder_lock(out: Path) -> Iterator[None]:
    """An exclusive :func:`fcntl.flock` on ``out/.lock`` for the duration of a sweep: a second run
    on the same folder waits (saying so on stderr) and then resumes, instead of computing every
    configuration a second time. The lock dies with its process, so a killed run never leaves
    the folder locked."""
    import fcntl

    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"sweep: waiting for another run on '{out}' to finish", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _finished_row(path: Path, key: str) -> dict | None:
    """The row stored at ``path`` if it is a complete result of configuration ``key``; ``None``
    (and the file removed, so that it is recomputed) if it is missing, truncated or foreign."""
    try:
        row = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        row = None
    if isinstance(row, dict) and row.get("key") == key and isinstance(row.get("status"), int):
        return row
    path.unlink(missing_ok=True)
    return None


def check_scheduler(address: object) -> str:
    """Return a dask scheduler address after checking its form ``PROTOCOL://HOST:PORT``."""
    import re

    if not isinstance(address, str) or not re.fullmatch(
        r"(tcp|tls|ws|wss|ucx)://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", address
    ):
        raise InvalidParameterError(
            f"`--scheduler` must be an address like tcp://HOST:PORT; got {address!r}."
        )
    return address


@contextlib.contextmanager
def _hard_deadline(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`TimeoutError` in the main thread after ``seconds`` (a SIGALRM timer), for
    library calls whose own timeouts do not cover every wait; elsewhere a no-op."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"{what} did not finish within {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _dask_client(address: str):
    """Connect to a dask scheduler within :data:`CONNECT_TIMEOUT` seconds, handshake included
    (a server that accepts but never answers is cut off by :func:`_hard_deadline`), or raise an
    input error naming the address."""
    import dask
    from distributed import Client

    check_scheduler(address)
    timeout = f"{CONNECT_TIMEOUT}s"
    with dask.config.set({"distributed.comm.timeouts.connect": timeout}):
        try:
            with _hard_deadline(CONNECT_TIMEOUT + 2, "the connection and handshake"):
                return Client(address, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise InvalidParameterError(
                f"`--scheduler` must be a reachable dask scheduler; got {address!r} "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})."
            ) from None


#: Seconds to connect (and complete the handshake) to a dask scheduler.
CONNECT_TIMEOUT = 10


def _run_locked(config, out, cdir, workers, scheduler, progress) -> SweepResult:
    from .._progress import Progress

    for stale in cdir.glob(".*.tmp"):  # temporary files of a run killed while writing
        stale.unlink(missing_ok=True)
    configs = config.configurations()
    finished = {c.key: _finished_row(cdir / f"{c.key}.json", c.key) for c in configs}
    done = {key for key, row in finished.items() if row is not None}
    todo = [c for c in configs if c.key not in done]
    with contextlib.ExitStack() as stack:
        # Connect first: an unreachable scheduler is an input error before any work or output.
        client = None
        if todo and scheduler is not None:
            client = stack.enter_context(_dask_client(scheduler))
        bar = stack.enter_context(
            Progress(len(configs), "sweep", enabled=progress, initial=len(done))
        )

        def finish(row: dict) -> None:
            write_atomic(cdir / f"{row['key']}.json", json.dumps(row, sort_keys=True))
            finished[row["key"]] = row
            bar.update(1)

        if client is not None:
            from distributed import as_completed

            futures = client.map(run_configuration, todo, pure=False)
            for fut in as_completed(futures):
                finish(fut.result())
        elif todo and workers > 1:
            from concurrent.futures import as_completed

            from .._workers import worker_pool

            with worker_pool(workers) as pool:
                futures = [pool.submit(run_configuration, c) for c in todo]
                try:
                    for fut in as_completed(futures):
                        finish(fut.result())
                except BaseException:  # interrupted: do not start the queued configurations
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        else:
            for c in todo:
                finish(run_configuration(c))
    rows = [finished[c.key] for c in configs]
    rows.sort(key=lambda r: r["key"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in _COLUMNS})
    table, summary = out / "results.csv", out / "summary.json"
    write_atomic(table, buf.getvalue())
    write_atomic(summary, json.dumps(_summary(rows, len(todo), len(done)), indent=2))
    return SweepResult(table, summary, rows, len(configs), len(todo), len(done))


def rate_grid(
    config: SweepConfig = QUICK_SWEEP, *, progress: bool = False
) -> dict[str, np.ndarray]:
    r"""Measured over theoretical rates on the ``(depth, lam)`` grid of ``config`` (figure F9).

    Runs every configuration in this process (no files) and takes the median over the other grid
    axes.

    Returns
    -------
    dict
        ``"depths"`` (a,), ``"lams"`` (b,), and ``"imbalance"``, ``"surviving"``, ``"vanishing"``
        of shape (a, b): median measured/theory ratio (``nan`` where a class never occurs).
    """
    from .._progress import progress_iter

    depths, lams = np.array(config.depths), np.array(config.lams, dtype=float)
    ratios = {
        k: [[[] for _ in lams] for _ in depths] for k in ("imbalance", "surviving", "vanishing")
    }
    for c in progress_iter(config.configurations(), "rate grid", enabled=progress):
        row = run_configuration(c)
        i, j = list(depths).index(c.depth), list(lams).index(c.lam)
        for key, meas, theo in (
            ("imbalance", "rate_imbalance", "rate_imbalance_theory"),
            ("surviving", "rate_gap_surviving", "rate_gap_surviving_theory"),
            ("vanishing", "rate_gap_vanishing", "rate_gap_vanishing_theory"),
        ):
            if row.get(meas) is not None and row.get(theo):
                ratios[key][i][j].append(row[meas] / row[theo])
    out: dict[str, np.ndarray] = {"depths": depths, "lams": lams}
    for key, grid in ratios.items():
        out[key] = np.array([[np.median(v) if v else np.nan for v in r] for r in grid])
    return out
