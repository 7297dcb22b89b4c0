import math

import numpy as np
import pytest
import torch

from certnet.geometry import radii_residual
from certnet.nn import NormalizedMLP
from certnet.optim import MM, majoriser, mm_step_size


@pytest.mark.parametrize("g", [0.0, 1e-6, 0.1, 0.5, 1.0, 1.9, 40.0])
@pytest.mark.parametrize("kappa", [0.25, 1.0, 8.0])
def test_eta_is_grid_minimiser_of_majoriser(g, kappa):
    grid = np.linspace(0.0, 4.0, 400_001)
    m = -grid * g + 0.5 * kappa * np.expm1(grid) ** 2
    assert mm_step_size(g, kappa) == pytest.approx(grid[np.argmin(m)], abs=2e-5)
    eta = mm_step_size(g, kappa)
    assert majoriser(eta, 0.0, g, kappa) <= m.min() + 1e-12


def test_agd_hand_example():
    assert mm_step_size(0.5) == pytest.approx(math.log((1 + math.sqrt(3)) / 2), rel=1e-15)


@pytest.mark.parametrize(
    ("g", "kappa", "match"), [(-1.0, 1.0, "G must"), (1.0, 0.0, "kappa must"), (math.nan, 1, "G")]
)
def test_step_size_rejects_bad_input(g, kappa, match):
    with pytest.raises(ValueError, match=match):
        mm_step_size(g, kappa)


@pytest.mark.parametrize("radius", [1.0, 2.0, 4.0, 8.0])
@pytest.mark.parametrize("depth", [2, 3, 5])
def test_monotone_decrease_full_batch(problem, radius, depth):
    X, Y, make, closure_for = problem
    net = make(radii=radius, widths=[3] + [16] * (depth - 1) + [1])
    opt = MM(net)
    closure = closure_for(net)
    losses = [float(opt.step(closure)) for _ in range(40)]
    losses.append(float(closure()))
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < losses[0]
    assert radii_residual([lin.point for lin in net.linears], net.radii) < 1e-12


def test_step_returns_loss_before_step(problem):
    X, Y, make, closure_for = problem
    net = make()
    closure = closure_for(net)
    before = float(closure())
    assert float(MM(net).step(closure)) == before


def test_zero_gradient_is_a_zero_step(problem):
    X, Y, make, _ = problem
    net = make()
    opt = MM(net)
    w = [p.detach().clone() for p in net.parameters()]
    opt.step(lambda: sum((p * 0).sum() for p in net.parameters()) + net(X).sum() * 0)
    assert opt.state[net.linears[0].point]["last"]["eta"] == 0.0
    for a, b in zip(w, net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-15, atol=1e-15)


def test_no_decrease_possible_keeps_weights(problem):
    """A closure whose value jumps up at any move: every trial is refused, weights unchanged."""
    X, Y, make, _ = problem
    net = make()
    opt = MM(net)
    seen = []

    def closure():  # the first call sees the weights the step starts from
        if not seen:
            seen.append(net.linears[0].point.detach().clone())
        moved = (net.linears[0].point - seen[0]).abs().sum()
        return net(X).pow(2).mean() + torch.where(moved > 0, 1e3, 0.0)

    opt.step(closure)
    last = opt.state[net.linears[0].point]["last"]
    assert last["eta"] == 0.0 and 2 < last["evaluations"] <= 61
    assert torch.equal(net.linears[0].point.detach(), seen[0])


def _float32(problem):
    X, Y, make, _ = problem
    net = NormalizedMLP([3, 16, 16, 1], radii=2.0, seed=0)
    return X.float(), Y.float(), net


def test_a_loss_far_below_one_trains_as_fast_as_at_scale_one(problem):
    """Note [resolution] (1): κ starts at 1, far too large for a loss of 1e-9; the first step
    is raised to a resolvable size instead of shrinking κ̂-driven steps to nothing."""
    relative = []
    for scale in (1.0, 1e-9):
        X, Y, net = _float32(problem)
        opt = MM(net)
        closure = lambda: scale * ((net(X) - Y) ** 2).mean()  # noqa: E731
        first = float(opt.step(closure))
        for _ in range(30):
            last = float(opt.step(closure))
        relative.append(last / first)
    assert relative[1] < 0.5 and relative[1] < 2 * relative[0]


def test_an_unresolved_trial_is_judged_by_its_slope(problem):
    """Note [resolution] (2): on top of 1e4 the loss changes are below float32 rounding; the
    trapezoid estimate from the slope at the trial still sees them."""
    X, Y, net = _float32(problem)
    opt = MM(net)
    mse = lambda: ((net(X) - Y) ** 2).mean()  # noqa: E731
    first = float(mse().detach())
    for _ in range(20):
        opt.step(lambda: 1e4 + mse())
    assert float(mse().detach()) < 0.8 * first
    assert opt.last_step["evaluations"] >= 3 and not opt.last_step["resolved"]
