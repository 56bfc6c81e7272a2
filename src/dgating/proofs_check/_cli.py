"""``dgating verify``: run the proofs-check suite, print the table, write JSON and CSV."""

from __future__ import annotations

import argparse

from ..cli import HELP, number, print_json, untrustworthy

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dgating verify``."""
    p = subparsers.add_parser(
        "verify",
        help=HELP["verify"],
        description="Run the proofs-check suite: balancedness, both directions of the "
        "correspondence of local minima (certificates, Hessians, perturbation tests), values, "
        "multi-start statistics and negative controls. Every check reports pass, fail, "
        "inconclusive or not-applicable. Exit status 1 if any check fails or any negative control "
        "is not flagged; inconclusive checks are named on one stderr line and make the exit "
        "status 1 only with --strict.",
    )
    p.add_argument("--suite", default="quick", help="quick (default, < 2 min) or full")
    p.add_argument(
        "--depth",
        type=number,
        nargs="+",
        metavar="D",
        default=None,
        help="depths D >= 2 (default: 2 3 4 for quick, 2 3 4 5 for full)",
    )
    p.add_argument("--problem", nargs="+", default=None, help="restrict to these problems")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--no-controls", action="store_true", help="skip the negative controls")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--out", metavar="DIR", default=None, help="write verify_<suite>.json/.csv")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--strict", action="store_true", help="exit status 1 also when a check is inconclusive"
    )
    p.set_defaults(handler=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    import json

    from .._validation import LIMITS, check_choice, check_integer, check_output_dir
    from .problems import PROBLEMS, SUITES
    from .suite import run_suite

    check_choice(args.suite, "--suite", SUITES)
    depths = (
        None
        if args.depth is None
        else list(
            dict.fromkeys(check_integer(d, "--depth", 2, LIMITS["depth"]) for d in args.depth)
        )
    )
    jobs = check_integer(args.jobs, "--jobs", 1, 256)
    for name in args.problem or ():
        check_choice(name, "--problem", PROBLEMS)
    out = None if args.out is None else check_output_dir(args.out, "--out")
    res = run_suite(
        args.suite,
        depths,
        problems=args.problem,
        controls=not args.no_controls,
        n_jobs=jobs,
        progress=not args.no_progress,
    )
    if out is not None:
        paths = res.write(out)
    if args.json:
        print_json(json.loads(res.to_json()))
    else:
        print(res.table())
        if out is not None:
            print("wrote " + ", ".join(str(p) for p in paths))
    return _exit_status(res, args.strict)


def _exit_status(res, strict: bool) -> int:
    """0, or 1 with one stderr line naming the unexpected (or, strict, inconclusive) rows."""
    import sys

    def names(rows) -> str:
        text = ", ".join(f"{r.problem} D={r.depth} {r.check.name}" for r in rows[:4])
        return text + (f" and {len(rows) - 4} more" if len(rows) > 4 else "")

    if res.failures:
        return untrustworthy(
            "verify", [f"{len(res.failures)} unexpected outcomes: {names(res.failures)}"]
        )
    if res.inconclusive:
        message = f"{len(res.inconclusive)} checks inconclusive: {names(res.inconclusive)}"
        if strict:
            return untrustworthy("verify", [message])
        print(f"dgating verify: {message}", file=sys.stderr)
    return 0
