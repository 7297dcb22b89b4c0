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


@pytest.mark.parametrize("gain", [False, True], ids=["contraction", "dissipation"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_optimum_as_cvxopt_and_strictly_feasible(seed, gain):
    lmi = _instance(seed, gain=gain)
    out = lmi_solver.solve(lmi)
    status, value = _cvxpy(lmi)
    assert out["status"] == "optimal" and status == "optimal"
    assert _objective(lmi, out) == pytest.approx(value, rel=1e-5, abs=1e-7)
    _strictly_feasible(lmi, out)
    again = lmi_solver.solve(lmi)
    assert np.array_equal(again["P"], out["P"])  # deterministic


def test_an_unstable_loop_is_reported_infeasible():
    lmi = _instance(3, rate=1.3, C=2)
    lmi.Q[:] = 0.0  # exact elements: the loop's linear part, spectral radius 1.3, cannot contract
    out = lmi_solver.solve(lmi)
    assert out["status"] == "infeasible" and "P" not in out


@pytest.mark.parametrize("phase1", [False, True])
def test_barrier_derivatives_match_finite_differences(phase1):
    lmi = _instance(4, gain=True)
    bar = lmi_solver._Barrier(lmi)
    out = lmi_solver.solve(lmi)
    y = np.concatenate(
        [[out["P"][i, j] for i, j in lmi_solver._basis(bar.n)], out["lam"], [out["h"]]]
    )
    s = 0.5 if phase1 else None
    z = np.concatenate([y, [s]]) if phase1 else y

    def val(z):
        return bar.value(z[:-1], z[-1]) if phase1 else bar.value(z)

    def grad(z):
        return (bar.derivatives(z[:-1], z[-1]) if phase1 else bar.derivatives(z))[0]

    g, H = bar.derivatives(y, s)
    rng = np.random.default_rng(0)
    for _ in range(3):
        d = rng.standard_normal(len(z)) * 1e-6 * (np.abs(z) + 1e-3)
        assert (val(z + d) - val(z - d)) / 2 == pytest.approx(g @ d, rel=1e-4, abs=1e-12)
        hd = (grad(z + d) - grad(z - d)) / 2
        assert np.linalg.norm(hd - H @ d) <= 1e-4 * np.linalg.norm(H @ d)
