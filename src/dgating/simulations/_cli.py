"""``dgating flow`` (one gradient flow and its measured rates) and ``dgating simulate`` (sweeps)."""

from __future__ import annotations

import argparse

from ..cli import DEFAULT_OUT, HELP, add_budget_option, number, print_json, untrustworthy

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dgating flow`` and ``dgating simulate``."""
    p = subparsers.add_parser(
        "flow",
        help=HELP["flow"],
        description="Integrate dz/dt = -grad L(z) for the D-gated objective on DATA.npz from a "
        "seeded unbalanced start (omega ~ N(0, S^2) per feature, gates ~ N(0, S^2), drawn with "
        "numpy.random.default_rng(SEED), omega first) and measure the decay rates of the "
        "imbalance and of the gap L - L_w (per class of groups) against theory.",
    )
    p.add_argument("data", metavar="DATA.npz", help="file with X (n, p), y (n,), groups (p,)")
    p.add_argument("--depth", type=number, required=True, help="D >= 2")
    p.add_argument("--lam", type=number, required=True, help="lambda > 0")
    p.add_argument("--t-end", type=number, required=True, help="end time T > 0")
    p.add_argument("--init-scale", type=number, default=1.0, help="S (default 1)")
    p.add_argument("--init", default="random", help="random (default) or ridge")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial point (default 0)")
    p.add_argument("--rtol", type=number, default=1e-10, help="relative tolerance (default 1e-10)")
    p.add_argument("--atol", type=number, default=1e-12, help="absolute tolerance (default 1e-12)")
    p.add_argument("--backend", default="scipy", help="scipy (DOP853, default) or batched (torch)")
    p.add_argument("--loss", default="squared", help="squared (default) or logistic")
    p.add_argument("--n-eval", type=int, default=400, help="output times (default 400)")
    p.add_argument("--json", action="store_true", help="print one JSON object (a summary)")
    p.add_argument(
        "--trajectory",
        action="store_true",
        help="with --json: also print the trajectory (keys t and gap, N_EVAL values each)",
    )
    add_budget_option(p)
    p.set_defaults(handler=_run_flow)

    s = subparsers.add_parser(
        "simulate",
        help=HELP["simulate"],
        description="Run the grid of a sweep configuration (a TOML file with a [sweep] table, "
        "or the built-in 'default' / 'quick'); one JSON file per configuration in OUT/configs, "
        "then OUT/results.csv and OUT/summary.json. Rerunning resumes.",
    )
    s.add_argument("--config", default="quick", help="TOML file, or 'default' / 'quick' (default)")
    s.add_argument(
        "--out",
        default=f"{DEFAULT_OUT}/sweep",
        help=f"output directory (default {DEFAULT_OUT}/sweep)",
    )
    s.add_argument("--workers", type=int, default=1, help="local processes (default 1)")
    s.add_argument(
        "--scheduler",
        default=None,
        help="dask.distributed scheduler address tcp://HOST:PORT (connect timeout 10 s)",
    )
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(handler=_run_simulate)


def _run_flow(args: argparse.Namespace) -> int:
    import numpy as np

    from .._validation import (
        LIMITS,
        InvalidParameterError,
        check_choice,
        check_horizon,
        check_integer,
        check_lam,
        check_real,
        check_seed,
    )
    from ..objectives import GatedObjective
    from ..problem import load_problem
    from .flow import BACKENDS, INITS, initial_params, integrate_flow
    from .rates import flow_rates, horizon_advice

    depth = check_integer(args.depth, "--depth", 2, LIMITS["depth"])
    lam = check_lam(args.lam, "--lam")
    if lam == 0:
        raise InvalidParameterError("`--lam` must be > 0 for rate measurements; got 0.")
    check_choice(args.backend, "--backend", BACKENDS)
    check_choice(args.init, "--init", INITS)
    check_choice(args.loss, "--loss", ("squared", "logistic"))
    check_horizon(depth, lam, args.t_end, "--t-end")
    check_integer(args.n_eval, "--n-eval", 10, LIMITS["n_eval"])
    check_seed(args.seed, "--seed")
    check_real(args.init_scale, "--init-scale", 0.0, LIMITS["init_scale"], lo_open=True)
    check_real(args.rtol, "--rtol", 1e-14, 1e-2)
    check_real(args.atol, "--atol", 1e-300, 1.0)
    problem = load_problem(args.data, loss=args.loss)
    if problem.n_groups == 0:
        raise InvalidParameterError(
            "`DATA` groups must contain at least one penalised group (label >= 0) for a gated "
            "flow; got every label -1."
        )
    obj = GatedObjective(problem, depth, lam)
    params0 = initial_params(obj, init=args.init, seed=args.seed, init_scale=args.init_scale)
    t_eval = np.linspace(0.0, float(args.t_end), args.n_eval)
    res = integrate_flow(
        obj,
        params0,
        (0.0, float(args.t_end)),
        backend=args.backend,
        rtol=args.rtol,
        atol=args.atol,
        t_eval=t_eval,
        throw=False,
    )
    rates = flow_rates(res, obj)
    advice = horizon_advice(rates)

    def rate(est):
        return None if est is None or not est.valid else est.rate

    def window(est):
        return None if est is None or not est.valid else list(est.window)

    out = {
        "t_end": float(args.t_end),
        "n_eval": int(args.n_eval),
        "gap_initial": float(res.gap[0]),
        "gap_final": float(res.gap[-1]),
        "imbalance_initial": res.imbalance[0].tolist(),
        "imbalance_final": res.imbalance[-1].tolist(),
        "rate_imbalance": rate(rates.imbalance),
        "rate_imbalance_theory": rates.theory["imbalance"],
        "rate_gap": rate(rates.gap),
        "rate_gap_surviving": rate(rates.gap_surviving),
        "rate_gap_surviving_theory": rates.theory["surviving"],
        "rate_gap_vanishing": rate(rates.gap_vanishing),
        "rate_gap_vanishing_theory": rates.theory["vanishing"] if rates.vanishing.any() else None,
        "window_imbalance": window(rates.imbalance),
        "window_gap": window(rates.gap),
        "vanishing_groups": np.flatnonzero(rates.vanishing).tolist(),
        "support_final": np.flatnonzero(res.support[-1]).tolist(),
        "objective_final": float(res.objective[-1]),
        "penalised_final": float(res.penalised[-1]),
        "nfev": res.nfev,
        "seconds": res.seconds,
        "backend": args.backend,
        "depth": depth,
        "lam": lam,
        "seed": args.seed,
        "init_scale": float(args.init_scale),
        "rtol": float(args.rtol),
        # The rates are asymptotic: say when the horizon is too short for them.
        "asymptotic": advice.asymptotic,
        "suggested_t_end": advice.suggested_t_end,
        "horizon_note": advice.message(float(args.t_end)) or None,
    }
    reasons = [] if res.success else [f"integration failed ({res.message})"]
    if not np.all(np.isfinite(res.objective)):
        reasons.append("non-finite objective along the flow")
    reasons += [] if out["rate_imbalance"] is not None else ["no valid imbalance-rate window"]
    if not advice.asymptotic:  # the measured rates are not yet the asymptotic ones
        reasons.append(advice.message(float(args.t_end)))
    if args.json:
        if args.trajectory:
            out.update(t=res.t.tolist(), gap=res.gap.tolist())
        print_json(out)
        return untrustworthy("flow", reasons)

    def fmt(x):
        return "n/a" if x is None else f"{x:.8g}"

    print(
        f"dgating flow: D={depth}, lam={lam:g}, T={args.t_end:g}, backend={args.backend}, "
        f"{res.nfev} evaluations, {res.seconds:.3f} s\n"
        f"  imbalance rate   {fmt(out['rate_imbalance'])}   theory 4 lam/D = "
        f"{fmt(out['rate_imbalance_theory'])}\n"
        f"  gap rate         {fmt(out['rate_gap'])}\n"
        f"  surviving gap    {fmt(out['rate_gap_surviving'])}   theory "
        f"{fmt(out['rate_gap_surviving_theory'])}\n"
        f"  vanishing gap    {fmt(out['rate_gap_vanishing'])}   theory "
        f"{fmt(out['rate_gap_vanishing_theory'])}   groups {out['vanishing_groups']}\n"
        f"  final gap        {res.gap[-1]:.3e}, support {out['support_final']}"
    )
    return untrustworthy("flow", reasons)


def _run_simulate(args: argparse.Namespace) -> int:
    import json

    from .._validation import check_integer, check_output_dir
    from .sweep import check_scheduler, load_sweep_config, run_sweep

    workers = check_integer(args.workers, "--workers", 1, 256)
    config = load_sweep_config(args.config)
    out = check_output_dir(args.out, "--out")
    scheduler = None if args.scheduler is None else check_scheduler(args.scheduler)
    res = run_sweep(
        config, out, workers=workers, scheduler=scheduler, progress=not args.no_progress
    )
    summary = json.loads(res.summary.read_text())
    print(
        f"dgating simulate: {res.n_total} configurations ({res.n_computed} computed, "
        f"{res.n_skipped} resumed, {summary['failed']} failed)\n"
        f"  table   {res.table}\n  summary {res.summary}"
    )
    failed = summary["failed"]
    return untrustworthy("simulate", [f"{failed} configurations failed"] if failed else [])
