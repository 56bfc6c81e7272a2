"""Exit statuses 1 (finished, not trustworthy; internal errors and a closed stdout included), 130,
and environment errors during the work (status 2): always one stderr line and no traceback."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dgating import GroupedProblem
from dgating.problem import no_minimiser

from .harness import EXAMPLE, assert_one_line, run_case


def _logistic(tmp_path, X, y, groups, name="d.npz"):
    path = tmp_path / name
    np.savez(path, X=X, y=y, groups=groups)
    return str(path)


@pytest.fixture
def separable(rng):
    X = rng.normal(size=(40, 4))
    return X, np.where(X[:, 0] - 0.5 * X[:, 2] > 0, 1.0, -1.0)


@pytest.fixture
def overlapping(rng):
    X = rng.normal(size=(40, 4))
    return X, np.where(X[:, 0] + rng.normal(size=40) > 0, 1.0, -1.0)


def test_no_minimiser_decides_separability(separable, overlapping):
    X, y = separable
    assert no_minimiser(GroupedProblem(X, y, np.array([0, 0, 1, 1]), "logistic"), 0.0)
    # Quasi-separable: one margin exactly 0 along the direction, the others positive.
    Xq = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 1.0], [0.0, -1.0]])
    yq = np.array([1.0, 1.0, 1.0, -1.0])
    assert no_minimiser(GroupedProblem(Xq, yq, np.array([0, 1]), "logistic"), 0.0)
    # Negative controls: overlapping classes; separable only by penalised groups at lam > 0
    # (the penalty is coercive there); the squared loss.
    Xo, yo = overlapping
    assert not no_minimiser(GroupedProblem(Xo, yo, np.array([0, 0, 1, 1]), "logistic"), 0.0)
    assert not no_minimiser(GroupedProblem(X, y, np.array([0, 0, 1, 1]), "logistic"), 0.1)
    assert not no_minimiser(GroupedProblem(X, X[:, 0], np.array([0, 0, 1, 1])), 0.0)
    # Separable by the unpenalised features (label -1): no minimiser even at lam > 0.
    assert no_minimiser(GroupedProblem(X, y, np.array([-1, 0, -1, 1]), "logistic"), 0.1)
    assert not no_minimiser(GroupedProblem(X, y, np.array([0, -1, 1, 1]), "logistic"), 0.1)


def test_separable_logistic_at_lam_0_is_exit_1_with_the_result(capsys, tmp_path, separable):
    data = _logistic(tmp_path, *separable, np.array([0, 0, 1, 1]))
    argv = ["solve", data, "--depth", "2", "--lam", "0", "--loss", "logistic", "--json"]
    code, out, err, _ = run_case(capsys, argv)
    assert code == 1
    assert_one_line(err, "dgating solve: result not trustworthy: no minimiser")
    assert "w" in json.loads(out)  # the result is still written


def test_overlapping_logistic_is_exit_0(capsys, tmp_path, overlapping):
    data = _logistic(tmp_path, *overlapping, np.array([0, 0, 1, 1]))
    argv = ["solve", data, "--depth", "2", "--lam", "0", "--loss", "logistic", "--json"]
    code, out, err, _ = run_case(capsys, argv)
    assert code == 0 and err == ""
    assert json.loads(out)["converged"]


#: A stiff flow (w ~ S^D with S = 10) that would run for many minutes.
STIFF_FLOW = ["flow", str(EXAMPLE), "--depth", "3", "--lam", "0.1", "--t-end", "100"]
STIFF_FLOW += ["--init-scale", "10"]


@pytest.mark.parametrize(
    "argv",
    [
        ["solve", str(EXAMPLE), "--depth", "3", "--lam", "0.1", "--max-seconds", "1e-6"],
        [*STIFF_FLOW, "--max-seconds", "1"],
        ["derive", "--depth", "16", "--group-size", "12", "--max-seconds", "0.5"],
    ],
    ids=["solve", "flow", "derive"],
)
def test_exhausted_budget_is_exit_1(capsys, argv):
    code, _, err, seconds = run_case(capsys, argv, bound=30)
    assert code == 1
    assert_one_line(err, f"dgating {argv[0]}: result not trustworthy: time budget of")
    assert seconds < 15


def _raise(exc):
    def handler(args):
        raise exc

    return handler


def test_internal_error_is_one_line_with_a_saved_traceback(capsys, monkeypatch):
    import dgating.cli

    monkeypatch.setattr(dgating.cli, "_run_solve", _raise(ZeroDivisionError("boom\nsecond")))
    code, _, err, _ = run_case(capsys, ["solve", str(EXAMPLE), "--depth", "2", "--lam", "1"])
    assert code == 1
    assert_one_line(err, "dgating solve: internal error: ZeroDivisionError: boom second")
    path = err.rsplit("traceback saved to ", 1)[1].rstrip(")\n")
    text = open(path).read()
    os.unlink(path)
    assert text.startswith("Traceback") and "ZeroDivisionError: boom" in text


def test_interrupt_is_130(capsys, monkeypatch):
    import dgating.cli

    monkeypatch.setattr(dgating.cli, "_run_solve", _raise(KeyboardInterrupt()))
    code, _, err, _ = run_case(capsys, ["solve", str(EXAMPLE), "--depth", "2", "--lam", "1"])
    assert code == 130
    assert_one_line(err, "dgating solve: interrupted")


TINY = "[sweep]\ndepths = [2]\nlams = [0.5]\nn_samples = [20]\nn_features = [4]\nn_groups = [2]\n"
TINY += "n_eval = 50\ndecay = 4.0\n"


def test_full_disk_during_a_sweep_is_one_line_exit_2(capsys, monkeypatch, tmp_path):
    import dgating.simulations.sweep as sweep

    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(sweep, "write_atomic", full)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    argv = ["simulate", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress"]
    code, _, err, _ = run_case(capsys, argv)
    assert code == 2
    assert_one_line(err, "dgating simulate: error: cannot use '")
    assert "No space left on device" in err


def _cli(*args, **kw):
    return [sys.executable, "-m", "dgating.cli", *args]


def test_closed_stdout_is_one_line_and_exit_one():
    read, write = os.pipe()
    os.close(read)  # `| head` that has already exited
    try:
        proc = subprocess.run(
            _cli("solve", str(EXAMPLE), "--depth", "3", "--lam", "0.1", "--json"),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert proc.returncode == 1
    assert proc.stderr == "dgating solve: stdout was closed before the output was complete\n"


def _catches_sigterm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            caught = next(line for line in fh if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def test_sigterm_is_130_without_traceback():
    proc = subprocess.Popen(
        _cli(*STIFF_FLOW),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _catches_sigterm(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert_one_line(err, "dgating flow: interrupted")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"converged": False, "message": "max iterations"}, "not converged (max iterations)"),
        ({"objective": float("inf")}, "objective is inf"),
        ({"objective": float("nan")}, "objective is nan"),
    ],
)
def test_untrustworthy_solve_is_exit_1_with_the_result(capsys, monkeypatch, change, reason):
    import dataclasses

    import dgating.solvers

    real = dgating.solvers.solve
    monkeypatch.setattr(
        dgating.solvers, "solve", lambda *a, **k: dataclasses.replace(real(*a, **k), **change)
    )
    argv = ["solve", str(EXAMPLE), "--depth", "3", "--lam", "0.1", "--json"]
    code, out, err, _ = run_case(capsys, argv)
    assert code == 1
    assert_one_line(err, "dgating solve: result not trustworthy: ")
    assert reason in err
    assert len(json.loads(out)["w"]) == 40  # written, NaN/inf as null


def test_failed_certificate_is_exit_1(capsys, monkeypatch):
    import dataclasses

    import dgating.certificates

    real = dgating.certificates.certify
    monkeypatch.setattr(
        dgating.certificates,
        "certify",
        lambda *a, **k: dataclasses.replace(real(*a, **k), passed=False),
    )
    code, _, err, _ = run_case(capsys, ["solve", str(EXAMPLE), "--depth", "3", "--lam", "0.1"])
    assert code == 1
    assert_one_line(err, "dgating solve: result not trustworthy: certificate failed")


def test_extra_arrays_in_the_data_file_are_never_read(capsys, tmp_path):
    from .harness import fake_npy_member

    path = tmp_path / "extra.npz"
    with np.load(EXAMPLE) as data:
        np.savez(path, X=data["X"], y=data["y"], groups=data["groups"])
    # 10^10 float64 entries (80 GB) if decompressed; the member holds 16 bytes.
    fake_npy_member(path, "junk", (100_000, 100_000))
    code, out, err, seconds = run_case(capsys, ["solve", str(path), "--depth", "3", "--lam", "0.1"])
    assert code == 0 and err == "" and "certificate      passed" in out
    assert seconds < 20


@pytest.mark.slow
@pytest.mark.parametrize("server", ["refusing", "silent"])
def test_unusable_scheduler_is_exit_2_within_the_connect_timeout(capsys, tmp_path, server):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if server == "silent":
        sock.listen(5)  # accepts connections, never answers the dask handshake
    else:
        sock.close()
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    argv = [
        "simulate",
        "--config",
        str(config),
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
        "--scheduler",
        f"tcp://127.0.0.1:{port}",
    ]
    try:
        code, _, err, seconds = run_case(capsys, argv, bound=60)
    finally:
        sock.close()
    assert code == 2
    assert_one_line(err, "dgating simulate: error: `--scheduler` must be a reachable dask")
    assert seconds < 30
    assert not list((tmp_path / "o" / "configs").glob("*.json"))


def test_failed_sweep_configurations_are_exit_1_with_the_table(capsys, monkeypatch, tmp_path):
    import dgating.simulations.sweep as sweep

    monkeypatch.setattr(sweep, "MAX_STEPS", 20)  # the flow cannot finish in 20 steps
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "o"
    argv = ["simulate", "--config", str(config), "--out", str(out), "--no-progress"]
    code, _, err, _ = run_case(capsys, argv)
    assert code == 1
    assert_one_line(err, "dgating simulate: result not trustworthy: 1 configurations failed")
    assert (out / "results.csv").is_file() and (out / "summary.json").is_file()
    (row,) = [json.loads(p.read_text()) for p in (out / "configs").glob("*.json")]
    assert row["status"] == -1 and row["message"].startswith("step budget of 20 exhausted")
    # Negative control: the same sweep with the default budget finishes, exit 0.
    monkeypatch.setattr(sweep, "MAX_STEPS", 200_000)
    code, _, err, _ = run_case(capsys, [*argv[:4], str(tmp_path / "o2"), "--no-progress"])
    assert code == 0 and err == ""
