import math

import pytest
import torch

from certnet.nn import NormalizedMLP
from certnet.optim import fit


@pytest.mark.parametrize("optimizer", ["mm", "autonewton"])
def test_fit_full_batch_decreases_and_keeps_bound(problem, optimizer):
    X, Y, make, _ = problem
    net = make(radii=2.0)
    hist = fit(net, X, Y, optimizer=optimizer, epochs=30, progress=False)
    assert hist.epoch_loss[-1] < 0.9 * hist.epoch_loss[0]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(hist.loss, hist.loss[1:], strict=False))
    assert len(hist.angles) == 30 and len(hist.angles[0]) == 3
    assert len(set(hist.bound)) == 1 and hist.bound[0] == net.lipschitz_bound()
    assert hist.normalization is not None and hist.wall_time_s > 0


def test_fit_minibatch_and_budget_kept(problem):
    X, Y, make, _ = problem
    net = NormalizedMLP([3, 16, 1], lipschitz=5.0, dtype=torch.float64, seed=0)
    hist = fit(net, X.numpy(), Y.numpy(), epochs=3, batch_size=32, progress=True)
    assert len(hist.loss) == 12 and len(hist.epoch_loss) == 3
    assert net.lipschitz_bound() <= 5.0
    assert net.lipschitz_bound() == pytest.approx(5.0, rel=1e-12)


@pytest.mark.parametrize("optimizer", ["rsgd", "adam"])
def test_fit_with_a_learning_rate(problem, optimizer):
    X, Y, make, _ = problem
    with pytest.raises(ValueError, match=f"'{optimizer}' needs a learning rate"):
        fit(make(), X, Y, optimizer=optimizer, progress=False)
    net = make(radii=2.0)
    hist = fit(net, X, Y, optimizer=optimizer, lr=0.05, epochs=5, batch_size=64, progress=False)
    assert hist.step_size == [0.05] * 10 and len(hist.angles[0]) == 3
    assert hist.epoch_loss[-1] < hist.epoch_loss[0]
    assert len(set(hist.bound)) == 1 and hist.bound[0] == net.lipschitz_bound()


@pytest.mark.parametrize("optimizer", ["mm", "autonewton"])
def test_fit_refuses_a_learning_rate_where_none_exists(problem, optimizer):
    X, Y, make, _ = problem
    with pytest.raises(ValueError, match="chooses its own step size and has no learning rate"):
        fit(make(), X, Y, optimizer=optimizer, lr=0.1, progress=False)


def test_fit_without_normalisation_keeps_scalings(problem):
    X, Y, make, _ = problem
    net = make(output_scale=2.0)
    hist = fit(net, X, Y, epochs=2, normalize=False, progress=False)
    assert hist.normalization is None
    assert float(net.output_scale[0]) == 2.0
    with pytest.raises(ValueError, match="maps 3 inputs to 1 outputs"):
        fit(net, X[:, :2], Y, normalize=False, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"loss": "l1"}, ValueError, "loss must be one of"),
        ({"optimizer": "sgd"}, ValueError, "optimizer must be one of 'mm', 'autonewton'"),
        ({"epochs": 0}, ValueError, "epochs must be"),
        ({"batch_size": 0}, ValueError, "batch_size must be"),
    ],
)
def test_fit_bad_arguments(problem, kwargs, exc, match):
    X, Y, make, _ = problem
    with pytest.raises(exc, match=match):
        fit(make(), X, Y, progress=False, **kwargs)


def test_fit_needs_normalized_mlp(problem):
    X, Y, _, _ = problem
    with pytest.raises(TypeError, match="needs a certnet.nn.NormalizedMLP"):
        fit(torch.nn.Linear(3, 1), X, Y)


def test_fit_nan_stops_naming_epoch_and_keeps_weights(problem):
    X, Y, make, _ = problem
    net = make()
    Y = Y.clone()
    calls = {"n": 0}
    orig_forward = net.forward

    def forward(x):  # the network's output turns NaN from the 4th evaluation on
        calls["n"] += 1
        out = orig_forward(x)
        return out * math.nan if calls["n"] > 3 else out

    net.forward = forward
    with pytest.raises(FloatingPointError, match=r"epoch \d+, optimiser step \d+.*last good"):
        fit(net, X, Y, epochs=5, progress=False)
    assert all(torch.isfinite(p).all() for p in net.parameters())
