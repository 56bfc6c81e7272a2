import numpy as np
import pytest

from dgating.problem import GroupedProblem
from dgating.proofs_check.problems import (
    PROBLEMS,
    TorchNetProblem,
    get_problem,
    suite_problems,
)


def test_registry_covers_the_required_kinds():
    names = set(PROBLEMS)
    assert {"reg_tall", "reg_wide", "logistic", "reg_large"} <= names
    assert {"mlp_input_synth", "mlp_hidden_synth", "mlp_input_wine", "mlp_hidden_digits"} <= names
    tall, wide = get_problem("reg_tall").problem(), get_problem("reg_wide").problem()
    assert tall.n_samples > tall.n_features and wide.n_samples < wide.n_features
    assert np.any(tall.groups.labels == -1)  # unpenalised intercept
    assert len(set(tall.groups.sizes.tolist())) > 1  # unequal group sizes
    assert get_problem("logistic").problem().loss.name == "logistic"
    assert {s.name for s in suite_problems("quick")} < {s.name for s in suite_problems("full")}


def test_builders_are_deterministic():
    a, b = PROBLEMS["reg_wide"].build(), PROBLEMS["reg_wide"].build()
    assert isinstance(a, GroupedProblem)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)


def test_unknown_problem_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown `problem` 'nope'. Valid: 'reg_tall'"):
        get_problem("nope")


@pytest.mark.parametrize("name", ["mlp_input_synth", "mlp_hidden_synth"])
def test_network_hessian_matches_finite_differences(name):
    prob = PROBLEMS[name].problem()
    assert isinstance(prob, TorchNetProblem)
    assert prob.n_features <= 300  # small enough for dense Hessians
    rng = np.random.default_rng(0)
    w, v = rng.normal(size=prob.n_features) * 0.5, rng.normal(size=prob.n_features)
    h = 1e-5
    fd = (prob.grad(w + h * v) - prob.grad(w - h * v)) / (2 * h)
    hv = prob.hvp(w, v)
    assert np.max(np.abs(hv - fd)) <= 1e-6 * (1 + np.max(np.abs(fd)))
    H = prob.hessian(w)
    np.testing.assert_allclose(H, H.T, atol=0)
