import pytest
import torch
from torch import nn

from certnet.geometry import radii_residual
from certnet.nn import FrobeniusLinear, NormalizedMLP
from certnet.optim import MM, AutoNewton, RiemannianSGD, find_layers

OPTIMISERS = [MM, AutoNewton, lambda net: RiemannianSGD(net, 0.05)]


def test_rejects_free_parameters():
    net = nn.Sequential(FrobeniusLinear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    with pytest.raises(TypeError, match="is not on a Frobenius sphere"):
        MM(net)


def test_frozen_free_parameter_is_allowed():
    net = nn.Sequential(FrobeniusLinear(2, 3), nn.Tanh(), nn.Linear(3, 1).requires_grad_(False))
    assert len(find_layers(net)) == 1


def test_rejects_non_module_and_plain_net():
    with pytest.raises(TypeError, match="built from the network"):
        MM([torch.zeros(2, requires_grad=True)])
    with pytest.raises(TypeError, match="has no FrobeniusLinear"):
        MM(nn.Sequential(nn.Tanh()))


def test_rejects_ball_mode():
    with pytest.raises(ValueError, match="mode='sphere'"):
        AutoNewton(NormalizedMLP([2, 4, 1], mode="ball"))


@pytest.mark.parametrize("make_opt", OPTIMISERS)
def test_nan_closure_stops_with_step_and_keeps_weights(problem, make_opt):
    X, Y, make, closure_for = problem
    net = make()
    opt = make_opt(net)
    closure = closure_for(net)
    for _ in range(3):
        opt.step(closure)
    good = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(FloatingPointError, match="returned nan .* at step 3.*last good weights"):
        opt.step(lambda: closure() * float("nan"))
    with pytest.raises(FloatingPointError, match="returned inf"):
        opt.step(lambda: closure() + float("inf"))
    assert all(torch.equal(a, b) for a, b in zip(good, net.parameters(), strict=True))


@pytest.mark.parametrize("make_opt", OPTIMISERS)
def test_bad_closures(problem, make_opt):
    X, Y, make, closure_for = problem
    net = make()
    opt = make_opt(net)
    with pytest.raises(TypeError, match="scalar tensor"):
        opt.step(lambda: net(X))
    with pytest.raises(ValueError, match="does not depend on the network"):
        opt.step(lambda: torch.tensor(1.0))


@pytest.mark.parametrize("make_opt", [MM, AutoNewton])
def test_closure_required(problem, make_opt):
    with pytest.raises(TypeError, match="needs a closure"):
        make_opt(problem[2]()).step(None)


def test_nan_gradient_is_refused(problem):
    X, Y, make, _ = problem
    net = make()
    opt = MM(net)
    # sqrt'(0) = inf: a finite loss with an infinite gradient
    with pytest.raises(FloatingPointError, match="gradient is not finite"):
        opt.step(lambda: (net(X) * 0).sum().sqrt())


@pytest.mark.parametrize("make_opt", OPTIMISERS)
def test_state_dict_resume_is_bit_identical(problem, make_opt):
    X, Y, make, closure_for = problem
    a = make()
    opt_a = make_opt(a)
    for _ in range(5):
        opt_a.step(closure_for(a))
    b = make(seed=1)
    b.load_state_dict(a.state_dict())
    opt_b = make_opt(b)
    opt_b.load_state_dict(opt_a.state_dict())
    for _ in range(5):
        opt_a.step(closure_for(a))
        opt_b.step(closure_for(b))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert _same(opt_a.state_dict()["state"], opt_b.state_dict()["state"])


def _same(a, b) -> bool:
    """Bit-identical nested optimiser state (dicts, lists, tuples, tensors, numbers)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


def _long_run(make_opt, steps):
    torch.manual_seed(0)
    net = NormalizedMLP([2, 8, 1], radii=[3.0, 0.5], seed=0)
    X = torch.randn(16, 2)
    Y = X[:, :1] * X[:, 1:]
    opt = make_opt(net)
    for _ in range(steps):
        opt.step(lambda: ((net(X) - Y) ** 2).mean())
    assert radii_residual([lin.point for lin in net.linears], net.radii) < 1e-6
    for lin in net.linears:
        assert abs(float(lin.weight.norm()) / lin.radius - 1) < 1e-6
    assert net.lipschitz_bound() == pytest.approx(1.5, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("make_opt", OPTIMISERS)
def test_sphere_constraint_10k_steps_float32(make_opt):
    _long_run(make_opt, 10_000)


@pytest.mark.parametrize("make_opt", OPTIMISERS)
def test_sphere_constraint_500_steps_float32(make_opt):
    _long_run(make_opt, 500)


def test_frozen_layers_are_skipped(problem):
    X, Y, make, closure_for = problem
    net = make()
    net.linears[0].requires_grad_(False)
    frozen = net.linears[0].point.detach().clone()
    MM(net).step(closure_for(net))
    assert torch.equal(net.linears[0].point.detach(), frozen)
    net.linears[0].bias.requires_grad_(True)
    with pytest.raises(ValueError, match="frozen weight but a trainable bias"):
        MM(net)
    net.requires_grad_(False)
    with pytest.raises(ValueError, match="every layer is frozen"):
        MM(net)


@pytest.mark.parametrize("make_opt", [MM, AutoNewton])
@pytest.mark.parametrize(
    "scheduler",
    [
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10),
        lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt),
    ],
)
def test_lr_scheduler_is_refused_with_the_reason(problem, make_opt, scheduler):
    """No learning rate, nothing to schedule: a clear TypeError, not KeyError: 'lr' (also
    after load_state_dict, which rebuilds the parameter groups)."""
    X, Y, make, closure_for = problem
    net = make()
    opt = make_opt(net)
    name = type(opt).__name__
    match = rf"{name} has no learning rate: .* Drop the scheduler; .*RiemannianSGD\(net, lr\)"
    with pytest.raises(TypeError, match=match):
        scheduler(opt)
    opt.step(closure_for(net))
    again = make_opt(make())
    again.load_state_dict(opt.state_dict())
    with pytest.raises(TypeError, match=match):
        scheduler(again)
    with pytest.raises(KeyError, match="momentum"):
        opt.param_groups[0]["momentum"]
