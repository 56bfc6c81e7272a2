r"""A batched Dormand-Prince 5(4) integrator in torch with one adaptive step size per configuration.

Many gradient flows :math:`\dot z_b = -\nabla L_b(z_b)`, :math:`b = 1..B` (different
:math:`\lambda`, depth :math:`D`, data, initial points), are advanced together: every torch
operation acts on the whole batch, while each configuration keeps its own time :math:`t_b`, step
:math:`h_b` and error control (the error norm of configuration :math:`b` is the RMS of its own
components scaled by ``atol + rtol * max(|y|, |y_new|)``, as in :func:`scipy.integrate.solve_ivp`).
A rejected step only repeats the rows that were rejected in the next round; configurations that
reach the end time drop out of the batch.

Depths may differ inside one batch: the gates are padded to ``max(depth) - 1`` columns with entries
fixed at 1 (their derivative is masked to 0), so the padded products equal the real ones exactly.

Why an explicit method: the Hessian of :math:`L` is cheap here, but the flows are not stiff at the
tolerances of interest. On the benchmark problem (``benchmarks/bench_flow.py``: n = 200, p = 100,
20 groups, T = 50) the largest Hessian eigenvalue at the start is 3-7; RK45's step is capped by
stability (about 0.45) only for ``rtol >= 1e-6``, and at ``rtol = 1e-8`` scipy's Radau IIA with the
analytic Hessian needs about 640 steps and 200 LU factorisations per configuration against about
370 RK45 steps (1900 evaluations), and costs ~90 times more CPU than this engine.

The Butcher tableau and error weights are those of scipy's ``RK45``, so the engine is the same
method as ``solve_ivp(method="RK45")`` up to the order of floating-point sums. Output times are step
end points (a step that would pass the next output time is shortened to land on it) rather than
values of the dense-output interpolant: late in a flow the steps sit at the stability limit of the
explicit method, where interpolants are much less accurate than the step ends (measured with
scipy's DOP853 interpolant: errors of 1e-7 between exact step ends at ``rtol=1e-10``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..gating import GatedParams
from ..problem import GroupedProblem, Problem, TorchProblem

__all__ = ["BatchResult", "solve_batched"]

# Step-size controller constants (scipy.integrate._ivp.rk).
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0
_ERR_EXPONENT = -1.0 / 5.0  # error estimator of order 4


@dataclass(frozen=True)
class BatchResult:
    """Raw output of :func:`solve_batched` (one row per configuration).

    Attributes
    ----------
    z : ndarray, shape (B, n_eval, N)
        Packed states at ``t_eval`` (padded gate columns removed by the caller).
    status : ndarray of int, shape (B,)
        0: reached the end time; -1: step size underflow, non-finite state or step budget.
    nfev : ndarray of int, shape (B,)
        Right-hand-side evaluations per configuration.
    n_steps : ndarray of int, shape (B,)
        Accepted steps per configuration.
    n_rejected : ndarray of int, shape (B,)
        Rejected steps per configuration.
    """

    z: np.ndarray
    status: np.ndarray
    nfev: np.ndarray
    n_steps: np.ndarray
    n_rejected: np.ndarray


def _tableau(torch):
    from scipy.integrate._ivp.rk import RK45

    as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    return as_t(RK45.A), as_t(RK45.B), as_t(RK45.C), as_t(RK45.E), as_t(RK45.P)


class _BatchedGradient:
    r"""Gradients :math:`\nabla L_0` of a batch of problems at the rows of ``W`` (B, p).

    Shared data uses one matrix product for the whole batch; per-configuration data a batched one.
    The squared loss uses the Gram form :math:`\nabla L_0(w) = Qw - b`, :math:`Q = X^\top X/n`,
    :math:`b = X^\top y/n`, whose cost does not depend on ``n_samples``.
    """

    def __init__(self, problems: Sequence[Problem], torch) -> None:
        self.torch = torch
        unique: list[Problem] = []
        index = []
        for prob in problems:
            for k, u in enumerate(unique):
                if u is prob:
                    index.append(k)
                    break
            else:
                index.append(len(unique))
                unique.append(prob)
        self.shared = len(unique) == 1
        first = unique[0]
        if (
            all(isinstance(u, GroupedProblem) for u in unique)
            and len({u.loss.name for u in unique}) == 1
            and first.loss.name in ("squared", "logistic")
        ):
            self.kind = first.loss.name
            idx = np.asarray(index)
            if self.kind == "squared":
                Q = np.stack([u.X.T @ u.X / u.n_samples for u in unique])
                b = np.stack([u.X.T @ u.y / u.n_samples for u in unique])
                self.Q = torch.as_tensor(Q[0] if self.shared else Q[idx])
                self.b = torch.as_tensor(b[0] if self.shared else b[idx])
            else:
                if len({u.n_samples for u in unique}) != 1:
                    self.shared = False
                X = [u.X for u in unique]
                y = [u.y for u in unique]
                if self.shared:
                    self.X = torch.as_tensor(X[0])
                    self.y = torch.as_tensor(y[0])
                else:
                    self.X = torch.as_tensor(np.stack([X[i] for i in idx]))
                    self.y = torch.as_tensor(np.stack([y[i] for i in idx]))
        else:
            self.kind = "torch"
            self.fns = [u.fn if isinstance(u, TorchProblem) else _numpy_grad_fn(u) for u in unique]
            self.index = list(index)
            self.torch_fns = all(isinstance(u, TorchProblem) for u in unique)

    def compact(self, keep) -> None:
        """Keep only the configurations ``keep`` (a long tensor of row indices)."""
        if self.kind == "torch":
            self.index = [self.index[int(i)] for i in keep]
            return
        if self.shared:
            return
        if self.kind == "squared":
            self.Q, self.b = self.Q[keep], self.b[keep]
        else:
            self.X, self.y = self.X[keep], self.y[keep]

    def __call__(self, W):
        torch = self.torch
        if self.kind == "squared":
            if self.shared:
                return W @ self.Q - self.b
            return torch.bmm(self.Q, W.unsqueeze(-1)).squeeze(-1) - self.b
        if self.kind == "logistic":
            if self.shared:
                Z = W @ self.X.T
                S = -self.y * torch.sigmoid(-self.y * Z) / self.y.shape[-1]
                return S @ self.X
            Z = torch.bmm(self.X, W.unsqueeze(-1)).squeeze(-1)
            S = -self.y * torch.sigmoid(-self.y * Z) / self.y.shape[-1]
            return torch.bmm(S.unsqueeze(1), self.X).squeeze(1)
        # Generic problems: one autograd call per row (the engine runs in inference mode, so
        # autograd is switched back on here, on copies that are ordinary tensors).
        rows = []
        with torch.inference_mode(False), torch.enable_grad():
            for b in range(W.shape[0]):
                fn = self.fns[self.index[b]]
                if self.torch_fns:
                    wb = W[b].clone().requires_grad_(True)
                    (gb,) = torch.autograd.grad(fn(wb), wb)
                    rows.append(gb.detach())
                else:
                    rows.append(torch.as_tensor(fn(W[b].numpy())))
        return torch.stack(rows).clone()


def _numpy_grad_fn(problem: Problem):
    return problem.grad


def solve_batched(
    problems: Sequence[Problem],
    depths: Sequence[int],
    lams: Sequence[float],
    params0: Sequence[GatedParams],
    t_end: float,
    t_eval: np.ndarray,
    *,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 1_000_000,
    first_step: float | None = None,
    num_threads: int = 1,
) -> BatchResult:
    r"""Integrate the gated gradient flows of a batch of configurations from ``t = 0`` to ``t_end``.

    Parameters
    ----------
    problems : sequence of Problem, length B
        Data terms; all share ``groups`` (same labels). Pass the same object to share data.
    depths : sequence of int, length B
        :math:`D_b`.
    lams : sequence of float, length B
        :math:`\lambda_b`.
    params0 : sequence of GatedParams, length B
        Initial points, ``gates`` of shape ``(n_groups, depth_b - 1)``.
    t_end : float
        End time, common to the batch.
    t_eval : ndarray, shape (n_eval,)
        Sorted output times in ``[0, t_end]``; steps are shortened to land on them.
    rtol, atol : float
        Tolerances of the per-configuration error control.
    max_steps : int
        Budget of accepted plus rejected steps per configuration.
    first_step : float, optional
        Initial step for all configurations; by default scipy's starting-step heuristic per row.
    num_threads : int, default=1
        Torch intra-op threads during the solve (restored afterwards). The operations are small
        (a batch of 256 states of length 140), so one thread per process is fastest and avoids
        spin-wait contention; use processes (the sweep's ``--workers``) for parallelism.

    Returns
    -------
    BatchResult
        States at ``t_eval`` in the padded layout ``[omega (p), gates (J * (max(depth) - 1))]``.
    """
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        # inference_mode: no autograd bookkeeping on the many small tensor operations.
        with torch.inference_mode():
            args = (problems, depths, lams, params0, t_end, t_eval, rtol, atol, max_steps)
            return _solve(torch, *args, first_step)
    finally:
        torch.set_num_threads(previous_threads)


def _solve(
    torch, problems, depths, lams, params0, t_end, t_eval, rtol, atol, max_steps, first_step
):
    A, Bw, C, E, _ = _tableau(torch)
    n_stages = Bw.shape[0]
    groups = problems[0].groups
    p, J = groups.n_features, groups.n_groups
    B = len(problems)
    depths = [int(d) for d in depths]
    K = max(depths) - 1
    N = p + J * K
    lam = torch.as_tensor(np.asarray(lams, dtype=np.float64))
    dep = torch.as_tensor(np.asarray(depths, dtype=np.float64))
    wd = (2.0 * lam / dep)[:, None]  # (B, 1)
    gate_mask = torch.as_tensor(
        (np.arange(K)[None, :] < (np.asarray(depths)[:, None] - 1)).astype(np.float64)
    )  # (B, K)
    gate_mask = gate_mask[:, None, :].expand(B, J, K).reshape(B, J * K)
    n_real = torch.as_tensor(np.asarray([p + J * (d - 1) for d in depths], dtype=np.float64))
    pen = torch.as_tensor(groups.penalised.astype(np.float64))  # (p,)
    onehot = np.zeros((p, J))
    onehot[np.flatnonzero(groups.penalised), groups.labels[groups.penalised]] = 1.0
    Emat = torch.as_tensor(onehot)  # (p, J)
    free = 1.0 - pen
    y0 = np.ones((B, N))
    for b, prm in enumerate(params0):
        y0[b, :p] = prm.omega
        g = np.ones((J, K))
        g[:, : depths[b] - 1] = prm.gates
        y0[b, p:] = g.ravel()
    grad_fn = _BatchedGradient(problems, torch)

    state = {"wd": wd, "mask": gate_mask, "n_real": n_real}
    # Common case: every feature penalised, groups contiguous and of equal size. Then expanding a
    # per-group quantity and summing over a group are views of a (B, J, size) array instead of
    # products with the (p, J) indicator matrix.
    sizes = groups.sizes
    blocked = bool(
        groups.penalised.all()
        and J > 0
        and np.all(sizes == sizes[0])
        and np.array_equal(groups.labels, np.repeat(np.arange(J), sizes[0]))
    )
    size = int(sizes[0]) if blocked else 0

    def rhs(Y, out):
        """Write the gradient of L (minus the vector field) at the rows of Y into out."""
        nb = Y.shape[0]
        omega = Y[:, :p]
        gates = Y[:, p:].reshape(nb, J, K)
        if K == 1:
            pminus = torch.ones_like(gates)
            prod = gates[..., 0]
        else:
            ones = torch.ones_like(gates[..., :1])
            left = torch.cumprod(torch.cat([ones, gates[..., :-1]], -1), -1)
            right = torch.cumprod(torch.cat([ones, gates.flip(-1)[..., :-1]], -1), -1).flip(-1)
            pminus = left * right  # products with gate d left out, (B, J, K)
            prod = left[..., -1] * gates[..., -1]  # (B, J)
        if blocked:
            om3 = omega.reshape(nb, J, size)
            G = grad_fn((om3 * prod[..., None]).reshape(nb, p))
            G3 = G.reshape(nb, J, size)
            inner = (G3 * om3).sum(-1)  # <g_j, omega_j>
            torch.mul(G3, prod[..., None], out=out[:, :p].view(nb, J, size))
            out[:, :p].add_(omega * state["wd"])
        else:
            pexp = prod @ Emat.T + free
            G = grad_fn(omega * pexp)
            inner = (G * omega) @ Emat
            torch.mul(pexp, G, out=out[:, :p])
            out[:, :p].add_(omega * pen * state["wd"])
        gout = out[:, p:]
        torch.mul(pminus, inner[..., None], out=gout.view(nb, J, K))
        gout.add_(Y[:, p:] * state["wd"])
        gout.mul_(state["mask"])
        return out

    def rms(x):
        return torch.sqrt((x * x).sum(-1) / state["n_real"])

    t_eval = np.asarray(t_eval, dtype=np.float64)
    n_eval = t_eval.size
    t_eval_t = torch.as_tensor(t_eval)
    out = torch.full((B, n_eval, N), float("nan"), dtype=torch.float64)
    Y = torch.as_tensor(y0)
    ids = torch.arange(B)
    t = torch.zeros(B, dtype=torch.float64)
    nfev = np.zeros(B, dtype=np.int64)
    n_steps = np.zeros(B, dtype=np.int64)
    n_rej = np.zeros(B, dtype=np.int64)
    status = np.zeros(B, dtype=np.int64)
    next_idx = torch.zeros(B, dtype=torch.long)
    # Output times at t = 0.
    at0 = int(np.searchsorted(t_eval, 0.0, side="right"))
    if at0:
        out[:, :at0] = Y[:, None, :]
        next_idx[:] = at0

    Kst = torch.empty((n_stages + 1, B, N), dtype=torch.float64)
    # Kst holds gradients (= minus the vector field): the signs are folded into the updates.
    F = rhs(Y, torch.empty_like(Y)).clone()
    nfev += 1
    if first_step is None:
        scale = atol + Y.abs() * rtol
        d0, d1 = rms(Y / scale), rms(F / scale)
        h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
        h0 = torch.minimum(h0, torch.full_like(h0, t_end))
        F1 = rhs(Y - h0[:, None] * F, torch.empty_like(Y))
        nfev += 1
        d2 = rms((F1 - F) / scale) / h0
        big = torch.maximum(d1, d2)
        h1 = torch.where(
            big <= 1e-15,
            torch.maximum(torch.full_like(h0, 1e-6), h0 * 1e-3),
            (0.01 / big) ** (1.0 / 5.0),
        )
        h = torch.minimum(100 * h0, h1)
    else:
        h = torch.full((B,), float(first_step), dtype=torch.float64)
    h = torch.minimum(h, torch.full_like(h, t_end))

    t_end_t = torch.tensor(t_end, dtype=torch.float64)
    while ids.numel():
        nb = ids.numel()
        h = torch.minimum(h, t_end_t - t)
        if n_eval:
            te = t_eval_t[torch.clamp(next_idx, max=n_eval - 1)]
            h_land = torch.where(next_idx < n_eval, te - t, h)
            # Land on the next output time; never shrink a step by rounding (h_land ~ 0).
            h = torch.where((h_land > 0) & (h_land < h * (1 + 1e-12)), h_land, h)
        if Kst.shape[1] != nb:
            Kst = torch.empty((n_stages + 1, nb, N), dtype=torch.float64)
        flat = Kst.view(n_stages + 1, nb * N)
        Kst[0] = F
        hcol = h[:, None]
        for s in range(1, n_stages):
            comb = (A[s, :s] @ flat[:s]).view(nb, N)
            rhs(Y - hcol * comb, Kst[s])
        Y_new = Y - hcol * (Bw @ flat[:n_stages]).view(nb, N)
        F_new = rhs(Y_new, Kst[n_stages])
        nfev[ids.numpy()] += n_stages
        err = hcol * (E @ flat).view(nb, N)
        scale = atol + torch.maximum(Y.abs(), Y_new.abs()) * rtol
        err_norm = rms(err / scale)
        finite = torch.isfinite(err_norm)
        accept = (err_norm < 1.0) & finite
        safe = torch.where(finite & (err_norm > 0), err_norm, torch.ones_like(err_norm))
        factor = torch.where(
            err_norm == 0,
            torch.full_like(h, _MAX_FACTOR),
            torch.clamp(_SAFETY * safe**_ERR_EXPONENT, _MIN_FACTOR, _MAX_FACTOR),
        )
        factor = torch.where(finite, factor, torch.full_like(h, _MIN_FACTOR))
        # After a rejection the step may not grow (scipy's rule).
        factor = torch.where(accept, factor, torch.minimum(factor, torch.ones_like(factor)))
        acc_np = accept.numpy()
        n_steps[ids.numpy()[acc_np]] += 1
        n_rej[ids.numpy()[~acc_np]] += 1
        t_new = torch.where(accept, t + h, t)
        reached = accept & ((t_end_t - t_new) <= 1e-14 * max(1.0, t_end))
        t_new = torch.where(reached, t_end_t, t_new)
        # Steps are shortened to land on the output times (see the module docstring), so an
        # accepted step that reaches the next output time records its end state exactly.
        if n_eval:
            pend = next_idx < n_eval
            te = t_eval_t[torch.clamp(next_idx, max=n_eval - 1)]
            snap = accept & pend & ((te - t_new).abs() <= 1e-13 * max(1.0, t_end))
            t_new = torch.where(snap, te, t_new)
            hit = accept & pend & (te <= t_new)
            if bool(hit.any()):
                rows = torch.nonzero(hit).squeeze(-1)
                out[ids[rows], next_idx[rows]] = Y_new[rows]
                next_idx[rows] += 1
        Y = torch.where(accept[:, None], Y_new, Y)
        F = torch.where(accept[:, None], F_new, F)  # a copy: Kst is overwritten next step
        t = t_new
        h = h * factor
        bad = (
            (~finite)
            | (h < 1e-14 * torch.clamp(t.abs(), min=1.0))
            | torch.as_tensor((n_steps[ids.numpy()] + n_rej[ids.numpy()]) >= max_steps)
        )
        bad = bad & ~reached
        done = reached | bad
        if bool(done.any()):
            status[ids[bad].numpy()] = -1
            keep = torch.nonzero(~done).squeeze(-1)
            ids, Y, F, t, h, next_idx = (
                ids[keep],
                Y[keep],
                F[keep],
                t[keep],
                h[keep],
                next_idx[keep],
            )
            state["wd"] = state["wd"][keep]
            state["mask"] = state["mask"][keep]
            state["n_real"] = state["n_real"][keep]
            grad_fn.compact(keep)
    return BatchResult(out.numpy(), status, nfev, n_steps, n_rej)
