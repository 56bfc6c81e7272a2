"""`derive --spec`: every built-in spec checked against independent numerics.

* effective penalties against constrained minimisation over the fibre (SLSQP, many starts);
* conserved quantities and decay laws along integrated gradient flows of random losses;
* the number of laws against the rank of the loss-gradient fields at random points.

Every check has a negative control (a wrong penalty, a drifting quantity, a wrong rate).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp
from scipy.optimize import minimize

from dgating.theory import lam as lam_symbol
from dgating.theory.derivation import derive_spec
from dgating.theory.spec import MonomialSpec, builtin_spec, builtin_spec_names

SPECS = builtin_spec_names()


def test_the_family_is_shipped():
    assert set(SPECS) >= {
        "dgating",
        "two-groups",
        "hadamard",
        "shared-gates",
        "hierarchical",
        "gate-power",
        "unequal-weights",
    }


class Numeric:
    """float64 twins of a spec: w(theta), its Jacobian, the penalty and its gradient."""

    def __init__(self, spec: MonomialSpec):
        th = spec.theta
        self.spec = spec
        self.w = sp.lambdify(th, list(spec.weights), "numpy")
        self.jac = sp.lambdify(th, sp.Matrix(spec.weights).jacobian(th).tolist(), "numpy")
        self.pen = sp.lambdify(th, spec.penalty, "numpy")
        self.dpen = sp.lambdify(th, [spec.penalty.diff(x) for x in th], "numpy")

    def fibre_minimum(self, w: np.ndarray, rng: np.random.Generator, n_starts: int = 12) -> float:
        """min R(theta) s.t. w(theta) = w by SLSQP from random starts (best feasible value)."""
        best = np.inf
        cons = {
            "type": "eq",
            "fun": lambda z: np.asarray(self.w(*z)) - w,
            "jac": lambda z: np.asarray(self.jac(*z), dtype=float),
        }
        for _ in range(n_starts):
            z0 = rng.normal(size=self.spec.n_params)
            res = minimize(
                lambda z: self.pen(*z),
                z0,
                jac=lambda z: np.asarray(self.dpen(*z), dtype=float),
                constraints=[cons],
                method="SLSQP",
                options={"ftol": 1e-14, "maxiter": 1000},
            )
            feasible = np.max(np.abs(np.asarray(self.w(*res.x)) - w)) < 1e-9
            if res.success and feasible:
                best = min(best, float(res.fun))
        return best

    def vector_field(self, H: np.ndarray, b: np.ndarray, lam: float):
        """theta' = -(J^T grad L0(w) + lam grad R), L0 = w'Hw/2 + b'w + sum w^4/4."""

        def f(_t, z):
            w = np.asarray(self.w(*z))
            g = H @ w + b + w**3
            return -(np.asarray(self.jac(*z)).T @ g + lam * np.asarray(self.dpen(*z)))

        return f


def generic_point(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random signs and magnitudes in [0.4, 1]: away from 0 (where ranks drop) and from blow-up."""
    return rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.4, 1.0, size=n)


def group_norms(spec: MonomialSpec, w: np.ndarray) -> dict[str, float]:
    names = ["r"] if len(spec.groups) == 1 else [f"r{j + 1}" for j in range(len(spec.groups))]
    return {n: float(np.linalg.norm(w[list(g)])) for n, g in zip(names, spec.groups)}


def evaluate(expr: sp.Expr, values: dict[str, float]) -> float:
    return float(expr.subs({sp.Symbol(k, positive=True): v for k, v in values.items()}))


@pytest.mark.parametrize("name", SPECS)
def test_every_builtin_spec_derives_and_all_steps_hold(name):
    der = derive_spec(name)
    assert der.ok, [s.name for s in der.failed]
    assert der.penalty.decided and der.conservation.complete


@pytest.mark.parametrize("name", SPECS)
def test_effective_penalty_is_the_constrained_minimum_over_the_fibre(name, rng):
    spec = builtin_spec(name)
    expr = derive_spec(spec).penalty.expr
    num = Numeric(spec)
    for _ in range(2):
        w = rng.normal(size=spec.n_weights)
        norms = group_norms(spec, w)
        derived = evaluate(expr, norms)
        numeric = num.fibre_minimum(w, rng)
        # SLSQP stops at ftol = 1e-14 on the value; 1e-7 leaves room for its final step
        assert numeric == pytest.approx(derived, rel=1e-7)
        # negative control: the derived formula at norms 25% too large (every built-in
        # penalty increases with each norm) is rejected by the same comparison
        wrong = evaluate(expr, {k: 1.25 * v for k, v in norms.items()})
        assert wrong - numeric > 1e-2 * numeric


def test_the_minimum_is_not_a_function_of_the_norm_when_gates_are_per_weight(rng):
    # negative control for the group structure: Hadamard weights in ONE group have the l_{2/D}
    # quasi-norm as effective penalty; the engine refuses, and the numerics show why
    spec = MonomialSpec.from_dict(
        {
            "parameters": ["a", "b", "c", "d"],
            "weights": ["a*b", "c*d"],
            "penalty": "(a**2 + b**2 + c**2 + d**2)/2",
        }
    )
    pen = derive_spec(spec).penalty
    assert pen.expr is None and "not a function of r_1" in pen.status
    num = Numeric(spec)
    w1, w2 = np.array([1.0, 1.0]), np.array([np.sqrt(2.0), 0.0])  # same norm
    assert num.fibre_minimum(w1, rng) == pytest.approx(2.0, rel=1e-7)
    assert abs(num.fibre_minimum(w2 + [0, 1e-6], rng) - np.sqrt(2.0)) < 1e-5


@pytest.mark.parametrize("name", SPECS)
def test_conserved_quantities_and_decay_laws_along_random_flows(name, rng):
    spec = builtin_spec(name)
    cons = derive_spec(spec).conservation
    num = Numeric(spec)
    p = spec.n_weights
    M = rng.normal(size=(p, p))
    H, b = M @ M.T / p, rng.normal(size=p)
    z0 = generic_point(rng, spec.n_params)
    T = 1.0
    qs = [sp.lambdify(spec.theta, q, "numpy") for q in cons.quantities]
    drift = sp.lambdify(spec.theta, sp.Add(*(x**2 for x in spec.theta)), "numpy")
    for lam in (0.0, 0.7):
        sol = solve_ivp(
            num.vector_field(H, b, lam),
            (0, T),
            z0,
            method="DOP853",
            rtol=1e-10,
            atol=1e-12,
            first_step=1e-4,  # the monomials have degree up to 7: no wild first trial step
        )
        assert sol.success
        zT = sol.y[:, -1]
        # negative control: ||theta||^2 is not conserved
        # (100 times the tolerance of the conservation check below)
        assert abs(drift(*zT) - drift(*z0)) > 1e-5
        for q, law in zip(qs, cons.decay_laws):
            q0, qT = q(*z0), q(*zT)
            if lam == 0.0:
                # integration error only (rtol 1e-10 over t in [0, 1])
                assert qT == pytest.approx(q0, abs=1e-7)
                continue
            if law.rate is None:
                continue
            rate = float(law.rate.subs(lam_symbol, lam))
            assert qT == pytest.approx(q0 * np.exp(-rate * T), abs=1e-7)
            # negative control: a 10% wrong rate is rejected
            assert abs(qT - q0 * np.exp(-1.1 * rate * T)) > 1e-4 * abs(q0)


def test_no_closed_decay_law_is_confirmed_by_the_flow(rng):
    # unequal weights: ||omega||^2 - gamma_1^2 is reported without a rate; along the flow its
    # logarithmic derivative is not constant, so no rate fits
    spec = builtin_spec("unequal-weights")
    cons = derive_spec(spec).conservation
    law = next(d for d in cons.decay_laws if d.rate is None)
    num = Numeric(spec)
    q = sp.lambdify(spec.theta, law.quantity, "numpy")
    dq = sp.lambdify((*spec.theta, lam_symbol), law.derivative, "numpy")
    p = spec.n_weights
    H, b = np.eye(p), rng.normal(size=p)
    z0 = np.array([1.0, 0.5, 0.3, 1.2])
    sol = solve_ivp(
        num.vector_field(H, b, 0.5),
        (0, 1.0),
        z0,
        method="DOP853",
        rtol=1e-10,
        atol=1e-12,
        dense_output=True,
    )
    grad_q = sp.lambdify(spec.theta, [law.quantity.diff(x) for x in spec.theta], "numpy")
    field = num.vector_field(H, b, 0.5)
    logslopes = []
    for t in (0.0, 0.5, 1.0):
        z = sol.sol(t)
        # the derived ODE is the true derivative: <grad Q, theta'> of the float64 vector field
        true = float(np.dot(grad_q(*z), field(t, z)))
        assert dq(*z, 0.5) == pytest.approx(true, rel=1e-10, abs=1e-12)
        logslopes.append(dq(*z, 0.5) / q(*z))
    assert np.ptp(logslopes) > 1e-2


@pytest.mark.parametrize("name", SPECS)
def test_number_of_laws_matches_the_rank_of_loss_gradient_fields(name, rng):
    spec = builtin_spec(name)
    cons = derive_spec(spec).conservation
    num = Numeric(spec)
    n = spec.n_params
    for _ in range(3):
        z = generic_point(rng, n)
        J = np.asarray(num.jac(*z), dtype=float)
        # span of the flow directions -J^T g of random losses at z
        fields = np.array([J.T @ rng.normal(size=spec.n_weights) for _ in range(3 * n)])
        assert n - np.linalg.matrix_rank(fields, tol=1e-9) == cons.lie.n_laws
        # the found quantities are functionally independent at z ...
        grads = np.array(
            [
                [float(q.diff(x).subs(dict(zip(spec.theta, z)))) for x in spec.theta]
                for q in cons.quantities
            ]
        )
        if len(cons.quantities):
            assert np.linalg.matrix_rank(grads, tol=1e-9) == len(cons.quantities)
            # ... and orthogonal to every flow direction of lam = 0 (negative control below)
            np.testing.assert_allclose(grads @ fields.T, 0.0, atol=1e-9)
    # negative control: the gradient of ||theta||^2 is not orthogonal to the fields
    assert np.abs(2 * z @ fields.T).max() > 1e-3


# ---------------------------------------------------------------------------------------------
# where the engine cannot decide, and input validation
# ---------------------------------------------------------------------------------------------

BASE = {
    "parameters": ["u1", "u2", "g"],
    "weights": ["u1*g", "u2*g"],
    "penalty": "u1**2 + u2**2 + g**2",
}


def spec_with(**changes) -> MonomialSpec:
    return MonomialSpec.from_dict({**BASE, **changes}, "test")


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"penalty": "(u1**2 + u2**2 + g**2)**2"}, "not c*theta**(2e) in one parameter"),
        ({"penalty": "u1**2 + u2**2 + g**2 + u1*g"}, "not c*theta**(2e) in one parameter"),
        ({"penalty": "u1**2 + u2**2 + g**2 + g**4"}, "several powers of g"),
        ({"penalty": "u1**2 + u2**2 - g**2"}, "coefficient <= 0"),
        ({"penalty": "u1**2 + u2**2"}, "not in the penalty"),
        ({"penalty": "u1**2 + 2*u2**2 + g**2"}, "equal penalty weights"),
        ({"penalty": "u1**4 + u2**4 + g**2"}, "exponent 1 and a squared penalty"),
        ({"weights": ["u1**2*g", "u2*g"]}, "exponent 1 and a squared penalty"),
        ({"weights": ["u1*g", "u2*g**2"]}, "not a function of r_1"),
    ],
)
def test_undecided_effective_penalty_names_the_reason(changes, reason):
    pen = derive_spec(spec_with(**changes)).penalty
    assert pen.expr is None and pen.steps == ()
    assert pen.status.startswith("undecided") and reason in pen.status


def test_non_nested_shared_gates_are_undecided_but_laws_are_still_derived():
    # three weights, each gate shared by two of them in a cycle: no term has a gate of its own
    spec = MonomialSpec.from_dict(
        {
            "parameters": ["u1", "u2", "u3", "a", "b", "c"],
            "weights": ["u1*a*b", "u2*b*c", "u3*c*a"],
            "groups": [[0], [1], [2]],
            "penalty": "(u1**2 + u2**2 + u3**2 + a**2 + b**2 + c**2)/3",
        }
    )
    der = derive_spec(spec)
    assert der.penalty.expr is None and "different exponents" in der.penalty.status
    assert der.ok and der.conservation.lie.n_laws == 3 == len(der.conservation.quantities)
    assert any("effective penalty" in u for u in der.undecided)


def test_unequal_weights_change_which_combination_decays():
    cons = derive_spec("unequal-weights").conservation
    rates = {str(d.quantity): d.rate for d in cons.decay_laws}
    assert rates["gamma_1**2 - gamma_2**2"] == 8 * lam_symbol  # 4 lam c with c = 2
    assert rates["-gamma_1**2 + omega_1**2 + omega_2**2"] is None
    # the same structure with equal weights: every law decays at 4 lam c
    equal = derive_spec(builtin_spec("dgating")).conservation
    assert all(d.rate == 4 * lam_symbol / 3 for d in equal.decay_laws)


def test_builtin_parametrizations_become_specs_that_round_trip(tmp_path):
    from dgating.theory import hadamard_parametrization, shared_gates_parametrization
    from dgating.theory.spec import load_spec

    for par in (hadamard_parametrization(3, 2), shared_gates_parametrization(2, 2)):
        spec = par.to_spec()
        path = tmp_path / f"{spec.name}.toml"
        path.write_text(spec.to_toml())
        again = load_spec(path)
        assert again.weights == spec.weights and again.groups == spec.groups
        assert sp.expand(again.penalty - spec.penalty) == 0
    assert hadamard_parametrization(3, 2).to_spec().groups == ((0,), (1,))
    assert derive_spec(hadamard_parametrization(3, 2).to_spec()).penalty.expr == (
        sp.Symbol("r1", positive=True) ** sp.Rational(2, 3)
        + sp.Symbol("r2", positive=True) ** sp.Rational(2, 3)
    )


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"weigths": ["u1*g"]}, "unknown keys ['weigths']"),
        ({"parameters": ["u1", "u2", "g g"]}, "`parameters`"),
        ({"parameters": ["u1", "u2", "lam"]}, "`parameters`"),
        ({"parameters": ["u1", "u2", "r2"]}, "`parameters`"),
        ({"parameters": ["u1", "u2", "a_3"]}, "`parameters`"),
        ({"parameters": ["u1", "u2", "lambda"]}, "`parameters`"),
        ({"parameters": ["u1", "u2", 3]}, "`parameters`"),
        ({"parameters": ["u1", "u1", "g"]}, "`parameters`"),
        ({"parameters": ["u1", "u2", "g", "z"]}, "unused ['z']"),
        ({"parameters": [f"x{i}" for i in range(41)]}, "at most 40"),
        ({"weights": ["u1*g", "u2 + g"]}, "`weights[1]`"),
        ({"weights": ["u1*g", "2*u2*g"]}, "`weights[1]`"),
        ({"weights": ["u1*g", "u2/g"]}, "`weights[1]`"),
        ({"weights": ["u1*g", "exp(u2)"]}, "`weights[1]`"),
        ({"weights": ["u1*g", "__import__('os')"]}, "`weights[1]`"),
        ({"weights": "u1*g"}, "`weights`"),
        ({"groups": [[0], [0]]}, "`groups`"),
        ({"groups": [[0]]}, "`groups`"),
        ({"groups": [[0, 1, 2]]}, "`groups`"),
        ({"groups": [[0], []]}, "`groups`"),
        ({"penalty": "u1**2 +"}, "`penalty`"),
        ({"penalty": "sin(u1)"}, "`penalty`"),
        ({"penalty": 3}, "`penalty`"),
    ],
)
def test_invalid_spec_is_one_input_error_naming_the_key(changes, key):
    from dgating._validation import InputError

    with pytest.raises(InputError, match=None) as info:
        spec_with(**changes)
    assert key in str(info.value) and "got" in str(info.value)
    assert "\n" not in str(info.value)


def test_scientific_notation_and_floats_become_rationals():
    spec = spec_with(penalty="1e-1*u1**2 + 0.1*u2**2 + 2.5E-1*g**2")
    u1, u2, g = spec.theta
    assert spec.penalty == u1**2 / 10 + u2**2 / 10 + g**2 / 4


def test_missing_key_and_bad_toml(tmp_path):
    from dgating._validation import InputError
    from dgating.theory.spec import load_spec

    with pytest.raises(InputError, match="`penalty` must be present"):
        MonomialSpec.from_dict({"parameters": ["u"], "weights": ["u"]})
    bad = tmp_path / "bad.toml"
    bad.write_text("parameters = [")
    with pytest.raises(InputError, match="`--spec` must be valid TOML"):
        load_spec(bad)
    with pytest.raises(InputError, match="not found"):
        load_spec(tmp_path / "missing.toml")


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------


def test_cli_spec_json_contract(tmp_path, capsys):
    import json

    from dgating.cli import main

    path = tmp_path / "issue.toml"
    path.write_text(
        'parameters = ["u1", "u2", "u3", "v1", "v2", "g1", "h1", "g2", "h2"]\n'
        'weights = ["u1*g1*h1", "u2*g1*h1", "u3*g1*h1", "v1*g2*h2", "v2*g2*h2"]\n'
        "groups = [[0, 1, 2], [3, 4]]\n"
        'penalty = "(u1**2 + u2**2 + u3**2 + v1**2 + v2**2 + g1**2 + h1**2 + g2**2 + h2**2)/3"\n'
    )
    tex = tmp_path / "spec.tex"
    assert main(["derive", "--spec", str(path), "--json", "--latex", str(tex)]) == 0
    out = json.loads(capsys.readouterr().out)
    r1, r2 = sp.symbols("r1 r2")
    eff = sp.sympify(out["effective_penalty"])
    assert sp.simplify(eff - r1 ** sp.Rational(2, 3) - r2 ** sp.Rational(2, 3)) == 0
    assert out["effective_penalty_status"] == "derived"
    assert out["number_of_conservation_laws"] == 4 == len(out["conserved_quantities"])
    assert all(isinstance(sp.sympify(q), sp.Expr) for q in out["conserved_quantities"])
    assert [set(d) >= {"quantity", "rate"} for d in out["decay_laws"]] == [True] * 4
    assert {d["rate"] for d in out["decay_laws"]} == {"4*lam/3"}
    assert out["ok"] and out["identities_checked"] > 0 and out["identities_failed"] == []
    assert r"\end{document}" in tex.read_text() and "FAILED" not in tex.read_text()


def test_cli_spec_null_fields_and_text(tmp_path, capsys):
    import json

    from dgating.cli import main

    path = tmp_path / "coupled.toml"
    path.write_text('parameters = ["u", "g"]\nweights = ["u*g"]\npenalty = "(u**2 + g**2)**2"\n')
    assert main(["derive", "--spec", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["effective_penalty"] is None
    assert "not a separable weighted sum" in out["effective_penalty_status"]
    assert out["decay_laws"][0]["rate"] is None and "d/dt" in out["decay_laws"][0]["ode"]
    assert main(["derive", "--spec", str(path)]) == 0
    text = capsys.readouterr().out
    assert "no closed decay law" in text and "undecided" in text


@pytest.mark.parametrize(
    "content, argv, match",
    [
        ('parameters = ["u"]\nweights = ["u"]\npenalty = "u**2"\ncolour = 1\n', [], "colour"),
        ('parameters = ["u"]\nweights = ["u + 1"]\npenalty = "u**2"\n', [], "weights[0]"),
        ("parameters = [", [], "valid TOML"),
        ('parameters = ["u"]\nweights = ["u"]\npenalty = "u**2"\n', ["--depth", "3"], "--depth"),
        (
            'parameters = ["u"]\nweights = ["u"]\npenalty = "u**2"\n',
            ["--parametrization", "hadamard"],
            "--parametrization",
        ),
    ],
)
def test_cli_bad_spec_exits_2_with_one_line(tmp_path, capsys, content, argv, match):
    from dgating.cli import main

    path = tmp_path / "bad.toml"
    path.write_text(content)
    assert main(["derive", "--spec", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_depth_keeps_its_keys_and_gains_the_spec_keys(capsys):
    import json

    from dgating.cli import main

    assert main(["derive", "--depth", "3", "--parametrization", "shared-gates", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("imbalance_rate", "gap_rates", "sgd_contraction", "effective_penalty_total"):
        assert key in out
    assert out["effective_penalty_status"] == "derived"
    assert {d["rate"] for d in out["decay_laws"]} == {"4*lam/3"}
    assert main(["derive"]) == 2
    assert "--depth" in capsys.readouterr().err
