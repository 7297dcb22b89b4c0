import math

import pytest
import torch

from certnet.optim import AutoNewton, curve_derivatives
from certnet.optim.autonewton import ARMIJO


def _phi(opt, closure, saved, dw, db, eta):
    opt._move(saved, dw, db, eta)
    with torch.no_grad():
        return float(closure())


@pytest.mark.parametrize("radius", [0.7, 1.0, 3.0])
@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_derivatives_match_finite_differences(problem, radius, activation):
    X, Y, make, closure_for = problem
    net = make(radii=radius, activation=activation)
    with torch.no_grad():  # non-zero biases so that their curve terms count
        for lin in net.linears:
            lin.bias.normal_(generator=torch.Generator().manual_seed(1))
    opt = AutoNewton(net)
    closure = closure_for(net)
    phi0, d1, d2, dw, db = curve_derivatives(opt, closure)
    saved = opt._save()
    h = 1e-4
    fp, fm = (_phi(opt, closure, saved, dw, db, s * h) for s in (1, -1))
    assert d1 == pytest.approx((fp - fm) / (2 * h), rel=1e-5)
    assert d2 == pytest.approx((fp - 2 * phi0 + fm) / h**2, rel=1e-5)


def test_negative_curvature_falls_back_to_mm(problem):
    """Concave loss along every curve: φ''(0) < 0, the MM step is used and still descends."""
    X, Y, make, _ = problem
    net = make()
    opt = AutoNewton(net)
    closure = lambda: -(net(X) ** 2).mean()  # noqa: E731
    before = float(closure().detach())
    opt.step(closure)
    last = opt.state[net.linears[0].point]["last"]
    assert last["curvature"] < 0 and last["source"] == "mm"
    after = float(closure().detach())
    assert last["eta"] > 0 and after <= before - ARMIJO * last["eta"] * last["G"]


def test_accepted_newton_step_is_g_over_curvature(problem):
    X, Y, make, closure_for = problem
    net = make(radii=2.0)
    opt = AutoNewton(net)
    sources = set()
    for _ in range(10):
        opt.step(closure_for(net))
        last = opt.state[net.linears[0].point]["last"]
        sources.add(last["source"])
        if last["source"] == "newton" and last["evaluations"] == 2:
            assert last["eta"] == pytest.approx(last["G"] / last["curvature"], rel=1e-15)
    assert "newton" in sources


def test_angle_cap_and_backtracking(problem):
    X, Y, make, closure_for = problem
    net = make()
    opt = AutoNewton(net)
    closure = closure_for(net)
    losses = [float(opt.step(closure)) for _ in range(20)]
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))
    for _ in range(5):
        opt.step(closure)
        last = opt.state[net.linears[0].point]["last"]
        assert max(last["angles"]) <= math.pi / 2


def test_affine_loss_has_zero_curvature(problem):
    X, Y, make, _ = problem
    net = make(widths=(3, 1))
    opt = AutoNewton(net)
    _, d1, d2, _, _ = curve_derivatives(opt, lambda: net.linears[0].bias.sum())
    assert d1 == pytest.approx(-1.0, rel=1e-12) and d2 == 0.0
