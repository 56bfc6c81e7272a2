"""``dgating path``: a regularisation path on DATA.npz (:func:`dgating.paths.solve_path`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .cli import number, print_json

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dgating path``."""
    p = subparsers.add_parser(
        "path",
        help="solve L_w = L0 + lam sum_j ||w_j||^(2/D) along a decreasing grid of lam",
        description="Regularisation path on DATA.npz (arrays X, y, groups; group label -1 = "
        "unpenalised), warm-starting each lam from the previous solution. The default grid "
        "starts at lam_max, where the solution is zero. For D >= 3 the path follows one local "
        "minimum continuously.",
    )
    p.add_argument("data", metavar="DATA.npz", help="file with X (n, p), y (n,), groups (p,)")
    p.add_argument("--depth", type=number, required=True, help="D >= 2 (q = 2/D)")
    p.add_argument("--n-lams", type=int, default=50, help="size of the default grid (50)")
    p.add_argument("--lam-min-ratio", type=number, default=1e-3, help="smallest/largest lam (1e-3)")
    p.add_argument("--lams", default=None, help="explicit grid L1,L2,... (overrides the default)")
    p.add_argument("--method", default="prox", help="prox (default) or gated")
    p.add_argument("--loss", default="squared", help="squared (default) or logistic")
    p.add_argument("--tol", type=number, default=1e-8, help="relative stationarity target")
    p.add_argument("--json", action="store_true", help="print one JSON object (seconds: per lam)")
    p.add_argument("--out", default=None, help="write the path as a tidy CSV to FILE.csv")
    p.set_defaults(handler=_run_path)


def _parse_lams(text: str | None) -> np.ndarray | None:
    from ._validation import InvalidParameterError

    if text is None:
        return None
    try:
        lams = np.array([float(v) for v in text.split(",")])
    except ValueError:
        lams = np.array([np.nan])
    if not np.all(np.isfinite(lams)) or np.any(lams < 0):
        raise InvalidParameterError(
            f"`--lams` must be a comma-separated list of finite numbers >= 0; got {text!r}."
        )
    return lams


def _csv(path, problem) -> str:
    """Tidy long form: one row per (lam, coefficient)."""
    K, p = path.coefs.shape
    lines = ["lam_index,lam,feature,group,coef"]
    labels = problem.groups.labels
    for k in range(K):
        lam = repr(float(path.lams[k]))
        lines.extend(f"{k},{lam},{i},{labels[i]},{float(path.coefs[k, i])!r}" for i in range(p))
    return "\n".join(lines) + "\n"


def _run_path(args: argparse.Namespace) -> int:
    from ._io import write_atomic
    from ._validation import InvalidParameterError, check_choice, check_depth, check_positive
    from .paths import solve_path
    from .problem import load_problem

    depth = check_depth(args.depth)
    check_choice(args.method, "--method", ("gated", "prox"))
    check_choice(args.loss, "--loss", ("squared", "logistic"))
    check_positive(args.n_lams, "--n-lams", integer=True)
    check_positive(args.lam_min_ratio, "--lam-min-ratio")
    if args.lam_min_ratio >= 1:
        raise InvalidParameterError(
            f"`--lam-min-ratio` must be in (0, 1); got {args.lam_min_ratio}."
        )
    check_positive(args.tol, "--tol")
    lams = _parse_lams(args.lams)
    out = None if args.out is None else Path(args.out)
    if out is not None and not out.parent.is_dir():
        raise InvalidParameterError(
            f"`--out` must be a file in an existing folder; got '{out}' (no folder '{out.parent}')."
        )
    problem = load_problem(args.data, loss=args.loss)
    path = solve_path(
        problem,
        depth,
        lams,
        n_lams=args.n_lams,
        lam_min_ratio=args.lam_min_ratio,
        method=args.method,
        tol=args.tol,
    )
    if out is not None:
        write_atomic(out, _csv(path, problem))
    supports = [np.flatnonzero(s).tolist() for s in path.supports]
    if args.json:
        print_json(
            {
                "lams": path.lams,
                "coefs": path.coefs,
                "objectives": path.objectives,
                "supports": supports,
                "seconds": path.seconds,
                "stationarity": path.stationarity,
                "converged": path.converged,
                "lam_max": path.lam_max,
                "depth": depth,
                "method": args.method,
                "loss": args.loss,
                "n_groups": problem.n_groups,
            }
        )
    else:
        print(
            f"dgating path: D={depth} (q=2/{depth}), method={args.method}, loss={args.loss}, "
            f"{path.lams.size} lams, {path.seconds.sum():.3f} s\n"
            f"  {'lam':>12}  {'groups':>6}  {'objective L_w':>16}  {'stationarity':>12}"
        )
        for k in range(path.lams.size):
            print(
                f"  {path.lams[k]:12.6g}  {len(supports[k]):6d}  {path.objectives[k]:16.10g}  "
                f"{path.stationarity[k]:12.2e}"
            )
    bad = np.flatnonzero(~path.converged)
    if bad.size:
        print(
            f"dgating path: {bad.size} of {path.lams.size} solves did not reach --tol "
            f"{args.tol:g} (first at lam={path.lams[bad[0]]:g}, stationarity "
            f"{path.stationarity[bad[0]]:.2e})",
            file=sys.stderr,
        )
        return 1
    return 0
