"""Both closure conventions: certnet's (return the loss) and PyTorch's (zero_grad, backward)."""

import pytest
import torch

from certnet.optim import MM, AutoNewton, RiemannianSGD, build_optimizer

OPTIMISERS = {
    "mm": MM,
    "autonewton": AutoNewton,
    "rsgd": lambda net: RiemannianSGD(net, 0.05),
    "adam": lambda net: build_optimizer("adam", net, lr=0.01),
}


def _torch_closure(opt, net, X, Y):
    """What torch.optim.LBFGS expects."""

    def closure():
        opt.zero_grad()
        loss = ((net(X) - Y) ** 2).mean()
        loss.backward()
        return loss

    return closure


def _accumulating_closure(opt, net, X, Y):
    """PyTorch's convention over two chunks: the gradient is accumulated in .grad and the
    returned total is detached (the chunks' mean losses, averaged)."""

    def closure():
        opt.zero_grad()
        total = 0.0
        for xb, yb in zip(X.chunk(2), Y.chunk(2), strict=True):
            loss = ((net(xb) - yb) ** 2).mean() / 2
            loss.backward()
            total += loss.detach()
        return total

    return closure


def _autograd_backward_closure(opt, net, X, Y):
    def closure():
        opt.zero_grad()
        loss = ((net(X) - Y) ** 2).mean()
        torch.autograd.backward([loss])
        return loss

    return closure


@pytest.mark.parametrize("name", list(OPTIMISERS))
@pytest.mark.parametrize(
    "convention", [_torch_closure, _accumulating_closure, _autograd_backward_closure]
)
def test_torch_closure_takes_the_same_steps(problem, name, convention):
    """The standard PyTorch closure (it used to raise "Trying to backward through the graph a
    second time") gives the steps of the certnet closure, to round-off."""
    X, Y, make, closure_for = problem
    a, b = make(radii=2.0), make(radii=2.0)
    opt_a, opt_b = OPTIMISERS[name](a), OPTIMISERS[name](b)
    closure_b = convention(opt_b, b, X, Y)
    for _ in range(8):
        la, lb = opt_a.step(closure_for(a)), opt_b.step(closure_b)
        torch.testing.assert_close(la, lb, rtol=1e-12, atol=1e-15)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    assert opt_a.last_step["evaluations"] == opt_b.last_step["evaluations"]


@pytest.mark.parametrize("name", ["mm", "autonewton", "rsgd"])
def test_torch_closure_is_bit_identical_on_the_sphere_optimisers(problem, name):
    X, Y, make, closure_for = problem
    a, b = make(), make()
    opt_a, opt_b = OPTIMISERS[name](a), OPTIMISERS[name](b)
    closure_b = _torch_closure(opt_b, b, X, Y)
    for _ in range(8):
        assert torch.equal(opt_a.step(closure_for(a)), opt_b.step(closure_b))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_trial_evaluations_skip_backward(problem):
    """MM's trials run under no_grad; a closure's backward() there is skipped, not raised."""
    X, Y, make, _ = problem
    net = make(radii=4.0)
    opt = MM(net)
    calls = []

    def closure():
        opt.zero_grad()
        loss = ((net(X) - Y) ** 2).mean()
        calls.append(torch.is_grad_enabled())
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    assert calls.count(True) == 3 and calls.count(False) >= 3


@pytest.mark.parametrize("name", ["mm", "autonewton", "rsgd"])
def test_certnet_closure_leaves_grad_untouched(problem, name):
    X, Y, make, closure_for = problem
    net = make()
    opt = OPTIMISERS[name](net)
    marker = [torch.full_like(p, 7.0) for p in net.parameters()]
    for p, m in zip(net.parameters(), marker, strict=True):
        p.grad = m
    opt.step(closure_for(net))
    assert all(p.grad is m for p, m in zip(net.parameters(), marker, strict=True))


@pytest.mark.parametrize("name", list(OPTIMISERS))
def test_non_scalar_closure_names_the_fix(problem, name):
    X, Y, make, _ = problem
    net = make()
    before = [p.detach().clone() for p in net.parameters()]
    net.linears[0].bias.grad = marker = torch.ones_like(net.linears[0].bias)
    with pytest.raises(TypeError, match=r"scalar tensor, got Tensor of shape \(128, 1\); reduce"):
        OPTIMISERS[name](net).step(lambda: (net(X) - Y) ** 2)
    with pytest.raises(TypeError, match="scalar tensor, got float"):
        OPTIMISERS[name](net).step(lambda: 1.0)
    assert net.linears[0].bias.grad is marker
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
