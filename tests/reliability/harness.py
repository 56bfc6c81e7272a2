"""Run ``dgating.cli.main`` in-process under a time bound and check the exit-status contract."""

from __future__ import annotations

import signal
import time
import zipfile
from pathlib import Path

import numpy as np

from dgating.cli import main

EXAMPLE = Path(__file__).parents[2] / "src" / "dgating" / "data" / "example.npz"


class CaseTimeout(BaseException):
    """Raised by the CPU-time alarm: a case ran past its bound (a hang)."""


def _expire(signum, frame):
    raise CaseTimeout


def run_case(capsys, argv: list[str], bound: float = 20.0) -> tuple[int, str, str, float]:
    """``main(argv)`` with a CPU-time bound (ITIMER_PROF, so the command's own SIGALRM budget is
    untouched); returns ``(status, stdout, stderr, wall seconds)``."""
    capsys.readouterr()
    old = signal.signal(signal.SIGPROF, _expire)
    signal.setitimer(signal.ITIMER_PROF, bound)
    start = time.monotonic()
    try:
        code = main(argv)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
    seconds = time.monotonic() - start
    cap = capsys.readouterr()
    return code, cap.out, cap.err, seconds


def assert_one_line(err: str, prefix: str) -> None:
    """Exactly one stderr line, starting with ``prefix``, and no traceback."""
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(prefix), err


def fake_npy_member(path: Path, key: str, shape: tuple[int, ...], dtype: str = "<f8") -> None:
    """Add to the zip ``path`` a member ``key.npy`` whose header claims ``shape`` but whose data
    are missing: reading it would try to allocate the whole array."""
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    blob = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(f"{key}.npy", blob + b"\x00" * 16)


def write_bad_data(folder: Path) -> dict[str, Path]:
    """Every hostile data file of the suite, by name."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4)), rng.normal(size=20)
    g = np.array([0, 0, 1, 1])
    arrays = {
        "complex_X": dict(X=X + 1j, y=y, groups=g),
        "complex_y": dict(X=X, y=y + 0j, groups=g),
        "string_X": dict(X=X.astype(str), y=y, groups=g),
        "nan_X": dict(X=np.where(X > 1, np.nan, X), y=y, groups=g),
        "inf_y": dict(X=X, y=np.where(y > 1, np.inf, y), groups=g),
        "huge_X": dict(X=X * 1e300, y=y, groups=g),
        "huge_y": dict(X=X, y=y * 1e200, groups=g),
        "X_3d": dict(X=X[:, :, None], y=y, groups=g),
        "X_1d": dict(X=X[:, 0], y=y, groups=g[:1]),
        "y_2d": dict(X=X, y=y[:, None], groups=g),
        "y_short": dict(X=X, y=y[:5], groups=g),
        "groups_short": dict(X=X, y=y, groups=g[:3]),
        "groups_float": dict(X=X, y=y, groups=np.array([0, 0.5, 1, 1])),
        "groups_nan": dict(X=X, y=y, groups=np.array([0, np.nan, 1, 1])),
        "groups_below": dict(X=X, y=y, groups=np.array([0, -2, 1, 1])),
        "groups_gap": dict(X=X, y=y, groups=np.array([0, 0, 2, 2])),
        "groups_2pow40": dict(X=X, y=y, groups=np.array([0, 0, 1, 2**40])),
        "groups_complex": dict(X=X, y=y, groups=g + 0j),
        "no_X": dict(y=y, groups=g),
        "no_y": dict(X=X, groups=g),
        "no_groups": dict(X=X, y=y),
        "empty_X": dict(X=np.zeros((0, 4)), y=np.zeros(0), groups=g),
        "no_features": dict(X=np.zeros((20, 0)), y=y, groups=np.zeros(0, int)),
        "logistic_targets": dict(X=X, y=y, groups=g),  # not +-1: bad for --loss logistic
    }
    paths = {}
    for name, kw in arrays.items():
        paths[name] = folder / f"{name}.npz"
        np.savez(paths[name], **kw)
    paths["object_X"] = folder / "object_X.npz"
    np.savez(paths["object_X"], X=np.array([{"a": 1}] * 4, dtype=object), y=y, groups=g)
    paths["not_zip"] = folder / "not_zip.npz"
    paths["not_zip"].write_text("X,y,groups\n1,2,3\n")
    paths["empty_file"] = folder / "empty_file.npz"
    paths["empty_file"].write_bytes(b"")
    good = folder / "good.npz"
    np.savez(good, X=X, y=y, groups=g)
    paths["truncated"] = folder / "truncated.npz"
    paths["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    paths["single_npy"] = folder / "single_npy.npz"
    with open(paths["single_npy"], "wb") as fh:
        np.save(fh, X)
    paths["folder"] = folder / "a_folder.npz"
    paths["folder"].mkdir()
    paths["missing"] = folder / "missing.npz"
    paths["huge_header_X"] = folder / "huge_header_X.npz"
    np.savez(paths["huge_header_X"], y=y, groups=g)
    fake_npy_member(paths["huge_header_X"], "X", (100_000, 100_000))
    paths["all_unpenalised"] = folder / "all_unpenalised.npz"
    np.savez(paths["all_unpenalised"], X=X, y=y, groups=-np.ones(4, int))
    return paths
