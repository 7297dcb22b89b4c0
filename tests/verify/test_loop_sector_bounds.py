"""Tightened local sectors (input box, zonotope, Lipschitz) and the Δv search: soundness by
dense sampling, simulation from the certified region's boundary, and the failure message."""

import numpy as np
import pytest
import torch
from torch import nn

import certnet.plants as P
from certnet.nn.extract import extract_layers
from certnet.verify.closed_loop import _failure_reason, _search, closed_loop, loop_model
from certnet.verify.loop_plot import simulate
from certnet.verify.loop_sector import (
    LoopModel,
    _net_data,
    _propagate,
    input_box,
    sector_bounds,
)

ACTS = {"tanh": (nn.Tanh, np.tanh), "sigmoid": (nn.Sigmoid, lambda v: 1 / (1 + np.exp(-v)))}
ACTS["relu"] = (nn.ReLU, lambda v: np.maximum(v, 0.0))


def _arrays(act, seed, widths=(2, 16, 16, 1)):
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        lin = nn.Linear(a, b).double()
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(rng.normal(size=(b, a)) * 1.5 / np.sqrt(a)))
            lin.bias.copy_(torch.as_tensor(rng.normal(size=b) * 0.7))
        layers += [lin] + ([ACTS[act][0]()] if i < len(widths) - 2 else [])
    stack = extract_layers(nn.Sequential(*layers))
    arrays = _net_data(stack.folded_weights(), stack.folded_biases(), stack.activations)
    return arrays, ACTS[act][1]


def _model(n, u_lim):
    z = np.zeros((n, 0))
    lim = np.array([u_lim])
    return LoopModel(np.eye(n), np.ones((n, 1)), z, z.T, "", np.zeros(n), -lim, lim, False)


def _region_samples(w1, dv, box, rng, k=40000):
    """Dense samples of {|W₁δx| ≤ Δv} ∩ {|δx| ≤ box}, including its boundary."""
    x = rng.uniform(-1, 1, (k, len(box))) * box
    scale = np.abs(x @ w1.T).max(axis=1, keepdims=True) / dv
    x = np.vstack([x[scale[:, 0] <= 1], x / np.maximum(scale, 1.0)])  # interior + boundary
    return x[np.all(np.abs(x) <= box, axis=1)]


def _layers(arrays, f, x):
    """Pre-activation deviations of every layer (and the output) at the states x."""
    out, h, h0 = [], x, np.zeros((1, x.shape[1]))
    for k, (w, b) in enumerate(zip(arrays["weights"], arrays["biases"], strict=True)):
        v, v0 = h @ w.T + b, h0 @ w.T + b
        out.append(v - v0)
        if k < len(arrays["weights"]) - 1:
            h, h0 = f(v), f(v0)
    return out


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("dv", [0.05, 0.5])
def test_interval_bounds_contain_every_sampled_deviation(act, dv):
    arrays, f = _arrays(act, seed=3)
    model = _model(2, 0.5)
    w1 = arrays["weights"][0]
    box = input_box(w1, dv)
    assert box is not None and np.all(box > 0)
    x = _region_samples(w1, dv, box, np.random.default_rng(0))
    tight = _propagate(model, arrays, dv, box)
    loose = _propagate(model, arrays, dv, None)
    for (lo, hi), (llo, lhi), dev in zip(tight, loose, _layers(arrays, f, x), strict=True):
        assert np.all(dev >= lo[None] - 1e-12) and np.all(dev <= hi[None] + 1e-12)
        assert np.all(lo >= llo - 1e-15) and np.all(hi <= lhi + 1e-15)  # never looser
    # the output range is a real improvement over interval propagation of the first layer
    (lo, hi), (llo, lhi) = tight[-1], loose[-1]
    assert (hi - lo).max() < 0.7 * (lhi - llo).max()
    if dv < 0.1:  # and, on a small region, within 3× of the sampled output range
        dev = _layers(arrays, f, x)[-1]
        assert (hi - lo).max() <= 3 * (dev.max() - dev.min())


def test_sectors_with_the_box_hold_on_samples_and_keep_the_saturation():
    arrays, f = _arrays("tanh", seed=5)
    u_lim = 0.4
    model = _model(2, u_lim)
    w1 = arrays["weights"][0]
    dv = 0.3
    box = input_box(w1, dv)
    a, b = sector_bounds(model, arrays, dv, None, box)
    a0, _ = sector_bounds(model, arrays, dv, None, None)
    x = _region_samples(w1, dv, box, np.random.default_rng(1))
    devs = _layers(arrays, f, x)
    # hidden neurons: secant of σ around the equilibrium pre-activation
    h0, k0 = np.zeros(2), 0
    for k, (w, bias) in enumerate(zip(arrays["weights"][:-1], arrays["biases"][:-1], strict=True)):
        c = w @ h0 + bias
        d = devs[k]
        nz = np.abs(d) > 1e-9
        s = np.where(nz, (f(c + d) - f(c)) / np.where(nz, d, 1), a[k0 : k0 + len(c)])
        assert np.all(s >= a[k0 : k0 + len(c)] - 1e-12)
        assert np.all(s <= b[k0 : k0 + len(c)] + 1e-12)
        h0, k0 = f(c), k0 + len(c)
    # saturation channel: secant of the clip around u*
    u0 = arrays["weights"][-1] @ h0 + arrays["biases"][-1]
    du = devs[-1]
    sat = (np.clip(u0 + du, -u_lim, u_lim) - np.clip(u0, -u_lim, u_lim)) / du
    assert np.all(sat >= a[-1] - 1e-12)
    assert a[-1] > a0[-1]  # the tighter output range keeps more of the saturation's sector


def test_rank_deficient_first_layer_gives_no_box():
    assert input_box(np.ones((8, 2)), 0.1) is None


# ------------------------------------------------------------------ loop-level checks
def _lqr_net(sys, seed=0):
    import control

    n, m = sys.B.shape
    K, *_ = control.dlqr(sys.A, sys.B, np.eye(n), np.eye(m))
    rng = np.random.default_rng(seed)
    W1 = rng.normal(size=(12, n)) * 0.3
    W2 = np.linalg.qr(rng.normal(size=(12, 12)))[0] * 0.8
    W3 = -K @ np.linalg.pinv(W2 @ W1)
    net = nn.Sequential(
        nn.Linear(n, 12, bias=False), nn.Tanh(), nn.Linear(12, 12, bias=False), nn.Tanh()
    )
    net.append(nn.Linear(12, m, bias=False))
    net = net.double()
    with torch.no_grad():
        for lin, w in zip([net[0], net[2], net[4]], [W1, W2, W3], strict=True):
            lin.weight.copy_(torch.as_tensor(w))
    return net


def test_boundary_starts_converge_on_the_linearised_and_the_nonlinear_twin():
    plant = P.Pendulum()  # gymnasium twin, ±2 N m: certified as a linearisation
    net = _lqr_net(P.linearize(plant))
    cert = closed_loop(plant, net, method="sector")  # searched: Δv = 0.3 is infeasible
    assert cert.certified and cert.method == "sector-linearization"
    assert cert.data["box"] is not None
    assert cert.check(net) <= cert.value
    Pm = cert.array("P")
    rng = np.random.default_rng(4)
    d = rng.normal(size=(400, 2))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    x0 = np.linalg.solve(np.linalg.cholesky(Pm).T, d.T).T * (1 - 1e-9)  # on the boundary
    # linearised loop with the network and the saturation exactly
    model, _, _ = loop_model(plant)
    stack = extract_layers(net)
    lim = plant.max_torque
    x, V = x0.copy(), []
    for _ in range(600):
        x = x @ model.A.T + np.clip(stack.forward(x), -lim, lim) @ model.B.T
        V.append(np.einsum("bi,ij,bj->b", x, Pm, x))
    V = np.array(V)
    assert V.max() <= 1 + 1e-9 and np.abs(x).max() < 1e-3
    # nonlinear twin (the deployed plant, a sample, not a certificate)
    traj = simulate(plant, net, x0, 600)
    assert np.abs(traj[:, -1]).max() < 1e-3


def test_downward_search_and_a_failure_message_that_lists_every_attempt():
    model = _model(2, 1.0)

    def run(d, r):
        return {"dv": d, "vol": d} if d <= 0.02 else "SDP infeasible"

    best, failures, log = _search(run, model, None, None, lambda r: r["vol"])
    assert [d for d, *_ in log[:4]] == [0.1, 0.3, 0.9, 2.7]
    assert [round(d, 6) for d, *_ in log[4:7]] == [0.05, 0.025, 0.0125]
    # then bisection between 0.0125 (certified) and 0.025 (not): √(0.0125·0.025), …
    assert log[7][0] == pytest.approx(0.0125 * 2**0.5) and len(log) == 9
    assert log[8][0] == pytest.approx(0.0125 * 2**0.75) and log[8][2] is None
    assert best["dv"] == pytest.approx(0.0125 * 2**0.5)

    best, failures, log = _search(lambda d, r: "SDP infeasible", model, None, None, None)
    assert best is None and min(d for d, *_ in log) >= 1e-4 * 0.999
    assert min(d for d, *_ in log) < 2e-4 and len(failures) == len(log) > 12
    msg = _failure_reason("no Lyapunov certificate found", failures, True)
    assert f"in {len(log)} attempt(s)" in msg and "2.7" in msg and "0.000195" in msg
    assert "What to do" in msg
    msg = _failure_reason("no Lyapunov certificate found", failures[:1], False)
    assert "smaller dv" in msg


def test_growth_certifies_a_larger_region_on_a_parallelotope_and_rechecks():
    import dataclasses

    from certnet.errors import CertificateError
    from certnet.verify.certificate import Certificate

    plant = P.Pendulum()
    net = _lqr_net(P.linearize(plant))
    fixed = closed_loop(plant, net, method="sector", dv=0.05, grow=False)
    grown = closed_loop(plant, net, method="sector", dv=0.05)
    assert fixed.certified and grown.certified
    assert grown.data["roa_volume"] > 1.5 * fixed.data["roa_volume"]
    frame = grown.array("box")
    assert frame.shape == (2, 2)  # the parallelotope |M δx| ≤ 1 around the previous ellipsoid
    back = Certificate.from_json(grown.to_json())
    assert back.check() == pytest.approx(grown.check(net), rel=1e-12)
    # a parallelotope that no longer holds the ellipsoid is refused
    t = dataclasses.replace(grown, data={**grown.data, "box": (frame * 1.5).tolist()})
    with pytest.raises(CertificateError, match="containment"):
        t.check(net)


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_parallelotope_bounds_contain_every_sampled_deviation(act):
    arrays, f = _arrays(act, seed=7)
    model = _model(2, 0.5)
    w1, dv = arrays["weights"][0], 0.2
    rot = np.array([[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
    M = np.diag([1 / 0.05, 1 / 0.3]) @ rot.T  # |M δx| ≤ 1: a thin rotated parallelogram
    rng = np.random.default_rng(2)
    eps = rng.uniform(-1, 1, (40000, 2))
    eps[:5000] = np.sign(eps[:5000])  # its corners
    x = np.linalg.solve(M, eps.T).T
    scale = np.maximum(np.abs(x @ w1.T).max(axis=1, keepdims=True) / dv, 1.0)
    x = np.vstack([x[scale[:, 0] == 1], x / scale])  # inside |W₁δx| ≤ Δv, or pulled onto it
    assert np.all(np.abs(x @ M.T) <= 1 + 1e-12)
    tight = _propagate(model, arrays, dv, M)
    box = _propagate(model, arrays, dv, np.abs(np.linalg.inv(M)).sum(axis=1))
    for (lo, hi), (blo, bhi), dev in zip(tight, box, _layers(arrays, f, x), strict=True):
        assert np.all(dev >= lo[None] - 1e-12) and np.all(dev <= hi[None] + 1e-12)
    # hugging the rotated region beats its axis-aligned bounding box at the output
    assert (tight[-1][1] - tight[-1][0]).max() < (box[-1][1] - box[-1][0]).max()
