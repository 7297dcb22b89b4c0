import dataclasses

import numpy as np
import pytest

from certnet.errors import CertificateError
from certnet.nn.activations import ActivationSpec
from certnet.verify.lmi import assemble, certify_rho, perturbation_margin, slope_net, sqrt_up
from tests.verify.conftest import make_stack, random_weights


def test_one_hidden_layer_matrix_matches_the_paper_form():
    ws = random_weights([3, 4, 2], seed=1)
    a, b = -0.5, 2.0
    net = slope_net(make_stack(ws, [ActivationSpec("silu", a, b)]), "fast")
    t = np.array([0.3, 1.0, 2.0, 0.7])
    m = assemble(net, [t], 1.5)
    w0, w1 = ws
    tm = np.diag(t)
    ref = np.block(
        [
            [-2 * a * b * w0.T @ tm @ w0 - 1.5 * np.eye(3), (a + b) * w0.T @ tm],
            [(a + b) * tm @ w0, -2 * tm + w1.T @ w1],
        ]
    )
    np.testing.assert_allclose(m, ref, atol=1e-14)


def test_certified_rho_makes_the_matrix_negative_definite_and_is_tight():
    ws = random_weights([3, 5, 5, 1], seed=2)
    net = slope_net(make_stack(ws, ["tanh", "relu"]), "fast")
    ts = [np.full(5, 3.0), np.full(5, 2.0)]
    rho = certify_rho(net, ts)
    assert np.linalg.eigvalsh(assemble(net, ts, rho)).max() < 0
    assert np.linalg.eigvalsh(assemble(net, ts, rho * (1 - 1e-6))).max() > 0


def test_linear_layers_are_multiplied_out_exactly():
    ws = random_weights([4, 6, 5, 3], seed=3)
    net = slope_net(make_stack(ws, ["identity", "tanh"]), "fast")  # tanh: no rebalancing
    assert net.hidden == [5]
    np.testing.assert_allclose(net.ws[0], ws[1] @ ws[0], atol=1e-14)
    lin = slope_net(make_stack(ws[:2], ["identity"]), "fast")
    exact = np.linalg.norm(ws[1] @ ws[0], 2)
    assert exact <= sqrt_up(certify_rho(lin, np.zeros(0))) <= exact * (1 + 1e-12)


def test_bad_multipliers_are_rejected():
    ws = random_weights([2, 3, 1], seed=4)
    net = slope_net(make_stack(ws, ["relu"]), "fast")
    with pytest.raises(CertificateError, match="hidden neurons"):
        certify_rho(net, np.ones(4))
    with pytest.raises(CertificateError, match="finite and >= 0"):
        certify_rho(net, np.array([1.0, -1.0, 1.0]))
    with pytest.raises(CertificateError, match="not negative definite"):
        certify_rho(net, np.full(3, 1e-12))


def test_groupsort_is_refused_by_name():
    ws = random_weights([2, 4, 1], seed=5)
    stack = make_stack(ws, [ActivationSpec("groupsort", float("nan"), float("nan"), False)])
    with pytest.raises(ValueError, match="'groupsort'.*method='product'"):
        slope_net(stack, "lipsdp-neuron")


def test_per_neuron_slopes_equal_to_the_layer_class_give_the_same_proof():
    ws = random_weights([3, 5, 4, 1], seed=4)
    stack = make_stack(ws, ["silu", "tanh"])
    glob = slope_net(stack, "fast")
    slopes = [(np.full(n, a.alpha), np.full(n, a.beta)) for n, a in zip([5, 4], stack.activations)]
    loc = slope_net(stack, "fast", slopes=slopes)
    assert loc.local and not glob.local and loc.widths == glob.widths
    ts = [np.full(5, 2.0), np.full(4, 1.5)]
    np.testing.assert_array_equal(assemble(loc, ts, 0.7), assemble(glob, ts, 0.7))
    assert certify_rho(loc, ts) == certify_rho(glob, ts)  # exact weights: no margin added


def test_per_neuron_slopes_enter_the_matrix_neuron_by_neuron():
    ws = random_weights([2, 3, 1], seed=5)
    a, b = np.array([0.0, 0.2, -0.1]), np.array([1.0, 0.5, 0.3])
    net = slope_net(make_stack(ws, ["silu"]), "fast", slopes=[(a, b)])
    t = np.array([0.5, 1.0, 2.0])
    m = assemble(net, [t], 0.0)
    w0, w1 = ws
    ref = np.block(
        [
            [-2 * w0.T @ np.diag(a * b * t) @ w0, w0.T @ np.diag((a + b) * t)],
            [np.diag((a + b) * t) @ w0, -2 * np.diag(t) + w1.T @ w1],
        ]
    )
    np.testing.assert_allclose(m, ref, atol=1e-14)


def test_the_perturbation_margin_bounds_the_change_of_the_matrix():
    rng = np.random.default_rng(6)
    ws = random_weights([3, 6, 5, 2], seed=6)
    stack = make_stack(ws, ["tanh", "tanh"])
    stack = dataclasses.replace(stack, input_scale=np.array([0.3, 0.7, 1.1]))  # not powers of 2
    slopes = [(rng.uniform(0, 0.5, n), rng.uniform(0.5, 1, n)) for n in (6, 5)]
    net = slope_net(stack, "fast", slopes=slopes)
    assert any(net.errs)
    ts = [rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 5)]
    eta = perturbation_margin(net, ts)
    for _ in range(20):  # exact weights anywhere in the error ball: ‖ΔM‖ ≤ η
        ws2 = []
        for w, e in zip(net.ws, net.errs):
            d = rng.normal(size=w.shape)
            ws2.append(w + e * d / np.linalg.norm(d, 2))
        other = dataclasses.replace(net, ws=tuple(ws2))
        diff = assemble(other, ts, 0.0) - assemble(net, ts, 0.0)
        assert np.linalg.norm(diff, 2) <= eta
    assert certify_rho(net, ts) > certify_rho(dataclasses.replace(net, local=False), ts)
