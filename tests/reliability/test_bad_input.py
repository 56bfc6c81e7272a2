"""The bad-input table: every case ends with exit status 2, one stderr line naming the problem,
no traceback, within its time bound, and nothing written.

Placeholders in the argument lists: ``{ex}`` the bundled example data, ``{dir}`` a fresh folder,
``{file}`` an existing regular file, ``{ro}`` a location that cannot be created (under /proc),
``{toml}`` a sweep file holding the case's TOML text.
"""

from __future__ import annotations

import os

import pytest

from dgating.cli import SUBCOMMANDS

from .harness import EXAMPLE, assert_one_line, run_case, write_bad_data

# (data file, extra options, fragment of the message) for `solve` and `flow`.
DATA_CASES = [
    ("complex_X", [], "'X' must be real numbers"),
    ("complex_y", [], "'y' must be real numbers"),
    ("string_X", [], "'X' must be real numbers"),
    ("object_X", [], "'X' must be real numbers"),
    ("groups_complex", [], "'groups' must be real numbers"),
    ("nan_X", [], "`X` must contain only finite values"),
    ("inf_y", [], "`y` must contain only finite values"),
    ("huge_X", [], "'X' must have entries of magnitude <= 1e+100"),
    ("huge_y", [], "'y' must have entries of magnitude <= 1e+100"),
    ("X_3d", [], "`X` must be a 2-d array"),
    ("X_1d", [], "`X` must be a 2-d array"),
    ("y_2d", [], "`y` must be a 1-d array"),
    ("y_short", [], "`y` must have shape (n_samples,) = (20,)"),
    ("groups_short", [], "`groups` must have shape (n_features,) = (4,)"),
    ("groups_float", [], "`groups` must contain integer labels"),
    ("groups_nan", [], "`groups` must contain integer labels"),
    ("groups_below", [], "`groups` labels must be -1 (unpenalised) or >= 0; got -2"),
    ("groups_gap", [], "no gaps; got labels up to 2 with [1] missing"),
    ("groups_2pow40", [], "no gaps; got labels up to 1099511627776 with [2, 3, 4, 5, 6]"),
    ("no_X", [], "without X"),
    ("no_y", [], "without y"),
    ("no_groups", [], "without groups"),
    ("empty_X", [], "`X` must have at least one row and column"),
    ("no_features", [], "`X` must have at least one row and column"),
    ("logistic_targets", ["--loss", "logistic"], "`y`"),
    ("not_zip", [], "`DATA` must be a readable .npz file"),
    ("empty_file", [], "`DATA` must be a readable .npz file"),
    ("truncated", [], "`DATA`"),
    ("single_npy", [], "`DATA` must be a .npz file (np.savez)"),
    ("folder", [], "`DATA` must be an existing .npz file"),
    ("missing", [], "`DATA` must be an existing .npz file"),
    ("huge_header_X", [], "'X' must have at most 50,000,000 entries"),
]

FIXED = {
    "solve": ["--depth", "3", "--lam", "0.1"],
    "flow": ["--depth", "3", "--lam", "0.1", "--t-end", "5"],
}

# (argv, fragment of the one stderr line).
OPTION_CASES = [
    # top level
    (["bogus"], "dgating: error: Unknown command 'bogus'"),
    (["--bogus"], "dgating: error: Unknown option '--bogus'"),
    ([], "usage: dgating"),
    # solve
    (["solve", "{ex}", "--depth", "1", "--lam", "0.1"], "`--depth` must be an integer >= 2"),
    (["solve", "{ex}", "--depth", "0", "--lam", "0.1"], "`--depth` must be an integer >= 2"),
    (["solve", "{ex}", "--depth", "-3", "--lam", "0.1"], "`--depth` must be an integer >= 2"),
    (["solve", "{ex}", "--depth", "2.5", "--lam", "0.1"], "`--depth` must be an integer >= 2"),
    (["solve", "{ex}", "--depth", "nan", "--lam", "0.1"], "`--depth` must be an integer >= 2"),
    (["solve", "{ex}", "--depth", "inf", "--lam", "0.1"], "`--depth` must be an integer >= 2"),
    (["solve", "{ex}", "--depth", "x", "--lam", "0.1"], "argument --depth: expected a number"),
    (["solve", "{ex}", "--depth", "3", "--lam", "-1"], "`--lam` must be a finite number >= 0"),
    (["solve", "{ex}", "--depth", "3", "--lam", "nan"], "`--lam` must be a finite number >= 0"),
    (["solve", "{ex}", "--depth", "3", "--lam", "inf"], "`--lam` must be a finite number >= 0"),
    (["solve", "{ex}", "--depth", "3", "--lam", "1e999"], "`--lam` must be a finite number"),
    (["solve", "{ex}", "--depth", "3", "--lam", ""], "argument --lam: expected a number"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--method", "sgd"], "Unknown `--method`"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--method", ""], "Unknown `--method`"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--loss", "hinge"], "Unknown `--loss`"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--init", "zeros"], "Unknown `--init`"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--seed", "-1"], "`--seed` must be an"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--seed", "1.5"], "argument --seed"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--seed", str(2**64)], "`--seed` must"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--init-scale", "0"], "`--init-scale`"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--init-scale", "-1"], "`--init-scale`"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--init-scale", "nan"], "`--init-scale`"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--init-scale", "1e7"], "`--init-scale`"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--tol", "0"], "`--tol` must be"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--tol=-1e-8"], "`--tol` must be"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--tol", "nan"], "`--tol` must be"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--tol", "2"], "`--tol` must be"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--max-seconds", "0"], "`--max-seconds`"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--max-seconds", "-1"], "`--max-seconds`"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--max-seconds", "inf"], "`--max-seconds`"),
    (["solve", "{ex}", "--depth", "3", "--lam", "0.1", "--bogus"], "unrecognized arguments"),
    (["solve", "{ex}", "--depth", "3"], "the following arguments are required: --lam"),
    (["solve", "--depth", "3", "--lam", "0.1"], "the following arguments are required: DATA"),
    (["solve", "{dir}", "--depth", "3", "--lam", "0.1"], "`DATA` must be an existing .npz"),
    # flow
    (["flow", "{ex}", "--depth", "1", "--lam", "0.1", "--t-end", "5"], "`--depth` must be"),
    (["flow", "{ex}", "--depth", "33", "--lam", "0.1", "--t-end", "5"], "integer in [2, 32]"),
    (["flow", "{ex}", "--depth", "2.5", "--lam", "0.1", "--t-end", "5"], "`--depth` must be"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0", "--t-end", "5"], "`--lam` must be > 0"),
    (["flow", "{ex}", "--depth", "3", "--lam", "-1", "--t-end", "5"], "`--lam` must be"),
    (["flow", "{ex}", "--depth", "3", "--lam", "nan", "--t-end", "5"], "`--lam` must be"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "0"], "`--t-end` must be"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "-5"], "`--t-end` must be"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "nan"], "`--t-end` must be"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "inf"], "`--t-end` must be"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "1e300"], "4 lam T / D <= 200"),
    (["flow", "{ex}", "--depth", "3", "--lam", "1000", "--t-end", "1000"], "4 lam T / D"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--n-eval", "1"], "n-eval"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--n-eval", "9"], "n-eval"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--n-eval", "10**9"], "n-"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--n-eval", "1e9"], "n-"),
    (
        ["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--n-eval", "1000000000"],
        "`--n-eval` must be an integer in [10, 100000]",
    ),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--seed", "-1"], "`--seed`"),
    (
        ["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--seed", str(2**63)],
        "`--seed` must be an integer in [0, 9223372036854775807]",
    ),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--init-scale", "1e6"], "`"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--init-scale", "0"], "`"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--init-scale", "nan"], "`"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--init", "zeros"], "`--in"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--rtol", "0"], "`--rtol`"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--rtol", "1"], "`--rtol`"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--rtol", "nan"], "`--rto"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--atol", "0"], "`--atol`"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--atol", "-1"], "`--atol`"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--backend", "jax"], "Unk"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--loss", "hinge"], "Unk"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1", "--t-end", "5", "--max-seconds", "0"], "`"),
    (["flow", "{ex}", "--depth", "3", "--lam", "0.1"], "required: --t-end"),
    # derive
    (["derive", "--depth", "1"], "`--depth` must be an integer in [2, 16]"),
    (["derive", "--depth", "40"], "`--depth` must be an integer in [2, 16]"),
    (["derive", "--depth", "-3"], "`--depth` must be an integer in [2, 16]"),
    (["derive", "--depth", "2.5"], "`--depth` must be an integer in [2, 16]"),
    (["derive", "--depth", "nan"], "`--depth` must be an integer in [2, 16]"),
    (["derive", "--depth", "x"], "`--depth` must be an integer; got 'x'"),
    (["derive", "--depth", ""], "`--depth` must be an integer; got ''"),
    (["derive", "--depth", "3", "--group-size", "0"], "`--group-size` must be an integer in"),
    (["derive", "--depth", "3", "--group-size", "13"], "`--group-size` must be an integer in"),
    (["derive", "--depth", "3", "--group-size", "1.5"], "`--group-size` must be an integer in"),
    (["derive", "--depth", "3", "--group-size", "y"], "`--group-size` must be an integer"),
    (["derive", "--depth", "3", "--parametrization", "tensor"], "Unknown `--parametrization`"),
    (["derive", "--depth", "3", "--latex", "{dir}/missing/out.tex"], "`--latex` must be in an"),
    (["derive", "--depth", "3", "--latex", "{dir}"], "`--latex` must be a file path"),
    (["derive", "--depth", "3", "--latex", ""], "`--latex` must be a non-empty file path"),
    (["derive", "--depth", "3", "--latex", "/proc/out.tex"], "`--latex` must be a writable"),
    (["derive", "--depth", "3", "--latex", "{file}/out.tex"], "`--latex` must be in an existing"),
    (["derive", "--depth", "3", "--max-seconds", "-5"], "`--max-seconds` must be"),
    (["derive"], "`--depth` must be given (or `--spec FILE`); got neither."),
    # simulate: options
    (["simulate", "--out", "", "--no-progress"], "`--out` must be a non-empty folder path"),
    (["simulate", "--out", "{file}", "--no-progress"], "`--out` must be a folder; got"),
    (["simulate", "--out", "{file}/sub", "--no-progress"], "`--out` must be a folder that can"),
    (["simulate", "--out", "{ro}", "--no-progress"], "`--out` must be a folder that can be"),
    (["simulate", "--out", "/proc", "--no-progress"], "`--out` must be a writable location"),
    (["simulate", "--out", "{dir}", "--workers", "0"], "`--workers` must be an integer in"),
    (["simulate", "--out", "{dir}", "--workers", "-1"], "`--workers` must be an integer in"),
    (["simulate", "--out", "{dir}", "--workers", "1000"], "`--workers` must be an integer in"),
    (["simulate", "--out", "{dir}", "--workers", "two"], "argument --workers"),
    (["simulate", "--out", "{dir}", "--scheduler", "nonsense"], "`--scheduler` must be an addr"),
    (["simulate", "--out", "{dir}", "--scheduler", "tcp://host"], "`--scheduler` must be an a"),
    (["simulate", "--out", "{dir}", "--scheduler", "http://h:80"], "`--scheduler` must be an a"),
    (["simulate", "--out", "{dir}", "--scheduler", ""], "`--scheduler` must be an address"),
    (["simulate", "--config", "{dir}/none.toml", "--out", "{dir}"], "`--config` must be a TOML"),
    (["simulate", "--config", "{dir}", "--out", "{dir}"], "`--config` must be a TOML file"),
    (["simulate", "--config", "quick2", "--out", "{dir}"], "`--config` must be a TOML file"),
    # simulate: config files
    (["toml:[sweep\n"], "`--config` must be valid TOML"),
    (["toml:\x00\x01\x02"], "`--config` must be valid TOML"),
    (["toml:sweep = 1"], "`--config` table [sweep] must be a table"),
    (["toml:depth = [3]"], "Unknown sweep keys ['depth']"),
    (['toml:seeds = ["x"]'], "`seeds` must be an integer in [0, 9223372036854775807]; got 'x'"),
    (["toml:seeds = [-1]"], "`seeds` must be an integer in [0, 9223372036854775807]; got -1"),
    (["toml:seeds = [1.5]"], "`seeds` must be an integer in [0, 9223372036854775807]; got 1.5"),
    (["toml:seeds = [true]"], "`seeds` must be an integer"),
    (["toml:seeds = []"], "`seeds` must be a non-empty list"),
    (["toml:seeds = [[1]]"], "`seeds` must be an integer"),
    (['toml:n_samples = ["a"]'], "`n_samples` must be an integer in [1, 1000000]; got 'a'"),
    (["toml:n_samples = [0]"], "`n_samples` must be an integer in [1, 1000000]; got 0"),
    (["toml:n_samples = [10000000]"], "`n_samples` must be an integer in"),
    (["toml:n_features = [-2]"], "`n_features` must be an integer in"),
    (["toml:n_groups = [0]"], "`n_groups` must be an integer in"),
    (["toml:n_groups = [20]\nn_features = [8]"], "`n_groups` must be <= n_features"),
    (["toml:n_samples = [1000000]\nn_features = [1000]"], "`n_samples` x `n_features`"),
    (["toml:depths = [1000]"], "`depths` must be an integer in [2, 32]; got 1000"),
    (["toml:depths = [1]"], "`depths` must be an integer in [2, 32]; got 1"),
    (["toml:depths = [2.5]"], "`depths` must be an integer in [2, 32]; got 2.5"),
    (['toml:depths = "3"'], "`depths` must be an integer in [2, 32]; got '3'"),
    (["toml:lams = [0]"], "`lams` must be a finite number in (0, 1e+06]"),
    (["toml:lams = [-1]"], "`lams` must be a finite number in (0, 1e+06]"),
    (["toml:lams = [nan]"], "`lams` must be a finite number in (0, 1e+06]"),
    (["toml:lams = [inf]"], "`lams` must be a finite number in (0, 1e+06]"),
    (['toml:lams = ["a"]'], "`lams` must be a finite number in (0, 1e+06]"),
    (['toml:inits = ["zeros"]'], "Unknown `inits` 'zeros'"),
    (['toml:losses = ["hinge"]'], "Unknown `losses` 'hinge'"),
    (['toml:backend = "jax"'], "Unknown `backend` 'jax'"),
    (["toml:decay = 1e12"], "`decay` must be a finite number in (0, 200]"),
    (["toml:decay = 0"], "`decay` must be a finite number in (0, 200]"),
    (['toml:decay = "x"'], "`decay` must be a finite number in (0, 200]"),
    (["toml:n_eval = 1"], "`n_eval` must be an integer in [10, 100000]; got 1"),
    (["toml:n_eval = 1000000000"], "`n_eval` must be an integer in [10, 100000]"),
    (["toml:n_eval = 100.5"], "`n_eval` must be an integer in [10, 100000]"),
    (["toml:rtol = 0"], "`rtol` must be a finite number in [1e-14, 0.01]"),
    (["toml:rtol = 1"], "`rtol` must be a finite number in [1e-14, 0.01]"),
    (["toml:t_end = 1e300"], "`t_end` must keep 4 lam T / D <= 200"),
    (["toml:t_end = -1"], "`t_end` must be a finite number in (0, 1e+300]"),
    (["toml:init_scale = 0"], "`init_scale` must be a finite number in (0, 10]"),
    (["toml:init_scale = 1e6"], "`init_scale` must be a finite number in (0, 10]"),
    (
        ["toml:seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\nlams = " + str(list(range(1, 1001)))],
        "the sweep grid must have at most 10,000 configurations",
    ),
    # verify
    (["verify", "--suite", "huge"], "Unknown `--suite` 'huge'"),
    (["verify", "--depth", "1"], "`--depth` must be an integer in [2, 32]"),
    (["verify", "--depth", "40"], "`--depth` must be an integer in [2, 32]"),
    (["verify", "--depth", "2.5"], "`--depth` must be an integer in [2, 32]"),
    (["verify", "--depth", "x"], "argument --depth: expected a number"),
    (["verify", "--jobs", "0"], "`--jobs` must be an integer in [1, 256]"),
    (["verify", "--jobs", "-2"], "`--jobs` must be an integer in [1, 256]"),
    (["verify", "--problem", "nonesuch"], "Unknown `--problem` 'nonesuch'"),
    (["verify", "--out", ""], "`--out` must be a non-empty folder path"),
    (["verify", "--out", "{file}"], "`--out` must be a folder; got"),
    (["verify", "--out", "{ro}"], "`--out` must be a folder that can be created"),
    (["verify", "--suite"], "argument --suite: expected one argument"),
    # nn-experiment
    (["nn-experiment", "--quick", "--seeds", "0"], "`--seeds` must be an integer in [1, 1000]"),
    (["nn-experiment", "--quick", "--seeds", "-1"], "`--seeds` must be an integer in"),
    (["nn-experiment", "--quick", "--seeds", "x"], "argument --seeds"),
    (["nn-experiment", "--quick", "--lams", "-1"], "`--lams` must be a finite number in"),
    (["nn-experiment", "--quick", "--lams", "nan"], "`--lams` must be a finite number in"),
    (["nn-experiment", "--quick", "--depths", "1"], "`--depths` must be an integer in [2, 32]"),
    (["nn-experiment", "--quick", "--depths", "100"], "`--depths` must be an integer in"),
    (["nn-experiment", "--quick", "--jobs", "0"], "`--jobs` must be an integer in [1, 256]"),
    (["nn-experiment", "--quick", "--out", ""], "`--out` must be a non-empty folder path"),
    (["nn-experiment", "--quick", "--out", "{file}"], "`--out` must be a folder; got"),
    (["nn-experiment", "--quick", "--out", "{ro}"], "`--out` must be a folder that can be"),
    # figures
    (["figures", "--only", "F99"], "Unknown figure 'F99' for --only"),
    (["figures", "--out", ""], "`--out` must be a non-empty folder path"),
    (["figures", "--out", "{file}"], "`--out` must be a folder; got"),
    (["figures", "--out", "{ro}"], "`--out` must be a folder that can be created"),
    (["figures", "--out", "{file}/sub"], "`--out` must be a folder that can be created"),
    # reproduce
    (["reproduce", "--out", ""], "`--out` must be a non-empty folder path"),
    (["reproduce", "--out", "{file}"], "`--out` must be a folder; got"),
    (["reproduce", "--out", "{ro}"], "`--out` must be a folder that can be created"),
    (["reproduce", "--out", "{file}/sub"], "`--out` must be a folder that can be created"),
    (["reproduce", "--quick", "--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory):
    return write_bad_data(tmp_path_factory.mktemp("bad_data"))


def _expand(argv: list[str], tmp_path) -> list[str]:
    file = tmp_path / "a_file.txt"
    file.write_text("not a folder")
    if argv and argv[0].startswith("toml:"):
        toml = tmp_path / "sweep.toml"
        toml.write_bytes(argv[0][5:].encode())
        return ["simulate", "--config", str(toml), "--out", str(tmp_path / "sweep")]
    subs = {
        "{ex}": str(EXAMPLE),
        "{dir}": str(tmp_path),
        "{file}": str(file),
        "{ro}": "/proc/dgating-no-such-folder",
    }
    out = []
    for a in argv:
        for k, v in subs.items():
            a = a.replace(k, v)
        out.append(a)
    return out


@pytest.mark.parametrize("command", ["solve", "flow"])
@pytest.mark.parametrize(("name", "extra", "fragment"), DATA_CASES)
def test_bad_data_file_is_one_line_exit_2(capsys, bad_data, command, name, extra, fragment):
    code, out, err, seconds = run_case(
        capsys, [command, str(bad_data[name]), *FIXED[command], *extra], bound=10
    )
    assert code == 2, err
    assert_one_line(err, f"dgating {command}: error: ")
    assert fragment in err
    assert out == "" and seconds < 10


def test_flow_needs_a_penalised_group(capsys, bad_data):
    code, _, err, _ = run_case(capsys, ["flow", str(bad_data["all_unpenalised"]), *FIXED["flow"]])
    assert code == 2
    assert_one_line(err, "dgating flow: error: `DATA` groups must contain at least one penalised")


@pytest.mark.parametrize(
    ("argv", "fragment"), OPTION_CASES, ids=[" ".join(c[0])[:50] for c in OPTION_CASES]
)
def test_bad_option_is_one_line_exit_2(capsys, tmp_path, argv, fragment):
    argv = _expand(argv, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err, seconds = run_case(capsys, argv, bound=20)
    assert code == 2, err
    if argv:
        prefix = "dgating" + (f" {argv[0]}" if argv[0] in SUBCOMMANDS else "")
        assert_one_line(err, prefix + ": error: ")
        assert fragment in err, err
        assert out == ""
    else:
        assert fragment in out and err == ""  # bare `dgating`: the help, status 2
    assert seconds < 20
    # Nothing was written before the error (the sweep folder of a bad config included).
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_count_of_distinct_cases():
    """The closing note of issue 12 counts these; keep the table honest and large."""
    n = 2 * len(DATA_CASES) + 1 + len(OPTION_CASES)
    assert len({repr(c) for c in OPTION_CASES}) == len(OPTION_CASES)
    assert n >= 150, n
    assert os.environ.get("DGATING_PRINT_COUNTS") is None or print(n) is None
