"""Closed-loop certificates: soundness by simulation, re-verification, tampering, bad input."""

import dataclasses

import control
import numpy as np
import pytest
import torch
from torch import nn

import certnet.plants as P
from certnet.errors import CertificateError
from certnet.verify.certificate import Certificate
from certnet.verify.closed_loop import closed_loop, l2_gain
from certnet.verify.loop_plot import empirical_basin, plot_roa, simulate
from certnet.verify.loop_sector import sector_bounds


def _net(W1, W2, W3, act=nn.Tanh):
    net = nn.Sequential(
        nn.Linear(W1.shape[1], W1.shape[0], bias=False),
        act(),
        nn.Linear(W2.shape[1], W2.shape[0], bias=False),
        act(),
        nn.Linear(W3.shape[1], W3.shape[0], bias=False),
    ).double()
    with torch.no_grad():
        for m, w in zip([net[0], net[2], net[4]], [W1, W2, W3], strict=True):
            m.weight.copy_(torch.as_tensor(w))
    return net


def _lqr_net(sys, sign=1.0, act=nn.Tanh, seed=0):
    """A tanh net whose Jacobian at 0 is −K (dLQR): the loop is locally stable (sign=+1)."""
    n, m = sys.B.shape
    K, *_ = control.dlqr(sys.A, sys.B, np.eye(n), np.eye(m))
    rng = np.random.default_rng(seed)
    W1 = rng.normal(size=(12, n)) * 0.3
    W2 = np.linalg.qr(rng.normal(size=(12, 12)))[0] * 0.8
    W3 = -sign * K @ np.linalg.pinv(W2 @ W1)
    return _net(W1, W2, W3, act)


@pytest.fixture(scope="module")
def pend():
    plant = P.InvertedPendulum()
    net = _lqr_net(P.linearize(plant))
    cert = closed_loop(plant, net, method="sector", dv=0.5, psi_bound=2.0)
    return plant, net, cert


def _inside(P_, n, rng, scale=1.0):
    """Points uniformly inside {xᵀPx ≤ scale²}."""
    L = np.linalg.cholesky(P_)
    d = rng.normal(size=(n, P_.shape[0]))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = rng.uniform(size=(n, 1)) ** (1 / P_.shape[0]) * scale
    return np.linalg.solve(L.T, (d * r).T).T


def test_pendulum_roa_is_certified_and_every_start_inside_converges(pend):
    plant, net, cert = pend
    assert cert.certified and cert.method == "sector" and cert.value < 1
    assert cert.check(net) <= cert.value
    Pm = cert.array("P")
    x0 = _inside(Pm, 2000, np.random.default_rng(1))
    x0[:200] = _inside(Pm, 200, np.random.default_rng(2), scale=0.999)  # near the boundary
    traj = simulate(plant, net, x0, 400)
    V = np.einsum("bti,ij,btj->bt", traj, Pm, traj)
    assert V.max() <= 1 + 1e-9  # invariant
    assert np.all(V[:, -1] <= V[:, 0] * cert.value ** (2 * 400) + 1e-12)  # ρ-contraction


def test_certified_roa_lies_inside_the_empirical_basin(pend):
    plant, net, cert = pend
    L = np.linalg.cholesky(cert.array("P"))
    r = np.abs(np.linalg.inv(L.T)).sum(axis=1) * 1.5
    a, b, ok, area = empirical_basin(plant, net, (-r[0], r[0], -r[1], r[1]), n=21, steps=300)
    assert area >= cert.data["roa_volume"] * 0.9  # basin at least as large (up to grid error)


def test_sector_bounds_hold_on_samples(pend):
    plant, net, cert = pend
    from certnet.verify.closed_loop import _setup

    model, arrays, _ = _setup(plant, net, None, None)
    a, b = sector_bounds(model, arrays, 0.5, 2.0)
    W1 = arrays["weights"][0]
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, (20000, 2))
    x = x[np.abs(x @ W1.T).max(axis=1) <= 0.5]  # the box where the sectors claim to hold
    v1 = x @ W1.T
    w1 = np.tanh(v1)
    s1 = w1 / np.where(v1 == 0, 1, v1)
    assert np.all(s1 >= a[:12] - 1e-12) and np.all(s1 <= b[:12] + 1e-12)
    v2 = w1 @ arrays["weights"][1].T
    s2 = np.tanh(v2) / np.where(v2 == 0, 1, v2)
    assert np.all(s2 >= a[12:24] - 1e-12) and np.all(s2 <= b[12:24] + 1e-12)


@pytest.mark.parametrize("rbar", [1.0, 3.14, 3.8, 4.49, None])
def test_pendulum_nonlinearity_sector_holds_on_samples(rbar):
    from certnet.verify.loop_sector import PSI_FUNCTIONS

    psi, sector = PSI_FUNCTIONS["s - sin(s)"]
    a, b = sector(rbar)
    s = np.linspace(-(rbar or 50.0), rbar or 50.0, 200001)
    s = s[s != 0]
    r = psi(s) / s
    assert r.min() >= a and r.max() <= b


def test_tampered_certificates_are_rejected(pend):
    _, net, cert = pend
    Pm = cert.array("P")
    for bad, match in [
        (Pm * 0.5, "containment"),
        (Pm * 1.5 + np.array([[0, 1.0], [1.0, 0]]) * Pm[0, 0], "positive definite|decrease|ρ"),
        (Pm + np.array([[0, 1e-3], [0, 0]]), "symmetric"),
    ]:
        t = dataclasses.replace(cert, data={**cert.data, "P": bad.tolist()})
        with pytest.raises(CertificateError, match=match):
            t.check(net)
    lam = cert.array("lambda").copy()
    lam[0] = -1.0
    t = dataclasses.replace(cert, multipliers={"lambda": lam.tolist()})
    with pytest.raises(CertificateError, match=">= 0"):
        t.check(net)
    t = dataclasses.replace(cert, data={**cert.data, "roa_volume": cert.data["roa_volume"] * 2})
    with pytest.raises(CertificateError, match="ROA volume"):
        t.check(net)
    t = dataclasses.replace(cert, value=cert.value * 0.9)
    with pytest.raises(CertificateError, match="larger than the stored"):
        t.check(net)


def test_json_round_trip_rechecks_without_the_network(pend):
    _, _, cert = pend
    back = Certificate.from_json(cert.to_json())
    assert back.check() == pytest.approx(cert.check(), rel=1e-12)


def test_destabilising_controller_is_never_certified():
    plant = P.InvertedPendulum()
    net = _lqr_net(P.linearize(plant), sign=-1.0)
    cert = closed_loop(plant, net, method="sector", dv=0.5, psi_bound=2.0)
    assert not cert.certified and "no Lyapunov certificate" in cert.reason
    with pytest.raises(CertificateError, match="not certified"):
        cert.check()


def test_saturated_pendulum_roa_converges():
    plant = P.InvertedPendulum(max_torque=1.0)
    net = _lqr_net(P.linearize(plant))
    cert = closed_loop(plant, net, method="sector", dv=0.1, psi_bound=2.0)
    assert cert.certified and cert.data["box"] is not None
    x0 = _inside(cert.array("P"), 500, np.random.default_rng(3))
    x0[:100] = _inside(cert.array("P"), 100, np.random.default_rng(4), scale=0.999)
    traj = simulate(plant, net, x0, 500)
    assert np.abs(traj[:, -1]).max() < 1e-2


@pytest.mark.slow
def test_auto_search_picks_a_larger_region(pend):
    plant, net, _ = pend
    fixed = closed_loop(plant, net, method="sector", dv=0.5, psi_bound=2.0, grow=False)
    cert = closed_loop(plant, net)
    assert cert.certified and cert.data["roa_volume"] >= fixed.data["roa_volume"] * 0.999
    assert cert.check(net) <= cert.value


def test_phase_portrait_png(pend, tmp_path):
    plant, net, cert = pend
    out = plot_roa(cert, plant, net, tmp_path / "roa.png", n=15, steps=100, trajectories=3)
    assert out.stat().st_size > 1000
    lin = dataclasses.replace(cert, kind="l2-gain")
    with pytest.raises(ValueError, match="certified stability certificate"):
        plot_roa(lin, plant, net, tmp_path / "x.png")


# ------------------------------------------------------------------ ℓ2 gain
def _gain_of(plant, net, d, x_eq):
    """Σ|x − x*|² / Σ|d|² of the loop x⁺ = F(x, π(x)) + B d from x*, batched over d."""
    B = torch.as_tensor(np.asarray(P.linearize(plant).B), dtype=torch.float64)
    x = torch.as_tensor(x_eq, dtype=torch.float64).repeat(d.shape[0], 1)
    num = torch.zeros(d.shape[0], dtype=torch.float64)
    from certnet.nn.extract import extract_layers

    st = extract_layers(net)
    W = [torch.as_tensor(w) for w in st.folded_weights()]

    def pi(x):
        h = torch.tanh(x @ W[0].T)
        return torch.tanh(h @ W[1].T) @ W[2].T

    for k in range(d.shape[1]):
        num = num + ((x - x.new_tensor(x_eq)) ** 2).sum(1)
        x = plant.step(x, pi(x)) + d[:, k] @ B.T
    return num / (d**2).sum((1, 2))


def test_local_l2_gain_bounds_random_and_ascended_disturbances(pend):
    plant, net, _ = pend
    e = 0.01
    cert = l2_gain(plant, net, energy=e, dv=0.3, psi_bound=2.0)
    assert cert.certified and cert.method == "sector-local"
    g = cert.check(net)
    rng = np.random.default_rng(0)
    d = torch.as_tensor(rng.normal(size=(256, 100, 1)))
    d = (
        d
        * torch.sqrt(e / (d**2).sum((1, 2), keepdim=True))
        * torch.as_tensor(rng.uniform(0.05, 1, (256, 1, 1)))
    )
    assert _gain_of(plant, net, d, [0.0, 0.0]).max().sqrt() <= g
    d = (d[:16] * 1.0).requires_grad_(True)
    opt = torch.optim.Adam([d], lr=1e-3)
    for _ in range(15):
        opt.zero_grad()
        (-_gain_of(plant, net, d, [0.0, 0.0]).sum()).backward()
        opt.step()
        with torch.no_grad():
            n2 = (d**2).sum((1, 2), keepdim=True)
            d.mul_(torch.clamp(torch.sqrt(e / n2), max=1.0))
    assert _gain_of(plant, net, d.detach(), [0.0, 0.0]).max().sqrt() <= g
    t = dataclasses.replace(cert, data={**cert.data, "h": cert.data["h"] * 2})
    with pytest.raises(CertificateError, match="dissipation"):
        t.check(net)


def test_global_l2_gain_on_a_stable_lti_plant():
    sys = control.ss(
        np.array([[0.9, 0.1], [0.0, 0.8]]),
        np.array([[0.0], [0.1]]),
        np.eye(2),
        np.zeros((2, 1)),
        0.02,
    )
    net = _lqr_net(sys)
    cert = l2_gain(sys, net, performance=np.array([[1.0, 0.0]]))
    assert cert.certified and cert.method == "sector-global"
    g = cert.check(net)
    # the gain of the linearised loop (a sector member) must not exceed it
    W = extract_jac(net)
    cl = control.ss(sys.A + sys.B @ W, sys.B, np.array([[1.0, 0.0]]), 0, 0.02)
    w = np.linspace(0, np.pi, 2000)
    peak = max(abs(np.asarray(cl(np.exp(1j * x))).ravel()[0]) for x in w)
    assert peak <= g


def extract_jac(net):
    from certnet.nn.extract import extract_layers

    ws = extract_layers(net).folded_weights()
    return ws[2] @ ws[1] @ ws[0]


# ------------------------------------------------------------------ small gain
def test_small_gain_on_a_stable_lti_plant_and_its_hinf_norm():
    A = np.array([[0.5, 0.2], [0.0, 0.6]])
    B = np.array([[0.0], [0.3]])
    sys = control.ss(A, B, np.eye(2), np.zeros((2, 1)), 0.1)
    rng = np.random.default_rng(0)
    net = _net(
        rng.normal(size=(8, 2)) * 0.2, rng.normal(size=(8, 8)) * 0.2, rng.normal(size=(1, 8)) * 0.2
    )
    cert = closed_loop(sys, net, method="small-gain")
    assert cert.certified and cert.value < 1 and cert.margin > 0
    assert cert.check(net) <= cert.value
    w = np.linspace(0, np.pi, 20001)
    peak = max(np.linalg.norm(np.linalg.solve(np.exp(1j * x) * np.eye(2) - A, B), 2) for x in w)
    assert peak <= cert.data["hinf"] <= peak * 1.001
    t = dataclasses.replace(cert, data={**cert.data, "hinf": peak * 0.5})
    with pytest.raises(CertificateError, match="bounded-real"):
        t.check(net)
    big = _net(rng.normal(size=(8, 2)) * 5, rng.normal(size=(8, 8)) * 5, rng.normal(size=(1, 8)))
    loose = closed_loop(sys, big, method="small-gain")
    assert not loose.certified and "≥ 1" in loose.reason


def test_small_gain_refuses_an_unstable_plant():
    plant = P.InvertedPendulum()
    with pytest.raises(ValueError, match="not stable"):
        closed_loop(plant, _lqr_net(P.linearize(plant)), method="small-gain")


# ------------------------------------------------------------------ bad input
def test_bad_input_errors(pend):
    plant, net, _ = pend
    with pytest.raises(ValueError, match="method must be"):
        closed_loop(plant, net, method="iqc")
    with pytest.raises(ValueError, match="solver must be"):
        closed_loop(plant, net, solver="CLARABEL")
    with pytest.raises(ValueError, match="state-feedback"):
        closed_loop(plant, _net(np.ones((4, 3)), np.eye(4), np.ones((1, 4))))
    with pytest.raises(ValueError, match="upright"):
        closed_loop(plant, net, x_eq=[0.0, 0.1])
    sys = control.ss(np.diag([0.5, 0.6]), np.ones((2, 1)), np.eye(2), 0, 0.1)
    with pytest.raises(ValueError, match="not an equilibrium"):
        closed_loop(sys, net, x_eq=[0.0, 0.1], method="small-gain")
    with pytest.raises(ValueError, match="u_eq"):
        closed_loop(plant, net, u_eq=[1.0])
    with pytest.raises(ValueError, match="x_eq must be"):
        closed_loop(plant, net, x_eq=[0.0])
    with pytest.raises(TypeError, match="cannot read"):
        closed_loop("pendulum", net)
    with pytest.raises(ValueError, match="continuous-time"):
        closed_loop(control.ss(-np.eye(2), np.ones((2, 1)), np.eye(2), 0), net)
    with pytest.raises(ValueError, match="energy must be"):
        l2_gain(plant, net, energy=-1.0)
    with pytest.raises(ValueError, match="disturbance must be"):
        l2_gain(plant, net, disturbance=np.ones((3, 1)), energy=0.1)
    with pytest.raises(ValueError, match="performance must be"):
        l2_gain(plant, net, performance="output", energy=0.1)


def test_unsupported_activation_for_the_sector_method(pend):
    plant, _, _ = pend
    net = _lqr_net(P.linearize(plant), act=nn.GELU)
    with pytest.raises(TypeError, match="no local sector rule"):
        closed_loop(plant, net, method="sector")
    with pytest.raises(TypeError, match="unsupported layer"):
        closed_loop(plant, nn.Sequential(nn.Linear(2, 4), nn.Dropout(), nn.Linear(4, 1)))


def test_a_plant_other_than_its_exact_model_is_certified_as_a_linearisation():
    plant = P.Pendulum()  # gymnasium twin: speed clipping, not modelled exactly
    net = _lqr_net(P.linearize(plant))
    cert = closed_loop(plant, net, method="sector", dv=0.3, grow=False)
    assert cert.method == "sector-linearization"


def test_oversized_lmi_is_refused_before_solving():
    plant = P.InvertedPendulum()
    wide = _net(np.zeros((400, 2)), np.zeros((400, 400)), np.zeros((1, 400)))
    with pytest.raises(ValueError, match="caps it"):
        closed_loop(plant, wide, method="sector", dv=0.1, psi_bound=2.0)
