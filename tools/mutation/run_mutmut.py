"""Generic mutation testing of ``dgating.theory`` and ``dgating.proofs_check`` with mutmut 3.

The run happens in a scratch directory (default ``/tmp/dgating-mutmut``) holding a copy of
``src/`` and ``tests/`` and the mutmut configuration below, so that the repository's own
``pyproject.toml`` and work tree stay untouched. Per mutant, mutmut runs only the tests of
``tests/theory`` and ``tests/proofs_check`` that execute the mutated function (the quick-suite
tests of ``tests/proofs_check/test_suite.py``, minutes each, are left out by
``-k "not quick_suite"``).

Usage::

    pip install -e ".[mutation]"                         # mutmut, not a dependency of dgating
    python tools/mutation/run_mutmut.py                  # every mutant (hours on 1 core)
    python tools/mutation/run_mutmut.py --sample 300     # a seeded random sample of mutants
    python tools/mutation/run_mutmut.py --report         # score of the last run
    python tools/mutation/run_mutmut.py --rerun-survivors  # after adding tests: survivors again

The score is ``killed / (killed + survived + no tests)``; timeouts count as killed (mutmut's
convention), "skipped" and "not checked" mutants are left out and reported. Survivors are triaged
in ``tools/mutation/TRIAGE.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ["src/dgating/theory/*", "src/dgating/proofs_check/*"]
TESTS = ["tests/theory/", "tests/proofs_check/", "tests/mutation/test_survivors.py"]
# The whole package is copied (source_paths) so that ``dgating`` imports from the mutated copy;
# only the two subpackages are mutated (only_mutate).
SELECTION = ["-k", "not quick_suite", "-p", "no:cacheprovider"] + TESTS
CONFIG = f"""
[tool.mutmut]
source_paths = ["src/"]
only_mutate = {json.dumps(TARGETS)}
pytest_add_cli_args_test_selection = {json.dumps(SELECTION)}
timeout_multiplier = 5.0

[tool.pytest.ini_options]
addopts = "--import-mode=importlib -m 'not slow'"
markers = ["slow: long-running tests"]
"""
STATUS = {
    "killed": "killed",
    "timeout": "killed",
    "survived": "survived",
    "no tests": "no tests",
    "skipped": "skipped",
    "not checked": "not checked",
    "suspicious": "killed",
    "segfault": "killed",
    "caught by type check": "killed",
}


def _mutmut(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=workdir,
        env=env,
        text=True,
        capture_output=True,
    )


def prepare(workdir: Path, subs: tuple[str, ...] = ("src", "tests")) -> None:
    """Scratch copy of ``src/`` and ``tests/`` (or only ``subs``) with the configuration above."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for sub in subs:
        shutil.rmtree(workdir / sub, ignore_errors=True)
        shutil.copytree(ROOT / sub, workdir / sub, ignore=ignore)
    (workdir / "pyproject.toml").write_text(CONFIG)


def results(workdir: Path) -> dict[str, str]:
    """Mutant name -> status of every mutant mutmut knows (``mutmut results --all true``)."""
    out = _mutmut(workdir, "results", "--all", "true").stdout
    res = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and status in STATUS:
            res[name] = status
    return res


def score(res: dict[str, str]) -> dict:
    """Counts per status and the score ``killed / (killed + survived + no tests)``."""
    counts: dict[str, int] = {}
    for status in res.values():
        counts[STATUS[status]] = counts.get(STATUS[status], 0) + 1
    decided = sum(counts.get(k, 0) for k in ("killed", "survived", "no tests"))
    return {
        "counts": counts,
        "score": counts.get("killed", 0) / decided if decided else float("nan"),
        "survivors": sorted(k for k, v in res.items() if STATUS[v] in ("survived", "no tests")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dgating-mutmut"))
    parser.add_argument("--sample", type=int, default=0, help="run a random sample of N mutants")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--only", default="", help="restrict to mutant names containing this")
    parser.add_argument("--report", action="store_true", help="only report the last run")
    parser.add_argument(
        "--rerun-survivors",
        action="store_true",
        help="copy the current tests, recollect the test statistics and run the survivors again",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the summary JSON here")
    args = parser.parse_args(argv)
    if args.rerun_survivors:
        survivors = score(results(args.workdir))["survivors"]
        prepare(args.workdir, ("tests",))
        (args.workdir / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
        _mutmut(args.workdir, "run", "--max-children", "1", *survivors)
    elif not args.report:
        shutil.rmtree(args.workdir, ignore_errors=True)
        args.workdir.mkdir(parents=True)
        prepare(args.workdir)
        names: list[str] = []
        if args.sample or args.only:
            # Generate the mutants and the test statistics: a run restricted to a name that
            # matches no mutant (mutmut stops there with an assertion, which is expected).
            _mutmut(args.workdir, "run", "--max-children", "1", "__none__")
            names = [n for n in results(args.workdir) if args.only in n]
            if args.sample:
                names = sorted(random.Random(args.seed).sample(sorted(names), args.sample))
        proc = _mutmut(args.workdir, "run", "--max-children", "1", *names)
        if proc.returncode != 0:
            print(proc.stdout[-2000:] + proc.stderr[-2000:], file=sys.stderr)
            return 1
    res = results(args.workdir)
    summary = score(res)
    text = json.dumps(summary, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
