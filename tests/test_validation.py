"""Every input error names the parameter, what was expected and what was received."""

from __future__ import annotations

import numpy as np
import pytest

from dgating import DGating, GroupedProblem, GroupLqPenalty, Groups, load_problem, solve
from dgating._validation import InputError, check_depth, check_lam

X = np.ones((3, 2))
y = np.zeros(3)


@pytest.mark.parametrize("depth", [1, 0, -3, 2.5])
def test_depth_must_be_integer_at_least_two(depth):
    with pytest.raises(ValueError, match=r"`depth` must be an integer >= 2; got"):
        check_depth(depth)


@pytest.mark.parametrize("depth", ["3", None, True])
def test_depth_wrong_type(depth):
    with pytest.raises(TypeError, match=r"`depth` must be an integer >= 2; got"):
        check_depth(depth)


@pytest.mark.parametrize("lam", [-0.1, float("nan"), float("inf")])
def test_lam_must_be_finite_non_negative(lam):
    with pytest.raises(ValueError, match=r"`lam` must be a finite number >= 0; got"):
        check_lam(lam)


def test_errors_are_input_errors():
    with pytest.raises(InputError):
        check_depth(1)


def test_group_labels_without_gaps():
    with pytest.raises(
        ValueError, match=r"`groups` labels must be 0..J-1 with no gaps; got .* \[1\]"
    ):
        Groups(np.array([0, 2, 2]))


def test_group_labels_below_minus_one():
    with pytest.raises(ValueError, match=r"`groups` labels must be -1 \(unpenalised\) or >= 0"):
        Groups(np.array([0, -2]))


def test_group_labels_must_be_integers():
    with pytest.raises(ValueError, match=r"`groups` must contain integer labels"):
        Groups(np.array([0.0, 0.5]))


def test_groups_shape_must_match_X():
    with pytest.raises(
        ValueError, match=r"`groups` must have shape \(n_features,\) = \(2,\); got \(3,\)"
    ):
        GroupedProblem(X, y, np.array([0, 0, 1]))


def test_y_shape_must_match_X():
    with pytest.raises(
        ValueError, match=r"`y` must have shape \(n_samples,\) = \(3,\); got \(2,\)"
    ):
        GroupedProblem(X, np.zeros(2), np.array([0, 1]))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data_rejected(bad):
    Xb = X.copy()
    Xb[0, 0] = bad
    with pytest.raises(ValueError, match=r"`X` must contain only finite values; got 1 NaN"):
        GroupedProblem(Xb, y, np.array([0, 1]))
    yb = y.copy()
    yb[1] = bad
    with pytest.raises(ValueError, match=r"`y` must contain only finite values"):
        GroupedProblem(X, yb, np.array([0, 1]))


def test_logistic_targets_must_be_signs():
    with pytest.raises(ValueError, match=r"`y` must contain only -1 and \+1 for the logistic loss"):
        GroupedProblem(X, np.array([0.0, 1.0, 1.0]), np.array([0, 1]), loss="logistic")


def test_unknown_loss_lists_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown `loss` 'hinge'. Valid: 'squared', 'logistic'."):
        GroupedProblem(X, y, np.array([0, 1]), loss="hinge")


def test_unknown_method_lists_valid_ones():
    prob = GroupedProblem(X, y, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"Unknown `method` 'newton'. Valid: 'gated', 'prox'."):
        solve(prob, 2, 0.1, method="newton")


def test_q_range():
    with pytest.raises(ValueError, match=r"`q` must be in \(0, 1\]; got 1.5"):
        GroupLqPenalty(1.0, 1.5)


def test_lift_shape():
    with pytest.raises(ValueError, match=r"`w` must have shape \(2,\); got \(3,\)"):
        DGating(2, np.array([0, 1])).lift(np.ones(3))


def test_missing_file(tmp_path):
    with pytest.raises(
        ValueError, match=r"`DATA` must be an existing .npz file; got .* \(not found\)"
    ):
        load_problem(tmp_path / "none.npz")


def test_unreadable_file(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_text("not a zip")
    with pytest.raises(ValueError, match=r"`DATA` must be a readable .npz file"):
        load_problem(path)


def test_file_without_keys(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, X=X)
    with pytest.raises(
        ValueError, match=r"`DATA` must hold the arrays X, y and groups; .* y, groups"
    ):
        load_problem(path)
