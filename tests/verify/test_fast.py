import numpy as np
import pytest

from certnet.verify import lipschitz
from certnet.verify.fast import feasible_start, optimize_multipliers, rho_and_grad
from certnet.verify.lmi import certify_rho, slope_net
from tests.verify.conftest import make_stack, random_weights

CASES = [
    ([4, 12, 12, 1], ["relu", "relu"]),
    ([3, 10, 8, 2], ["silu", "tanh"]),
    ([2, 6, 6, 6, 1], ["gelu", "leaky_relu", "sigmoid"]),
]


@pytest.mark.parametrize(("dims", "acts"), CASES)
def test_fast_reaches_lipsdp_neuron(dims, acts):
    stack = make_stack(random_weights(dims, seed=len(dims)), acts)
    fast = lipschitz(stack, "fast")
    ref = lipschitz(stack, "lipsdp-neuron")
    assert fast.solver["status"] == "converged"
    assert ref.value * (1 - 1e-5) <= fast.value <= ref.value * 1.001


@pytest.mark.parametrize(("dims", "acts"), CASES)
def test_start_is_feasible_and_schur_value_matches_certify(dims, acts):
    net = slope_net(make_stack(random_weights(dims, seed=1), acts), "fast")
    ts = feasible_start(net)
    rho, _ = rho_and_grad(net, ts, grad=False)
    assert np.isfinite(rho)
    assert certify_rho(net, ts) == pytest.approx(rho, rel=1e-7)


def test_gradient_matches_finite_differences():
    net = slope_net(make_stack(random_weights([3, 5, 4, 2], seed=7), ["silu", "tanh"]), "fast")
    ts = [t * 1.5 for t in feasible_start(net)]
    rho, g = rho_and_grad(net, ts)
    for k, i in [(0, 0), (0, 3), (1, 2)]:
        h = 1e-6 * ts[k][i]
        up = [t.copy() for t in ts]
        up[k][i] += h
        dn = [t.copy() for t in ts]
        dn[k][i] -= h
        fd = (rho_and_grad(net, up, grad=False)[0] - rho_and_grad(net, dn, grad=False)[0]) / (2 * h)
        assert g[k][i] == pytest.approx(fd, rel=1e-4, abs=1e-9)


def test_time_budget_still_certifies():
    stack = make_stack(random_weights([4, 20, 20, 1], seed=3), ["relu", "relu"])
    net = slope_net(stack, "fast").normalized()[0]
    ts, info = optimize_multipliers(net, time_budget=0.0)
    assert "time budget" in info["status"]
    assert np.isfinite(certify_rho(net, ts))
    cert = lipschitz(stack, "fast", time_budget=0.0)
    assert cert.check(stack) <= cert.value


def test_no_hidden_layer_is_the_matrix_norm():
    w = random_weights([3, 2], seed=2)
    stack = make_stack(w, [])
    exact = np.linalg.norm(w[0], 2)
    for method in ("fast", "lipsdp-neuron", "product"):
        v = lipschitz(stack, method).value
        assert exact <= v <= exact * (1 + 1e-9)


def test_an_early_stop_returns_the_best_proved_iterate():
    # the barrier iterates' Schur value is not monotone: after 5 steps it was 1.55× the start's
    for seed in range(2):
        stack = make_stack(random_weights([4, 20, 20, 20, 1], seed=seed), ["relu", "tanh", "relu"])
        net = slope_net(stack, "fast").normalized()[0]
        r0 = rho_and_grad(net, feasible_start(net), grad=False)[0]
        for mi in (3, 5, 8):
            ts, info = optimize_multipliers(net, max_iter=mi)
            assert rho_and_grad(net, ts, grad=False)[0] <= r0
