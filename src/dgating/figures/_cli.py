"""``dgating figures`` and ``dgating reproduce`` (registered in :mod:`dgating.cli`).

Heavy imports (matplotlib, the figure modules) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]

from ..cli import DEFAULT_OUT, HELP


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dgating figures`` and ``dgating reproduce``."""
    from ._reproduce import RUN_TIME, RUN_TIME_MACHINE

    p = subparsers.add_parser(
        "figures",
        help=HELP["figures"],
        description="Compute (or load from the cache) and draw the figures F1-F10.",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        default=None,
        help="figure names or labels (e.g. imbalance_decay or F2); default: all",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default ./{DEFAULT_OUT})")
    p.add_argument("--quick", action="store_true", help="small configurations (seconds each)")
    p.add_argument("--force", action="store_true", help="recompute cached data")
    p.add_argument("--list", action="store_true", help="list the figures and exit")
    p.set_defaults(handler=_run_figures)

    r = subparsers.add_parser(
        "reproduce",
        help=HELP["reproduce"],
        description="Run the whole pipeline (theory derivations, simulation sweep, numerical "
        "verification, network experiments, all figures) and write OUT/report.html with the "
        "tidy data. Re-running reuses cached results. Exit status 0 when every check passes, "
        "1 otherwise.",
    )
    r.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default ./{DEFAULT_OUT})")
    r.add_argument(
        "--quick",
        action="store_true",
        help=f"small configurations ({RUN_TIME['quick']}; default run {RUN_TIME['default']}; "
        f"measured on {RUN_TIME_MACHINE})",
    )
    r.add_argument("--force", action="store_true", help="ignore the caches and recompute")
    r.set_defaults(handler=_run_reproduce)


def resolve_names(names: list[str] | None) -> list[str] | None:
    """Map figure names or labels (``F2``, case-insensitive) to registry names."""
    if not names:
        return None
    from .._validation import InvalidParameterError
    from .registry import FIGURES

    by_label = {spec.label.lower(): name for name, spec in FIGURES.items()}
    out = []
    for n in names:
        key = n.lower()
        if n in FIGURES:
            out.append(n)
        elif key in by_label:
            out.append(by_label[key])
        else:
            valid = ", ".join(f"{s.label}={k}" for k, s in FIGURES.items())
            raise InvalidParameterError(f"Unknown figure {n!r} for --only. Valid: {valid}.")
    return out


def _run_figures(args: argparse.Namespace) -> int:
    from .registry import FIGURES, render_all

    if args.list:
        for name, spec in FIGURES.items():
            print(f"{spec.label:>3}  {name:<18}  {spec.title}")
        return 0
    from .._validation import check_output_dir

    only = resolve_names(args.only)
    out = check_output_dir(args.out, "--out")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results = render_all(out, only=only, quick=args.quick, force=args.force, progress=log)
    for res in results:
        print(res.pdf)
        print(res.png)
    return 0


def _run_reproduce(args: argparse.Namespace) -> int:
    from .._validation import check_output_dir
    from ..cli import untrustworthy
    from ._reproduce import reproduce

    out = check_output_dir(args.out, "--out")
    argv = (
        ["reproduce", "--out", str(args.out)]
        + (["--quick"] if args.quick else [])
        + (["--force"] if args.force else [])
    )
    res = reproduce(out, quick=args.quick, force=args.force, argv=argv)
    print(res.report)
    reasons = [f"{res.n_failed} of {res.n_checks} checks failed"] if res.n_failed else []
    broken = [s.name for s in res.steps if s.status != "ok"]
    reasons += [f"steps did not run: {broken}"] if broken else []
    return untrustworthy("reproduce", reasons)
