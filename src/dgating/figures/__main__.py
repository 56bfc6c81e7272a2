"""``python -m dgating.figures [NAME ...] [--out DIR] [--quick] [--force]``: the figures only."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments (here and nowhere else) and render the figures."""
    from ..cli import DEFAULT_OUT, _Parser
    from ._cli import _run_figures

    parser = _Parser(prog="python -m dgating.figures", description="Draw the dgating figures.")
    parser.add_argument("only", nargs="*", metavar="NAME", help="figure names or labels")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--list", action="store_true")
    from ..cli import run_guarded

    def run() -> int:
        args = parser.parse_args(argv)
        return _run_figures(argparse.Namespace(**{**vars(args), "only": args.only or None}))

    return run_guarded("python -m dgating.figures", run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
