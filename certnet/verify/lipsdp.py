"""LipSDP-Neuron and LipSDP-Layer (Fazlyab et al., NeurIPS 2019) posed in cvxpy.

    minimise ρ  over ρ, t ≥ 0   subject to   M(ρ, t) ⪯ −δ I,

with M the block-tridiagonal matrix of :mod:`certnet.verify.lmi` built on weights rescaled by
powers of two (exact), so ρ = O(1) for the solver. "neuron" has one multiplier per hidden neuron,
"layer" one per hidden layer. The solver is named explicitly: CVXOPT (interior point, accurate)
for small problems, SCS (first order) above ``cvxopt_max_neurons``; never cvxpy's default
Clarabel, whose memory grows as the fourth power of the matrix side.

The solver's objective is never reported. Its multipliers go to
:func:`~certnet.verify.lmi.certify_rho`, which recomputes the smallest ρ they prove (Schur
complement) and proves M(ρ, t) ≺ 0 by Cholesky in float64 (the *repair*: the margin δ keeps the
hidden block strictly definite). If the solver fails, is inaccurate, or its multipliers prove
nothing, the certificate falls back to the closed-form feasible multipliers of
:func:`~certnet.verify.fast.feasible_start` — a proven, weaker bound, labelled so in
``data["fallback"]``. It is never smaller than what the solver's multipliers would prove.
"""

from __future__ import annotations

import time

import cvxpy as cp
import numpy as np

from certnet.errors import CertificateError, ProblemTooLargeError
from certnet.verify.certificate import Certificate
from certnet.verify.fast import feasible_start
from certnet.verify.lmi import lmi_certificate, slope_net

__all__ = ["lipsdp", "estimate_memory", "SOLVERS"]

SOLVERS = ("CVXOPT", "SCS")


def estimate_memory(widths: list[int], form: str, solver: str) -> float:
    """Rough peak memory in bytes of the solve (measured shape of the growth, with slack).

    CVXOPT scales each of the m decision variables' D×D coefficient matrices densely
    (≈ 16·m·D² bytes, D = n_0 + N); SCS keeps a sparse constraint matrix with about
    ∑ n_{k−1}·n_k + D²/2 non-zeros and dense D×D work arrays.
    """
    d = sum(widths[:-1])
    n_hidden = sum(widths[1:-1])
    m = (n_hidden if form == "neuron" else len(widths) - 2) + 1
    if solver == "CVXOPT":
        return 16.0 * m * d * d + 8.0 * m * m + 2e8
    nnz = sum(widths[k] * widths[k + 1] for k in range(len(widths) - 1)) + d * d / 2
    return 8.0 * (4 * nnz + 6 * d * d) + 2e8


def _scaled_problem(net, form: str, delta: float):
    ell = len(net.ws) - 1
    ts = []
    for n in net.hidden:
        if form == "neuron":
            ts.append(cp.Variable(n, nonneg=True))
        else:
            ts.append(cp.Variable(nonneg=True))
    rho = cp.Variable(nonneg=True)
    widths = net.widths[:-1]
    blocks = [[None] * (ell + 1) for _ in range(ell + 1)]
    for i in range(ell + 1):
        for j in range(ell + 1):
            if abs(i - j) > 1:
                blocks[i][j] = np.zeros((widths[i], widths[j]))

    def vec(k):
        t = ts[k - 1]
        return t if form == "neuron" else t * np.ones(net.hidden[k - 1])

    diag = [None] * (ell + 1)
    diag[0] = -rho * np.eye(widths[0])
    for k in range(1, ell + 1):
        a, b = net.alpha[k - 1], net.beta[k - 1]
        w = net.ws[k - 1]
        t = vec(k)
        diag[k] = -2.0 * cp.diag(t)
        ab, apb = np.asarray(a * b, dtype=np.float64), np.asarray(a + b, dtype=np.float64)
        if np.any(ab != 0.0):  # per-layer floats, or per-neuron arrays (local certificates)
            diag[k - 1] = diag[k - 1] - 2.0 * (w.T @ cp.diag(cp.multiply(ab, t)) @ w)
        off = w.T @ cp.diag(cp.multiply(apb, t))
        blocks[k - 1][k] = off
        blocks[k][k - 1] = off.T
    wl = net.ws[-1]
    diag[ell] = diag[ell] + wl.T @ wl
    for k in range(ell + 1):
        blocks[k][k] = diag[k]
    m = cp.bmat(blocks)
    d = sum(widths)
    sym = (m + m.T) / 2
    prob = cp.Problem(cp.Minimize(rho), [sym << -delta * np.eye(d)])
    return prob, ts, rho


def lipsdp(
    stack,
    form: str = "neuron",
    *,
    solver: str | None = None,
    margin: float = 1e-7,
    cvxopt_max_neurons: int = 400,
    max_memory: float = 4e9,
    verbose: bool = False,
) -> Certificate:
    """LipSDP certificate of a LayerStack (``form`` "neuron" or "layer").

    Parameters
    ----------
    stack : LayerStack
    form : {"neuron", "layer"}
    solver : {"CVXOPT", "SCS"}, optional
        Default: CVXOPT up to ``cvxopt_max_neurons`` hidden neurons, SCS above.
    margin : float
        δ in M ⪯ −δI on the power-of-two-normalised problem (dimensionless).
    max_memory : float
        Refuse (ProblemTooLargeError) when :func:`estimate_memory` exceeds it, in bytes.

    Raises
    ------
    ValueError
        Unknown form or solver, or an activation with no slope class (GroupSort).
    ProblemTooLargeError
        The estimated memory of the solve exceeds ``max_memory``; use method="fast".
    """
    if form not in ("neuron", "layer"):
        raise ValueError(f"form must be 'neuron' or 'layer', got {form!r}")
    method = f"lipsdp-{form}"
    net = slope_net(stack, method)
    n_hidden = sum(net.hidden)
    if solver is None:
        solver = "CVXOPT" if n_hidden <= cvxopt_max_neurons else "SCS"
    solver = str(solver).upper()
    if solver not in SOLVERS:
        raise ValueError(
            f"solver must be one of {SOLVERS} (cvxpy's default Clarabel needs > 16 GB at ~300 "
            f"neurons), got {solver!r}"
        )
    need = estimate_memory(net.widths, form, solver)
    if need > max_memory:
        raise ProblemTooLargeError(
            f"{method} with {solver} on widths {net.widths} needs about {need / 1e9:.1f} GB, "
            f"more than max_memory={max_memory / 1e9:.1f} GB; use method='fast' (no SDP "
            "solver, same tightness) or raise max_memory"
        )
    nn_, s = net.normalized()
    p2 = [1.0]
    for sk in s:
        p2.append(p2[-1] * sk * sk)
    t0 = time.perf_counter()
    prob, tvars, _ = _scaled_problem(nn_, form, margin)
    status, err = "not run", ""
    try:
        kw = {"max_iters": 100000, "eps_abs": 1e-7, "eps_rel": 1e-7} if solver == "SCS" else {}
        prob.solve(solver=solver, verbose=verbose, **kw)
        status = prob.status
    except cp.error.SolverError as e:
        status, err = "solver_error", str(e)
    elapsed = time.perf_counter() - t0
    info = {"name": solver, "status": status, "time": elapsed, "margin_form": "M <= -delta I"}
    if prob.solver_stats is not None and prob.solver_stats.num_iters is not None:
        info["iterations"] = int(prob.solver_stats.num_iters)
    big = p2[-1]
    fallback = ""
    if status == cp.OPTIMAL:
        th = [
            np.broadcast_to(np.asarray(t.value, dtype=np.float64), (n,))
            for t, n in zip(tvars, nn_.hidden, strict=True)
        ]
        ts = [np.maximum(t, 0.0) * (big / p2[k + 1]) for k, t in enumerate(th)]
        try:
            return lmi_certificate(
                stack, method, ts, solver=info, margin=margin, data={"fallback": ""}
            )
        except CertificateError as e:
            fallback = f"solver multipliers did not re-verify ({e})"
    else:
        fallback = f"solver status {status!r} {err}".strip()
    ts = [t * (big / p2[k + 1]) for k, t in enumerate(feasible_start(nn_))]
    return lmi_certificate(
        stack,
        method,
        ts,
        solver=info,
        margin=margin,
        data={"fallback": f"closed-form feasible multipliers (weaker bound): {fallback}"},
    )
