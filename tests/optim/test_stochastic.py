"""StochasticMM: overlapping batches for the curvature pairs, noise-discounted majoriser."""

import torch

from certnet.geometry import proju, radii_residual
from certnet.optim import MM, StochasticMM


def _batches(X, Y, net, size):
    return [
        (lambda xb=xb, yb=yb: ((net(xb) - yb) ** 2).mean())
        for xb, yb in zip(X.split(size), Y.split(size), strict=True)
    ]


def _angle_gradient(net, closure):
    """ĝ of ``closure`` at the current weights (points then biases, scaled by the radius)."""
    params = [lin.point for lin in net.linears] + [lin.bias for lin in net.linears]
    grads = torch.autograd.grad(closure(), params)
    depth = len(net.linears)
    out = [
        lin.radius * proju(lin.point.detach(), g, lin.radius)
        for lin, g in zip(net.linears, grads[:depth], strict=True)
    ]
    return out + [lin.radius * g for lin, g in zip(net.linears, grads[depth:], strict=True)]


def test_a_stream_of_batches_lowers_the_full_loss_and_keeps_the_bound(problem):
    X, Y, make, closure_for = problem
    net = make(radii=2.0)
    opt = StochasticMM(net)
    full = closure_for(net)
    before = float(full().detach())
    for _ in range(20):
        for closure in _batches(X, Y, net, 64):
            opt.step(closure)
    assert float(full().detach()) < 0.1 * before
    last = opt.last_step
    assert last["batches"] == 2 and last["pairs"] > 0
    assert last["evaluations"] >= 4 and last["evaluations"] % 2 == 0
    assert radii_residual([lin.point for lin in net.linears], net.radii) < 1e-12


def test_the_pair_is_formed_on_the_batch_two_steps_share(problem):
    X, Y, make, _ = problem
    net = make()
    a, b = _batches(X, Y, net, 64)
    opt = StochasticMM(net)
    g0 = _angle_gradient(net, a)  # batch A at w_0
    opt.step(a)
    assert opt.last_step["batches"] == 1 and opt.state[net.linears[0].point]["memory"]["s"] == []
    g1 = _angle_gradient(net, a)  # batch A at w_1
    units = [lin.point.detach() / lin.radius for lin in net.linears]
    opt.step(b)
    memory = opt.state[net.linears[0].point]["memory"]
    assert len(memory["y"]) == 1
    # y = ĝ_A(w_1) − 𝒯ĝ_A(w_0), formed (and stored, flat) in the tangent spaces at w_1
    depth = len(units)
    old = [proju(units[k], g0[k], 1.0) if k < depth else g0[k] for k in range(len(g0))]
    want = torch.cat([(a - b).reshape(-1) for a, b in zip(g1, old, strict=True)])
    torch.testing.assert_close(memory["y"][0], want, rtol=1e-6, atol=1e-9)


def test_the_same_closure_again_is_an_mm_step(problem):
    X, Y, make, closure_for = problem
    a, b = make(radii=2.0), make(radii=2.0)
    ours, theirs = StochasticMM(a), MM(b)
    ca, cb = closure_for(a), closure_for(b)
    for _ in range(6):
        ours.step(ca)
        theirs.step(cb)
    assert ours.last_step["batches"] == 1
    assert ours.last_step["pairs"] > 0
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_restart_forgets_the_previous_batch_and_the_memory(problem):
    X, Y, make, _ = problem
    net = make()
    opt = StochasticMM(net)
    for closure in _batches(X, Y, net, 32)[:3]:
        opt.step(closure)
    opt.restart()
    opt.step(_batches(X, Y, net, 32)[3])
    assert opt.last_step["batches"] == 1 and opt.last_step["pairs"] == 0


def test_load_state_dict_and_prime_resume_exactly(problem):
    X, Y, make, _ = problem
    a, b = make(radii=2.0), make(radii=2.0)
    ca, cb = _batches(X, Y, a, 16), _batches(X, Y, b, 16)
    ours = StochasticMM(a)
    for closure in ca:
        ours.step(closure)
    half = StochasticMM(b)
    for closure in cb[:4]:
        half.step(closure)
    resumed = StochasticMM(b)
    resumed.load_state_dict(half.state_dict())
    resumed.prime(cb[3])
    for closure in cb[4:]:
        resumed.step(closure)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
