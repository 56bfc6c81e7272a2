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
        "multiplicative parametrisation of depth D (--depth), or the effective penalty, the "
        "conservation and decay laws of any parametrisation defined by its parts (--spec FILE). "
        "Exit status 1 if any identity fails to simplify to zero.",
        epilog="Spec file (TOML): parameters = [names of real scalar parameters]; weights = "
        "[one monomial in the parameters per weight, coefficient 1]; groups = [[weight indices "
        'per group]] (default: one group); penalty = "R(theta)" (objective L0(w) + lam * R); '
        'description = "..." (optional). Example: parameters = ["u1", "u2", "g"], '
        'weights = ["u1*g", "u2*g"], penalty = "(u1**2 + u2**2 + g**2)/2". Built-in specs: '
        "dgating/theory/specs/*.toml. The effective penalty is derived when the penalty is a "
        "positive weighted sum of even powers of single parameters, every weight of a group is "
        "(own parameter) x (one gate monomial) and shared gates are nested with equal "
        "exponents; otherwise it is null and effective_penalty_status says why. Decay laws: a "
        "rate in lam, or null with the derived ODE.",
    )
    p.add_argument("--depth", help="D >= 2 (integer); required unless --spec is given")
    p.add_argument("--group-size", help="group size p_j >= 1 (default 1)")
    p.add_argument(
        "--parametrization",
        help="dgating (default), hadamard (w_i = u_i1...u_iD, P coordinates) or shared-gates "
        "(two groups of size P share the gates)",
    )
    p.add_argument(
        "--spec",
        metavar="FILE",
        help="a TOML file defining the parametrisation by its parts (see below); replaces "
        "--depth, --group-size and --parametrization",
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
    from .._validation import (
        InvalidParameterError,
        check_choice,
        check_integer,
        check_output_file,
    )
    from ..cli import untrustworthy
    from .derivation import derive, derive_spec
    from .parametrization import PARAMETRIZATIONS
    from .spec import load_spec

    latex = None if args.latex is None else check_output_file(args.latex, "--latex")
    if args.spec is not None:
        for option in ("depth", "group_size", "parametrization"):
            value = getattr(args, option)
            if value is not None:
                flag = "--" + option.replace("_", "-")
                raise InvalidParameterError(
                    f"`{flag}` must not be given with `--spec` (the file defines the "
                    f"parametrisation); got {flag} {value!r}."
                )
        der = derive_spec(load_spec(args.spec))
        summary = _spec_summary
    else:
        if args.depth is None:
            raise InvalidParameterError("`--depth` must be given (or `--spec FILE`); got neither.")
        depth = check_integer(_integer(args.depth, "--depth"), "--depth", 2, MAX_DEPTH)
        size = check_integer(
            _integer(args.group_size or "1", "--group-size"), "--group-size", 1, MAX_SIZE
        )
        name = check_choice(
            args.parametrization or "dgating", "--parametrization", PARAMETRIZATIONS
        )
        der = derive(depth, size, name)
        summary = _print_summary
    if latex is not None:
        write_atomic(latex, der.to_latex())
    if args.json:
        print(json.dumps(der.to_json()))
    else:
        summary(der, args.latex)
    failed = [step.name for step in der.failed]
    return untrustworthy(
        "derive", [f"identities do not simplify to zero: {failed}"] if failed else []
    )


def _spec_summary(der, latex: str | None) -> None:
    spec, pen, cons = der.spec, der.penalty, der.conservation
    lines = [
        f"dgating derive --spec: {spec.name} ({spec.n_params} parameters, {spec.n_weights} "
        f"weights, {len(spec.groups)} groups)",
        f"  effective penalty     {pen.expr}   ({pen.status})",
        f"  conservation laws     {cons.lie.n_laws} (Lie algebra, {cons.lie.status}); "
        f"{len(cons.quantities)} found",
        *(
            f"  decay                 d/dt ({d.quantity}) = -({d.rate}) Q"
            if d.rate is not None
            else f"  no closed decay law   d/dt ({d.quantity}) = {d.derivative}"
            for d in cons.decay_laws
        ),
        f"  identities            {len(der.steps) - len(der.failed)}/{len(der.steps)} "
        "simplify to zero",
    ]
    lines += [f"  FAILED                {s.name}: residual {s.residual}" for s in der.failed]
    lines += [f"  undecided             {u}" for u in der.undecided]
    if latex:
        lines.append(f"  LaTeX                 written to {latex}")
    print("\n".join(lines))


def _print_summary(der, latex: str | None) -> None:
    lines = [
        f"dgating derive: {der.spec.name}, D={der.depth}, p={der.group_size} "
        f"({der.spec.n_params} parameters)",
        f"  effective penalty     {der.effective_penalty}   (r = ||w_B||; total "
        f"{der.effective_penalty_total})",
        f"  imbalance rate        {der.imbalance_rate}   Delta(t) = {der.imbalance_solution}",
        f"  conservation laws     {der.number_of_conservation_laws} (Lie algebra, "
        f"{der.lie_status}); {len(der.conserved_quantities)} independent found: "
        + ", ".join(str(h) for h in der.conserved_quantities[:4])
        + (" ..." if len(der.conserved_quantities) > 4 else ""),
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
