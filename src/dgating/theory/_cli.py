"""``dgating derive``: the symbolic derivations of :mod:`dgating.theory` on the command line."""

from __future__ import annotations

import argparse
import json

__all__ = ["register", "run"]

#: Largest depth and group size of ``derive``: sympy's work grows quickly with both (D = 16 or
#: p = 12 take about 15 s on one core).
MAX_DEPTH, MAX_SIZE = 16, 12


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dgating derive`` to the top-level parser."""
    from ..cli import HELP, add_budget_option

    p = subparsers.add_parser(
        "derive",
        help=HELP["derive"],
        description="Derive the effective penalty, the conservation laws and their number "
        "(Lie-algebra method), the imbalance and gap rates and the SGD recursion for a "
        "multiplicative parametrisation of depth D. Exit status 1 if any identity fails to "
        "simplify to zero.",
    )
    p.add_argument("--depth", required=True, help="D >= 2 (integer)")
    p.add_argument("--group-size", default="1", help="group size p_j >= 1 (default 1)")
    p.add_argument(
        "--parametrization",
        default="dgating",
        help="dgating (default), hadamard (w_i = u_i1...u_iD, P coordinates) or shared-gates "
        "(two groups of size P share the gates)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--latex", metavar="FILE", help="write a LaTeX document with every step")
    add_budget_option(p)
    p.set_defaults(handler=run)


def _integer(text: object, name: str) -> object:
    """Parse an integer argument; other text is passed on for the library's validation."""
    if isinstance(text, str):
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                from .._validation import InvalidParameterError

                raise InvalidParameterError(f"`{name}` must be an integer; got {text!r}.") from None
    return text


def run(args: argparse.Namespace) -> int:
    """Run ``dgating derive``; return 0 if every step holds and 1 otherwise."""
    from .._io import write_atomic
    from .._validation import check_choice, check_integer, check_output_file
    from ..cli import untrustworthy
    from .derivation import derive
    from .parametrization import PARAMETRIZATIONS

    depth = check_integer(_integer(args.depth, "--depth"), "--depth", 2, MAX_DEPTH)
    size = check_integer(_integer(args.group_size, "--group-size"), "--group-size", 1, MAX_SIZE)
    name = check_choice(args.parametrization, "--parametrization", PARAMETRIZATIONS)
    latex = None if args.latex is None else check_output_file(args.latex, "--latex")
    der = derive(depth, size, name)
    if latex is not None:
        write_atomic(latex, der.to_latex())
    if args.json:
        print(json.dumps(der.to_json()))
    else:
        _print_summary(der, args.latex)
    failed = [step.name for step in der.failed]
    return untrustworthy(
        "derive", [f"identities do not simplify to zero: {failed}"] if failed else []
    )


def _print_summary(der, latex: str | None) -> None:
    lines = [
        f"dgating derive: {der.spec.name}, D={der.depth}, p={der.group_size} "
        f"({der.spec.n_params} parameters)",
        f"  effective penalty     {der.effective_penalty}   (r = ||w_B||; total "
        f"{der.effective_penalty_total})",
        f"  imbalance rate        {der.imbalance_rate}   Delta(t) = {der.imbalance_solution}",
        f"  conservation laws     {der.number_of_conservation_laws} (Lie algebra, "
        f"{der.lie_status}); {len(der.independent_quantities)} independent found: "
        + ", ".join(str(h) for h in der.independent_quantities[:4])
        + (" ..." if len(der.independent_quantities) > 4 else ""),
        "  gap rates             "
        + ", ".join(f"{k}: {v}" for k, v in der.gap_rates.items())
        + f"   (overall {der.overall_gap_rate})",
        f"  SGD contraction       {der.sgd_contraction} for eta in {der.sgd_step_range}",
        *(
            [
                f"  SGD, scalar groups    vanishing: {der.sgd_limit.vanishing}; surviving: "
                f"{der.sgd_limit.surviving} (full-batch GD, per step)"
            ]
            if der.sgd_limit is not None
            else []
        ),
        f"  identities            {len(der.steps) - len(der.failed)}/{len(der.steps)} "
        "simplify to zero",
    ]
    lines += [
        f"  FAILED                {step.name}: residual {step.residual}" for step in der.failed
    ]
    lines += [f"  hypothesis ({k})  {h}" for k, hs in der.gap_hypotheses.items() for h in hs]
    lines += [f"  undecided             {u}" for u in der.undecided]
    if latex:
        lines.append(f"  LaTeX                 written to {latex}")
    print("\n".join(lines))
