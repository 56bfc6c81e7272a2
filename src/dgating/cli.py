"""The ``dgating`` command line: one console script with subcommands.

Each subcommand lives beside the code it drives: the module ``dgating.<part>._cli`` exposes
``register(subparsers)``, which adds its parser and sets ``handler(args) -> int``. Input errors
(:class:`dgating._validation.InputError`) become one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from ._validation import InputError

__all__ = ["main", "number", "print_json"]

# Subcommand -> module registering it, in the order of `dgating --help`. Running one command
# imports only its module (`dgating solve` needs neither torch nor sympy); help imports all.
SUBCOMMANDS = {
    "solve": "dgating.cli",
    "path": "dgating._paths_cli",
    "derive": "dgating.theory._cli",
    "flow": "dgating.simulations._cli",
    "simulate": "dgating.simulations._cli",
    "verify": "dgating.proofs_check._cli",
    "nn-experiment": "dgating.nn._cli",
    "figures": "dgating.figures._cli",
    "reproduce": "dgating.figures._cli",
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line (no usage dump) with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def number(text: str) -> float:
    """argparse type: any finite or non-finite float; validation happens in the library."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None


def print_json(obj: object) -> None:
    """Print one JSON object (NaN/inf become null so the output is strict JSON)."""
    from ._io import json_safe

    print(json.dumps(json_safe(obj)))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dgating solve``."""
    p = subparsers.add_parser(
        "solve",
        help="minimise L_w = L0 + lam sum_j ||w_j||^(2/D) by the gated or the proximal route",
        description="Solve the group L_{2,2/D} problem on DATA.npz (arrays X, y, groups; "
        "group label -1 = unpenalised) and certify the result.",
    )
    p.add_argument("data", metavar="DATA.npz", help="file with X (n, p), y (n,), groups (p,)")
    p.add_argument("--depth", type=number, required=True, help="D >= 2 (q = 2/D)")
    p.add_argument("--lam", type=number, required=True, help="lambda >= 0")
    p.add_argument("--method", default="prox", help="gated (L-BFGS on L) or prox (default)")
    p.add_argument("--loss", default="squared", help="squared (default) or logistic")
    p.add_argument("--init", default="ridge", help="starting point: ridge (default) or random")
    p.add_argument("--seed", type=int, default=0, help="seed of --init random (default 0)")
    p.add_argument("--init-scale", type=number, default=0.1, help="std of --init random")
    p.add_argument("--tol", type=number, default=1e-8, help="relative stationarity target")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_run_solve)


def _run_solve(args: argparse.Namespace) -> int:
    from ._validation import check_choice, check_depth, check_lam
    from .certificates import certify
    from .problem import load_problem
    from .solvers import initial_point, solve

    depth = check_depth(args.depth)
    check_lam(args.lam)
    check_choice(args.method, "--method", ("gated", "prox"))
    problem = load_problem(args.data, loss=args.loss)
    w0 = initial_point(
        problem, args.lam, init=args.init, seed=args.seed, init_scale=args.init_scale
    )
    res = solve(problem, depth, args.lam, method=args.method, w0=w0, tol=args.tol)
    cert = certify(problem, depth, args.lam, res.w, tol=max(args.tol, 1e-7))
    out = {
        "w": res.w.tolist(),
        "objective": res.objective,
        "support": res.support(problem.groups),
        "stationarity": res.stationarity,
        "max_imbalance": res.max_imbalance,
        "converged": res.converged,
        "iterations": res.iterations,
        "seconds": res.seconds,
        "method": args.method,
        "depth": depth,
        "lam": float(args.lam),
        "loss": args.loss,
        "n_groups": problem.n_groups,
        "certificate": {
            "passed": cert.passed,
            "stationarity": cert.stationarity,
            "zero_group_margin": cert.zero_group_margin,
            "min_eigenvalue": cert.min_eigenvalue,
        },
        "message": res.message,
    }
    if args.json:
        print_json(out)
        return 0
    imb = "n/a" if res.max_imbalance is None else f"{res.max_imbalance:.2e}"
    print(
        f"dgating solve: D={depth} (q=2/{depth}), lam={args.lam:g}, method={args.method}, "
        f"loss={args.loss}\n"
        f"  objective L_w    {res.objective:.12g}\n"
        f"  support          {len(out['support'])}/{problem.n_groups} groups {out['support']}\n"
        f"  stationarity     {res.stationarity:.2e} (relative)   max imbalance {imb}\n"
        f"  converged        {res.converged} after {res.iterations} iterations, "
        f"{res.seconds:.3f} s ({res.message})\n"
        f"  certificate      {'passed' if cert.passed else 'FAILED'}: zero-group margin "
        f"{cert.zero_group_margin:.2e}, min reduced-Hessian eigenvalue {cert.min_eigenvalue:.2e}"
    )
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser, with only ``command``'s module registered when it names a
    subcommand and every subcommand otherwise."""
    from . import __version__

    parser = _Parser(
        prog="dgating",
        description="Verify the theory of D-Gating structured sparsity and simulate its dynamics.",
    )
    parser.add_argument("--version", action="version", version=f"dgating {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    modules = [SUBCOMMANDS[command]] if command in SUBCOMMANDS else SUBCOMMANDS.values()
    for name in dict.fromkeys(modules):
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dgating`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except InputError as exc:
        print(f"dgating {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dgating {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
