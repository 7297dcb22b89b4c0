import pytest
import torch

from certnet.optim import RiemannianSGD


@pytest.mark.parametrize("lr", [0.0, -1.0, float("inf"), "0.1"])
def test_rejects_bad_lr(problem, lr):
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        RiemannianSGD(problem[2](), lr)


def test_backward_style_equals_closure_style(problem):
    X, Y, make, closure_for = problem
    a, b = make(), make()
    opt_a, opt_b = RiemannianSGD(a, 0.1), RiemannianSGD(b, 0.1)
    for _ in range(3):
        opt_a.step(closure_for(a))
        opt_b.zero_grad()
        closure_for(b)().backward()
        assert opt_b.step() is None
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-13, atol=1e-13)


def test_turn_angle_is_lr_times_gradient_norm(problem):
    X, Y, make, closure_for = problem
    net = make(radii=2.0)
    opt = RiemannianSGD(net, 0.01)
    closure = closure_for(net)
    closure().backward()
    grads = [lin.point.grad.norm() for lin in net.linears]
    opt.step()
    angles = opt.state[net.linears[0].point]["last"]["angles"]
    for g, a in zip(grads, angles, strict=True):
        assert a == pytest.approx(0.01 * float(g) / 2.0, rel=1e-10)


def test_backward_style_needs_gradients(problem):
    with pytest.raises(ValueError, match="call loss.backward"):
        RiemannianSGD(problem[2](), 0.1).step()


def test_backward_style_nan_gradient(problem):
    X, Y, make, closure_for = problem
    net = make()
    opt = RiemannianSGD(net, 0.1)
    (closure_for(net)() * float("nan")).backward()
    with pytest.raises(FloatingPointError, match="gradient is not finite"):
        opt.step()


def test_overflowing_step_is_refused_and_weights_restored(problem):
    X, Y, make, closure_for = problem
    net = make()
    opt = RiemannianSGD(net, 1e308)
    good = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(FloatingPointError, match="overflowed .* Lower the learning rate"):
        opt.step(closure_for(net))
    for a, b in zip(good, net.parameters(), strict=True):  # equal up to the renormalisation
        torch.testing.assert_close(a, b, rtol=1e-15, atol=1e-15)
