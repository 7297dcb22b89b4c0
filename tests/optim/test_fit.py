import math

import numpy as np
import pytest
import torch

from certnet.nn import NormalizedMLP
from certnet.optim import StochasticMM, fit
from certnet.optim.progress import StallWarning


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
        ({"optimizer": "sgd"}, ValueError, "optimizer must be one of 'mm', 'smm', 'autonewton'"),
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


def _saturated_lqr(n, seed):
    """u = 2 tanh(−K x / 2) of the benchmark's 4-state dLQR expert (‖K‖₂ = 1.63)."""
    import control

    dt = 0.05
    A = np.eye(4) + dt * np.array(
        [[0, 1, 0, 0], [-2.0, -0.3, 1.0, 0], [0, 0, 0, 1], [1.0, 0, -3.0, -0.2]]
    )
    B = dt * np.array([[0.0], [1.0], [0.0], [0.5]])
    K, _, _ = control.dlqr(A, B, np.eye(4), np.eye(1))
    X = np.random.default_rng(seed).normal(size=(n, 4)) * np.array([1.0, 2.0, 1.0, 2.0])
    Y = 2 * np.tanh(-X @ K.T / 2)
    return torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32)


def test_the_deep_tight_budget_net_trains_within_1_1_of_tuned_adam():
    """Issue 12, item 4: [4, 64, 64, 64, 64, 1] with a budget of 0.77 ‖K‖₂ (it binds). The old
    normalisation stalled MM at the initial loss (6.6× Adam); now it ties tuned Adam."""
    X, Y = _saturated_lqr(768, 0)
    Xtr, Ytr, Xte, Yte = X[:512], Y[:512], X[512:], Y[512:]

    def test_mse(optimizer, lr=None):
        net = NormalizedMLP([4, 64, 64, 64, 64, 1], lipschitz=1.25, seed=0)
        hist = fit(net, Xtr, Ytr, optimizer=optimizer, lr=lr, epochs=200, progress=False)
        assert net.lipschitz_bound() <= 1.25 and hist.status != "stalled"
        with torch.no_grad():
            return float(((net(Xte) - Yte) ** 2).mean())

    adam = min(test_mse("adam", lr) for lr in (3e-3, 1e-2, 3e-2))
    assert test_mse("mm") <= 1.1 * adam


def test_a_fit_that_makes_no_progress_says_so_and_why(problem):
    X, Y, make, _ = problem
    net = make(radii=2.0)
    with pytest.warns(StallWarning, match=r"no progress: .* lr=1e-12 may be too small"):
        hist = fit(net, X, Y, optimizer="adam", lr=1e-12, epochs=5, progress=False)
    assert hist.status == "stalled" and hist.initial_loss == pytest.approx(hist.final_loss)
    assert "lr=1e-12" in hist.reason


def test_fit_reports_progress(problem):
    X, Y, make, _ = problem
    hist = fit(make(radii=2.0), X, Y, epochs=20, progress=False)
    assert hist.status == "improving" and hist.final_loss < hist.initial_loss
    assert hist.final_loss == pytest.approx(hist.epoch_loss[-1])


def test_fit_with_stochastic_mm_keeps_its_memory_across_batches(problem, monkeypatch):
    X, Y, make, _ = problem
    restarts = []
    monkeypatch.setattr(StochasticMM, "restart", lambda self: restarts.append(1))
    net = make(radii=2.0)
    hist = fit(net, X, Y, optimizer="smm", epochs=20, batch_size=64, progress=False)
    assert restarts == [] and len(hist.loss) == 40
    assert hist.final_loss < 0.2 * hist.initial_loss and hist.status != "stalled"
    assert all(e % 2 == 0 for e in hist.evaluations[1:])  # two batches per step
