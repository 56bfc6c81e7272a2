"""``dgating nn-experiment``: sparsity-accuracy trade-offs of D-Gating on digits and wine."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dgating nn-experiment``."""
    from ..cli import HELP, number

    p = subparsers.add_parser(
        "nn-experiment",
        help=HELP["nn-experiment"],
        description="Train small MLPs on scikit-learn's digits (neuron groups) and wine "
        "(input-feature groups), and a small ResNet on digits (batch norm channel groups, exported "
        "models' parameter counts) with D-Gating (D = 2, 3, 4) and baselines over a lam grid; "
        "print the trade-off table and optionally write results.csv and results.json to --out.",
    )
    p.add_argument("--quick", action="store_true", help="tiny grid that runs in seconds")
    p.add_argument("--out", metavar="DIR", help="folder for results.csv and results.json")
    p.add_argument("--seeds", type=int, help="number of seeds (default 5; 1 with --quick)")
    p.add_argument("--lams", type=number, nargs="+", help="lam grid (default 0.005 ... 0.5)")
    p.add_argument("--depths", type=int, nargs="+", help="depths D (default 2 3 4)")
    p.add_argument("--jobs", type=int, help="worker processes (default 2; 1 with --quick)")
    p.add_argument(
        "--datasets",
        nargs="+",
        metavar="NAME",
        help="subset of digits, wine, digits-resnet (default: all three)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (rows and table)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .._validation import LIMITS, check_choice, check_integer, check_output_dir, check_real
    from ..cli import print_json
    from .experiments import (
        DATASETS,
        ExperimentConfig,
        format_table,
        quick_config,
        run_experiments,
        trade_off_table,
        write_results,
    )

    cfg = quick_config() if args.quick else ExperimentConfig()
    seeds = None if args.seeds is None else check_integer(args.seeds, "--seeds", 1, 1000)
    lams = None if args.lams is None else [check_real(v, "--lams", 0.0, 1e3) for v in args.lams]
    depths = (
        None
        if args.depths is None
        else [check_integer(d, "--depths", 2, LIMITS["depth"]) for d in args.depths]
    )
    datasets = (
        None
        if args.datasets is None
        else [check_choice(d, "--datasets", DATASETS) for d in args.datasets]
    )
    overrides = {
        "seeds": seeds,
        "lams": None if lams is None else tuple(dict.fromkeys(lams)),
        "depths": None if depths is None else tuple(dict.fromkeys(depths)),
        "n_jobs": None if args.jobs is None else check_integer(args.jobs, "--jobs", 1, 256),
        "datasets": None if args.datasets is None else tuple(dict.fromkeys(datasets)),
    }
    out = None if args.out is None else check_output_dir(args.out, "--out")
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    rows = run_experiments(cfg, progress=not args.json)
    paths = write_results(rows, out, cfg) if out is not None else {}
    if args.json:
        print_json(
            {
                "rows": rows,
                "trade_off": trade_off_table(rows),
                "files": {k: str(v) for k, v in paths.items()},
            }
        )
        return 0
    print(format_table(rows))
    for path in paths.values():
        print(f"wrote {path}")
    return 0
