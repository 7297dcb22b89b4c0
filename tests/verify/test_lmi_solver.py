"""The structured interior-point solver of the loop LMIs: same optimum as CVXOPT, strictly
feasible answers, infeasibility reported, derivatives exact."""

import cvxpy as cp
import numpy as np
import pytest

from certnet.verify import lmi_solver
from certnet.verify.lmi_solver import LoopLMI


def _instance(seed, n=3, C=5, q=1, gain=False, rate=0.7):
    """A loop LMI of the shape loop_sdp builds: z = [Δx, ν, d], Δx⁺ = A Δx + B ν (+ B_d d),
    channels q = Q z with |ν_i| ≤ |q_i|."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    A *= rate / max(abs(np.linalg.eigvals(A)))
    B = 0.3 * rng.standard_normal((n, C))
    nz = n + C + (q if gain else 0)
    Xp = np.zeros((n, nz))
    Xp[:, :n], Xp[:, n : n + C] = A, B
    if gain:
        Xp[:, n + C :] = rng.standard_normal((n, q))
    Ex = np.zeros((n, nz))
    Ex[:, :n] = np.eye(n)
    Q = np.zeros((C, nz))
    Q[:, :n] = 0.3 * rng.standard_normal((C, n))
    Enu = np.zeros((C, nz))
    Enu[np.arange(C), n + np.arange(C)] = 1.0
    a = np.full(n, 0.5)
    if not gain:
        return LoopLMI(Xp, Ex, Q, Enu, np.zeros((nz, nz)), 1 - 1e-4, a, np.eye(n))
    Ed = np.zeros((q, nz))
    Ed[:, n + C :] = np.eye(q)
    Ey = np.zeros((1, nz))
    Ey[0, 0] = 1.0
    return LoopLMI(Xp, Ex, Q, Enu, -Ed.T @ Ed, 1.0, a, np.zeros((n, n)), 1.0, Ey)


def _cvxpy(lmi):
    n, nz = lmi.Ex.shape
    C = lmi.Q.shape[0]
    P = cp.Variable((n, n), symmetric=True)
    lam = cp.Variable(C, nonneg=True)
    h = cp.Variable(nonneg=True)
    F = lmi.Xp.T @ P @ lmi.Xp - lmi.c * (lmi.Ex.T @ P @ lmi.Ex) + lmi.F0
    F = F + lmi.Q.T @ cp.diag(lam) @ lmi.Q - lmi.Enu.T @ cp.diag(lam) @ lmi.Enu
    cons = [(F + F.T) / 2 << -lmi.margin * np.eye(nz), P >> lmi.margin * np.eye(n)]
    if lmi.w_h:
        F = F + h * (lmi.Ey.T @ lmi.Ey)
        cons[0] = (F + F.T) / 2 << -lmi.margin * np.eye(nz)
    for j in range(n):
        e = np.zeros((n, n))
        e[j, j] = lmi.a[j]
        cons.append(P - e >> 0)
    obj = cp.trace(lmi.W @ P) - lmi.w_h * h
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(solver="CVXOPT")
    return prob.status, prob.value


def _objective(lmi, out):
    return float(np.trace(lmi.W @ out["P"]) - lmi.w_h * out["h"])


def _strictly_feasible(lmi, out):
    bar = lmi_solver._Barrier(lmi)
    y = np.concatenate(
        [[out["P"][i, j] for i, j in lmi_solver._basis(bar.n)], out["lam"]]
        + ([[out["h"]]] if bar.has_h else [])
    )
    F = bar.F(y)
    assert np.linalg.eigvalsh(F).max() < -lmi.margin
    for j in range(bar.n):
        B = out["P"].copy()
        B[j, j] -= lmi.a[j]
        assert np.linalg.eigvalsh(B).min() > 0
    assert np.all(out["lam"] > 0)


def test_it_agrees_with_cvxopt_on_feasibility_and_on_the_optimum():
    # random contraction LMIs, half of them infeasible (CVXOPT agrees on every one)
    solved = 0
    for seed in range(8):
        lmi = _instance(seed)
        out = lmi_solver.solve(lmi)
        status, value = _cvxpy(lmi)
        if status != "optimal":
            assert out["status"] in ("infeasible", "stalled") and "P" not in out
            continue
        assert out["status"] == "optimal"
        solved += 1
        assert _objective(lmi, out) == pytest.approx(value, rel=1e-6)
        _strictly_feasible(lmi, out)
        assert np.array_equal(lmi_solver.solve(lmi)["P"], out["P"])  # deterministic
    assert solved == 3  # seeds 0, 2, 6


def test_an_unstable_loop_is_never_given_a_point():
    lmi = _instance(3, rate=1.3, C=2)
    lmi.Q[:] = 0.0  # exact elements: the loop's linear part, spectral radius 1.3, cannot contract
    out = lmi_solver.solve(lmi)
    assert out["status"] in ("infeasible", "stalled") and "P" not in out


def test_loop_sdp_falls_back_to_cvxpy_when_the_structured_solve_does_not_converge(monkeypatch):
    from certnet.verify import loop_sdp

    lmi = _instance(0)
    args = (lmi.Xp, lmi.Ex, lmi.Q, lmi.Enu, np.sqrt(1.0 / (lmi.a * (1 - 1e-6))), "CVXOPT")
    fast = loop_sdp._solve(*args)
    assert fast["solver"] == "certnet structured"
    monkeypatch.setattr(lmi_solver, "solve", lambda lmi, **k: {"status": "stalled"})
    slow = loop_sdp._solve(*args)
    assert slow["status"] == "optimal" and "solver" not in slow  # cvxpy's answer
    objective = np.trace(np.diag(1.0 / lmi.a) @ fast["P"])
    assert objective == pytest.approx(np.trace(np.diag(1.0 / lmi.a) @ slow["P"]), rel=1e-4)


def _feasible_point(lmi):
    """(y, s): the solver's phase-I start, strictly feasible for the slack form."""
    bar = lmi_solver._Barrier(lmi)
    diag = 2.0 * np.maximum(lmi.a, 0.0) + 2.0 * lmi.margin + 1e-3
    y = np.concatenate(
        [
            [diag[i] if i == j else 0.0 for i, j in lmi_solver._basis(bar.n)],
            np.ones(bar.C),
            [1e-3] if bar.has_h else [],
        ]
    )
    s = float(np.linalg.eigvalsh(bar.F(y))[-1]) + lmi.margin + 1.0
    return bar, y, s


@pytest.mark.parametrize("gain", [False, True])
def test_barrier_derivatives_match_finite_differences(gain):
    bar, y, s = _feasible_point(_instance(4, gain=gain))
    z = np.concatenate([y, [s]])

    def val(z):
        return bar.value(z[:-1], z[-1])

    def grad(z):
        return bar.derivatives(z[:-1], z[-1])[0]

    g, H = bar.derivatives(y, s)
    rng = np.random.default_rng(0)
    for _ in range(3):
        d = rng.standard_normal(len(z)) * 1e-6 * (np.abs(z) + 1e-3)
        assert (val(z + d) - val(z - d)) / 2 == pytest.approx(g @ d, rel=1e-4, abs=1e-12)
        hd = (grad(z + d) - grad(z - d)) / 2
        assert np.linalg.norm(hd - H @ d) <= 1e-4 * np.linalg.norm(H @ d)
