"""The optimiser registry shared by fit, the trainers and the command line."""

import pytest
import torch
from torch import nn

import certnet as cn
from certnet.nn import FrobeniusLinear, NormalizedMLP
from certnet.optim import OPTIMIZERS, build_optimizer, check_optimizer

LR = {"mm": None, "smm": None, "autonewton": None, "rsgd": 0.05, "adam": 0.01}


def test_one_vocabulary():
    assert list(OPTIMIZERS) == ["mm", "smm", "autonewton", "rsgd", "adam"]
    assert cn.train.OPTIMIZERS is OPTIMIZERS
    assert [n for n, s in OPTIMIZERS.items() if s.learning_rate] == ["rsgd", "adam"]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimiser_has_the_registry_interface(problem, name):
    X, Y, make, closure_for = problem
    net = make(radii=2.0)
    opt = build_optimizer(name, net, lr=LR[name])
    assert isinstance(opt, torch.optim.Optimizer) and opt.last_step == {}
    closure = closure_for(net)
    first = float(closure().detach())
    for _ in range(5):
        opt.restart()
        opt.step(closure)
    assert float(closure().detach()) < first
    assert set(opt.last_step) >= {"eta", "angles", "evaluations"}
    assert len(opt.last_step["angles"]) == 3 and opt.steps_done == 5
    assert cn.geometry.radii_residual([lin.point for lin in net.linears], net.radii) < 1e-12


@pytest.mark.parametrize(
    ("name", "lr", "exc", "match"),
    [
        (
            "sgd",
            None,
            ValueError,
            r"optimizer must be one of 'mm', 'smm', 'autonewton', 'rsgd', 'adam'",
        ),
        (None, None, ValueError, "optimizer must be one of"),
        ("mm", 1e-3, ValueError, "'mm' chooses its own step size .* remove lr"),
        ("autonewton", 0.1, ValueError, "'autonewton' chooses its own step size"),
        ("rsgd", None, ValueError, r"'rsgd' needs a learning rate: pass lr, e.g. lr=0.1"),
        ("adam", None, ValueError, r"'adam' needs a learning rate: pass lr, e.g. lr=0.001"),
        ("adam", -1.0, ValueError, "lr must be a positive finite number, got -1.0"),
        ("rsgd", float("inf"), ValueError, "lr must be a positive finite number"),
        ("adam", "0.1", TypeError, "lr must be a number, got '0.1'"),
    ],
)
def test_bad_names_and_learning_rates(name, lr, exc, match):
    with pytest.raises(exc, match=match):
        check_optimizer(name, lr)
    with pytest.raises(exc, match=match):
        build_optimizer(name, NormalizedMLP([2, 4, 1]), lr=lr)


@pytest.mark.parametrize("name", ["mm", "smm", "autonewton", "rsgd"])
def test_sphere_optimisers_refuse_a_plain_network(name):
    plain = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    with pytest.raises(TypeError, match=f"'{name}' needs a network of FrobeniusLinear layers"):
        build_optimizer(name, plain, lr=LR[name])


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_parameter_off_every_sphere_is_refused(name):
    net = nn.Sequential(FrobeniusLinear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    with pytest.raises(TypeError, match=r"parameter '2.weight' .* is not on a Frobenius sphere"):
        build_optimizer(name, net, lr=LR[name])


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_not_a_module(name):
    with pytest.raises(TypeError, match="built from the network, not from a parameter list"):
        build_optimizer(name, [torch.zeros(2, requires_grad=True)], lr=LR[name])


def test_adam_is_torch_adam_with_the_points_rescaled_onto_their_spheres(problem):
    X, Y, make, closure_for = problem
    a, b = make(radii=2.0), make(radii=2.0)
    ours = build_optimizer("adam", a, lr=0.01)
    theirs = torch.optim.Adam(b.parameters(), lr=0.01)
    for _ in range(5):
        ours.step(closure_for(a))
        theirs.zero_grad()
        closure_for(b)().backward()
        theirs.step()
        with torch.no_grad():
            for lin in b.linears:
                lin.point.mul_(lin.radius / torch.linalg.vector_norm(lin.point))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert cn.geometry.radii_residual([lin.point for lin in a.linears], a.radii) < 1e-14


def test_adam_without_closure_and_on_a_plain_network():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    X, Y = torch.randn(32, 2), torch.randn(32, 1)
    opt = build_optimizer("adam", plain, lr=0.01)
    first = float(((plain(X) - Y) ** 2).mean().detach())
    for _ in range(10):
        opt.zero_grad()
        ((plain(X) - Y) ** 2).mean().backward()
        assert opt.step() is None
    assert float(((plain(X) - Y) ** 2).mean().detach()) < first
    assert opt.last_step["angles"] == [] and opt.last_step["evaluations"] == 0


def test_adam_refuses_a_nan_loss_and_keeps_the_weights(problem):
    X, Y, make, closure_for = problem
    net = make()
    opt = build_optimizer("adam", net, lr=0.01)
    good = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(FloatingPointError, match="returned nan .* at step 0.*last good weights"):
        opt.step(lambda: closure_for(net)() * float("nan"))
    with pytest.raises(FloatingPointError, match="gradient is not finite at step 0"):
        opt.step(lambda: (net(X) * 0).sum().sqrt())
    assert all(torch.equal(a, b) for a, b in zip(good, net.parameters(), strict=True))


@pytest.mark.parametrize("name", ["rsgd", "adam"])
def test_learning_rate_schedulers_schedule_rsgd_and_adam(problem, name):
    X, Y, make, closure_for = problem
    net = make()
    opt = build_optimizer(name, net, lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    etas = []
    for _ in range(4):
        opt.step(closure_for(net))
        etas.append(opt.last_step["eta"])
        sched.step()
    assert etas == [0.1, 0.1, 0.05, 0.05]
