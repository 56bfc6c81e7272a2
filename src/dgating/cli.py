"""The ``dgating`` command line: one console script with subcommands.

Each subcommand lives beside the code it drives: the module ``dgating.<part>._cli`` exposes
``register(subparsers)``, which adds its parser and sets ``handler(args) -> int``.

Every subcommand runs inside one guard (:func:`run_guarded`) that enforces the exit-status
contract (:data:`EXIT_STATUS`): input errors (:class:`dgating._validation.InputError`) and
environment errors (:class:`OSError`: unwritable, missing or full locations) are one line on stderr
and status 2; an interrupt is 130; a closed stdout ends the run quietly; any other exception is one
line naming a file that holds the traceback, status 3. No traceback reaches the user. Handlers
return 1 (after writing their result) when the result is not trustworthy, with one stderr line
saying why (:func:`untrustworthy`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Sequence

from ._validation import InputError

__all__ = [
    "DEFAULT_OUT",
    "EXIT_STATUS",
    "main",
    "number",
    "print_json",
    "run_guarded",
    "untrustworthy",
]

#: Default output folder of every command that writes files (``simulate`` uses its ``sweep/``).
DEFAULT_OUT = "dgating-output"

# Subcommand -> module registering it, in the order of `dgating --help`. Running one command
# imports only its module (`dgating solve` needs neither torch nor sympy); `dgating --help` imports
# none: it prints the static table HELP.
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

#: One-line summary of each subcommand (``dgating --help`` and each parser's ``help``).
HELP = {
    "solve": "minimise L_w = L0 + lam sum_j ||w_j||^(2/D) by the gated or the proximal route",
    "derive": "derive (sympy) and check the identities, laws and rates for one depth, or for any "
    "monomial parametrisation given by a spec file",
    "flow": "integrate the gradient flow of the gated objective and measure its rates",
    "simulate": "run a resumable sweep of flow rate measurements (local processes or dask)",
    "verify": "check numerically that the local minima of L and L_w correspond",
    "nn-experiment": "sparsity-accuracy trade-offs: D-Gating vs subgradient, proximal SGD, pruning",
    "figures": "draw the theory figures (OUT/figures: vector PDF and PNG; OUT/data: cached .npz)",
    "reproduce": "derive, simulate, verify, train, draw; write a self-contained HTML report",
}

#: The exit-status contract of every subcommand (README and ``dgating --help``).
EXIT_STATUS = {
    0: "success",
    1: "finished, but the result is not trustworthy (not converged, certificate or check "
    "failed, non-finite values, no minimiser, budget exhausted, stdout closed early, or an "
    "internal error, whose traceback is saved to the file the line names); what was computed "
    "is still written and one stderr line says why",
    2: "bad input or environment (option, config, data file, output path, scheduler): one "
    "stderr line naming what was expected and what was received, before any work starts",
    130: "interrupted (Ctrl-C or SIGTERM)",
}


def _epilog() -> str:
    rows = "\n".join(f"  {code:<5}{text}" for code, text in EXIT_STATUS.items())
    return (
        f"Files go to --out (default ./{DEFAULT_OUT}; simulate: ./{DEFAULT_OUT}/sweep), written "
        f"atomically.\n\nexit status:\n{rows}"
    )


def _top_level_help() -> str:
    from . import __version__

    width = max(map(len, HELP))
    rows = "\n".join(f"    {name:<{width}}  {text}" for name, text in HELP.items())
    return (
        "usage: dgating [-h] [--version] COMMAND ...\n\n"
        "Verify the theory of D-Gating structured sparsity and simulate its dynamics "
        f"(dgating {__version__}).\n\ncommands:\n{rows}\n\n"
        "options:\n  -h, --help  show this help message and exit\n"
        "  --version   show the version and exit\n\n"
        "Run `dgating COMMAND --help` for the options of one command. " + _epilog()
    )


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


class BudgetExhausted(Exception):
    """Raised by the ``--max-seconds`` timer; the run ends with exit status 1."""


def add_budget_option(parser: argparse.ArgumentParser, default: float = 600.0) -> None:
    """Add ``--max-seconds S``: a wall-clock budget after which the run stops with exit status 1
    (a guard against stiff or slowly converging inputs that no up-front limit can foresee)."""
    parser.add_argument(
        "--max-seconds",
        type=number,
        default=default,
        help=f"wall-clock budget; exit status 1 when exhausted (default {default:g})",
    )


def _start_budget(seconds: object) -> list[str]:
    """Start the ``--max-seconds`` timer; the returned list receives the message when it fires.

    The timer raises :class:`BudgetExhausted` in the running code; where Python swallows an
    exception raised inside a callback (a weakref finaliser, ``__del__``), the list still records
    that the budget ran out, so the run cannot end with status 0.
    """
    import signal

    from ._validation import check_real

    budget = check_real(seconds, "--max-seconds", 0.0, 1e7, lo_open=True)
    expired: list[str] = []

    def expire(signum: int, frame: object) -> None:
        expired.append(f"time budget of --max-seconds {budget:g} exhausted")
        raise BudgetExhausted(expired[0])

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, budget)
    return expired


def _stop_budget() -> None:
    import signal

    signal.setitimer(signal.ITIMER_REAL, 0)


def untrustworthy(command: str, reasons: Sequence[str]) -> int:
    """Print ``dgating COMMAND: result not trustworthy: REASONS`` (one stderr line) and return
    1, or return 0 when ``reasons`` is empty."""
    if not reasons:
        return 0
    print(f"dgating {command}: result not trustworthy: {'; '.join(reasons)}", file=sys.stderr)
    return 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dgating solve``."""
    p = subparsers.add_parser(
        "solve",
        help=HELP["solve"],
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
    add_budget_option(p)
    p.set_defaults(handler=_run_solve)


def _run_solve(args: argparse.Namespace) -> int:
    import math

    from ._validation import (
        check_choice,
        check_depth,
        check_lam,
        check_real,
        check_seed,
    )
    from .certificates import certify
    from .problem import load_problem, no_minimiser
    from .solvers import initial_point, solve

    depth = check_depth(args.depth, "--depth")
    lam = check_lam(args.lam, "--lam")
    check_choice(args.method, "--method", ("gated", "prox"))
    check_choice(args.loss, "--loss", ("squared", "logistic"))
    check_choice(args.init, "--init", ("ridge", "random"))
    check_seed(args.seed, "--seed")
    check_real(args.init_scale, "--init-scale", 0.0, 1e6, lo_open=True)
    check_real(args.tol, "--tol", 0.0, 1.0, lo_open=True)
    problem = load_problem(args.data, loss=args.loss)
    unbounded = no_minimiser(problem, lam)
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
    reasons = (
        [
            "no minimiser: the logistic data are separable"
            + ("" if lam == 0 else " by the unpenalised features")
            + ", so the loss decreases forever along a direction"
        ]
        if unbounded
        else []
    )
    reasons += [f"objective is {res.objective}"] if not math.isfinite(res.objective) else []
    reasons += [] if res.converged else [f"not converged ({res.message})"]
    reasons += [] if cert.passed else ["certificate failed"]
    if args.json:
        print_json(out)
        return untrustworthy("solve", reasons)
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
    return untrustworthy("solve", reasons)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser, with only ``command``'s module registered when it names a
    subcommand and every subcommand otherwise."""
    from . import __version__

    parser = _Parser(
        prog="dgating",
        description="Verify the theory of D-Gating structured sparsity and simulate its dynamics.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dgating {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    modules = [SUBCOMMANDS[command]] if command in SUBCOMMANDS else SUBCOMMANDS.values()
    for name in dict.fromkeys(modules):
        importlib.import_module(name).register(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _save_traceback() -> str:
    """Write the current exception's traceback to a new file in the temp folder; its path."""
    try:
        fd, path = tempfile.mkstemp(prefix="dgating-traceback-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            fh.write(traceback.format_exc())
        return path
    except OSError:  # the temp folder itself is unusable: say so instead of failing again
        return "(not saved: the temporary folder is not writable)"


def _silence_stdout() -> None:
    """Point the stdout descriptor at /dev/null so that the final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout replaced (tests) or already closed
        pass


def run_guarded(prog: str, call: Callable[[], int]) -> int:
    """Run ``call()`` under the exit-status contract (:data:`EXIT_STATUS`); never raises.

    Parameters
    ----------
    prog : str
        Prefix of the one stderr line, e.g. ``"dgating solve"``.
    call : callable
        Returns the exit status of a finished run (0 or 1).
    """
    try:
        with warnings.catch_warnings():
            if not sys.warnoptions:  # numerical warnings are not part of the CLI's output
                warnings.simplefilter("ignore")
            status = int(call())
        sys.stdout.flush()
        return status
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except InputError as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        print(f"{prog}: stdout was closed before the output was complete", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" '{exc.filename}'" if exc.filename else ""
        print(
            f"{prog}: error: cannot use{where}: {exc.strerror or _one_line(exc)}", file=sys.stderr
        )
        return 2
    except Exception as exc:
        path = _save_traceback()
        print(
            f"{prog}: internal error: {type(exc).__name__}: {_one_line(exc)} "
            f"(traceback saved to {path})",
            file=sys.stderr,
        )
        return 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dgating`` console script; returns the exit status."""
    console = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in SUBCOMMANDS:
        return run_guarded("dgating", lambda: _top_level(argv, command))

    def run() -> int:
        if console:  # SIGTERM cleans up like Ctrl-C (temporary files, workers); inside the guard
            import signal

            signal.signal(signal.SIGTERM, _interrupt)
        args, extra = build_parser(command).parse_known_args(argv)
        if extra:
            raise InputError(f"unrecognized arguments: {' '.join(extra)}")
        if getattr(args, "max_seconds", None) is None:
            return args.handler(args)
        expired: list[str] = []
        try:
            expired = _start_budget(args.max_seconds)
            status = args.handler(args)
        except BudgetExhausted as exc:
            return untrustworthy(command, [str(exc)])
        finally:
            _stop_budget()
        return untrustworthy(command, expired[:1]) if expired else status

    status = run_guarded(f"dgating {command}", run)
    if console and status == 130:
        # CPython remembers a KeyboardInterrupt raised inside code it ran with PyRun_* (e.g.
        # while importing) and would end the process with SIGINT although it was handled; the
        # cleanup has run, so leave with the documented status.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(130)
    return status


def _top_level(argv: list[str], command: str | None) -> int:
    """``dgating``, ``dgating --help``, ``dgating --version`` and unknown commands, answered
    without importing any subcommand module."""
    if command is not None:
        raise InputError(f"Unknown command {command!r}. Valid: {', '.join(SUBCOMMANDS)}.")
    if "--version" in argv:
        from . import __version__

        print(f"dgating {__version__}")
        return 0
    if argv and not any(a in ("-h", "--help") for a in argv):
        raise InputError(f"Unknown option {argv[0]!r}. Valid: -h, --help, --version.")
    print(_top_level_help())
    return 0 if argv else 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
