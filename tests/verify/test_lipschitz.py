import numpy as np
import pytest
import torch
from torch import nn

import certnet as cn
from certnet.errors import CertificateError, ProblemTooLargeError
from certnet.nn import GroupSort
from certnet.verify import Certificate, lipschitz


def mlp(dims, act=nn.ReLU, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]).double())
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


@pytest.mark.parametrize("method", ["product", "fast", "lipsdp-neuron", "lipsdp-layer", "auto"])
def test_every_method_checks_and_round_trips(method):
    net = mlp([3, 8, 8, 2], nn.Tanh)
    cert = lipschitz(net, method)
    assert cert.certified and cert.kind == "lipschitz" and cert.norm == "l2"
    assert cert.check(net) == pytest.approx(cert.value, rel=1e-12)
    back = Certificate.from_json(cert.to_json())
    assert back.check(net) <= back.value
    lg = cert.data["affine_gain"]
    assert lg["lipschitz"] == cert.value and lg["f0_norm"] >= 0


def test_ordering_neuron_layer_product():
    net = mlp([4, 12, 12, 1], seed=3)
    n = lipschitz(net, "lipsdp-neuron").value
    la = lipschitz(net, "lipsdp-layer").value
    p = lipschitz(net, "product").value
    f = lipschitz(net, "fast").value
    assert n <= la * (1 + 1e-6) and la <= p * (1 + 1e-6)
    assert n * (1 - 1e-6) <= f <= n * 1.01


def test_check_fails_on_tampered_multiplier_or_weight():
    net = mlp([2, 6, 6, 1])
    cert = lipschitz(net, "lipsdp-neuron")
    d = cert.to_dict()
    t = np.array(d["multipliers"]["t"])
    t[0] = t[0] * 0.5 + 10.0
    d["multipliers"]["t"] = t.tolist()
    bad = Certificate.from_dict(d)
    with pytest.raises(CertificateError):
        bad.check(net)
    with torch.no_grad():
        net[0].weight[0, 0] += 0.5
    with pytest.raises(CertificateError, match="fingerprint"):
        cert.check(net)


def test_check_needs_the_network():
    cert = lipschitz(mlp([2, 4, 1]), "fast")
    with pytest.raises(CertificateError, match="call cert.check"):
        cert.check()


def test_groupsort_refused_by_sdp_and_product_works():
    net = nn.Sequential(nn.Linear(2, 4).double(), GroupSort(2), nn.Linear(4, 1).double())
    with pytest.raises(ValueError, match="groupsort"):
        lipschitz(net, "lipsdp-neuron")
    assert lipschitz(net, "auto").method == "product"


def test_bad_method_and_too_large():
    net = mlp([2, 4, 1])
    with pytest.raises(ValueError, match="unknown method"):
        lipschitz(net, "magic")
    with pytest.raises(ProblemTooLargeError, match="use method='fast'"):
        lipschitz(net, "lipsdp-neuron", max_memory=1e3)


def test_normalized_mlp_reports_frobenius_bound():
    net = cn.nn.NormalizedMLP([2, 8, 8, 1], activation="tanh", seed=1)
    cert = lipschitz(net, "product")
    assert cert.data["product_spectral"] <= cert.data["product_frobenius"]
    assert cert.data["product_frobenius"] == pytest.approx(net.lipschitz_bound(), rel=1e-6)


# ---------------------------------------------------------------- issue 13: rounding, degenerate
import dataclasses  # noqa: E402
from fractions import Fraction  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from certnet.verify.lmi import slope_net, sqrt_up  # noqa: E402
from certnet.verify.lower import lipschitz_lower_bound, sampled_bound  # noqa: E402
from tests.verify.conftest import make_stack, random_weights  # noqa: E402

SDP = ["fast", "lipsdp-neuron", "lipsdp-layer"]


def cancellation_net():
    net = nn.Sequential(nn.Linear(1, 3, bias=False), nn.Linear(3, 1, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1e16], [1.0], [-1e16]]))
        net[1].weight.copy_(torch.tensor([[1.0, 1.0, 1.0]]))
    return net  # f(x) = x exactly; float64 W1 @ W0 is 0


@pytest.mark.parametrize("method", [*SDP, "product", "auto"])
def test_cancelling_identity_merge_is_not_certified_below_the_truth(method):
    net = cancellation_net()
    cert = lipschitz(net, method)
    assert 1.0 <= cert.value <= (1.0 + 1e-12 if method != "product" else 1e17)
    assert cert.check(net) <= cert.value


def test_an_omitted_rounding_inflation_is_detected():
    w0 = np.array([[1.0], [2.0**-60], [1.0]])  # W1 @ W0 rounds; inflation > 0
    stack = make_stack([w0, np.array([[1.0, 1.0, -1.0]])], ["identity"])
    cert = lipschitz(stack, "fast")
    infl = cert.data["rounding"]["inflation"]
    assert infl > 0
    bare = dataclasses.replace(cert, value=sqrt_up(cert.multipliers["rho"]))
    with pytest.raises(CertificateError, match="re-verification|affine_gain"):
        bare.check(stack)


def test_linear_nets_against_exact_rational_arithmetic():
    # W2 W1 W0 = u vᵀ of rank one: ‖·‖₂² = ‖u‖²‖v‖² exactly, with cancellation inside
    rng = np.random.default_rng(0)
    for big in (2.0**20, 2.0**54, 2.0**60, 2.0**80):  # from 2⁵⁴ on, float64 W₁W₀ loses v
        u = rng.integers(1, 6, size=(2, 1)).astype(float)
        v = rng.integers(1, 6, size=(1, 3)).astype(float)
        w0 = np.vstack([v * big, v, -v * big])  # 3 × 3
        w1 = np.array([[1.0, 1.0, 1.0]])
        stack = make_stack([w0, w1, u], ["identity", "identity"])
        exact = Fraction(int((u**2).sum()) * int((v**2).sum()))
        for method in [*SDP, "product"]:
            cert = lipschitz(stack, method)
            assert Fraction(cert.value) ** 2 >= exact, method
            if method != "product":
                assert cert.value <= float(exact) ** 0.5 * (1 + 1e-5)  # Dot2: ~κu² at 2⁸⁰


def degenerate_stack(kind, seed=0):
    ws = random_weights([3, 8, 8, 1], seed=seed)
    bs = [np.zeros(8), np.zeros(8), np.zeros(1)]
    if kind == "pruned":
        ws[0][2] = 0.0
        ws[1][5] = 0.0
    elif kind == "dead-output":
        ws[1][:, 4] = 0.0
    elif kind == "duplicate":
        ws[0][3] = ws[0][1]
        ws[1][:, 3] = -ws[1][:, 1]  # the two cancel exactly in the map
    elif kind == "spread":
        ws[0][4] *= 1e10
        ws[1][:, 4] /= 1e10
        ws[0][1] *= 1e-10
        ws[1][:, 1] *= 1e10
    return make_stack(ws, ["relu", "relu"], bs)


@pytest.mark.parametrize("kind", ["pruned", "dead-output", "duplicate", "spread"])
def test_degenerate_nets_are_certified_as_tightly_as_lipsdp_neuron(kind):
    stack = degenerate_stack(kind)
    fast = lipschitz(stack, "fast")  # failed with CertificateError, or was 1e15× loose
    ref = lipschitz(stack, "lipsdp-neuron", solver="CVXOPT")
    low = lipschitz_lower_bound(stack, restarts=4, steps=100, class_restarts=0)["realized"]
    assert low <= ref.value * (1 + 1e-9) and low <= fast.value * (1 + 1e-9)
    assert fast.value <= ref.value * 1.01
    assert ref.value <= 2.0 * low  # not 1e15× (measured ≤ 1.004× with the class bound)
    assert fast.check(stack) <= fast.value
    assert fast.data["reduction"]
    assert Certificate.from_json(fast.to_json()).check(stack) <= fast.value


def test_a_tampered_reduction_is_rejected():
    stack = degenerate_stack("pruned")
    cert = lipschitz(stack, "fast")
    data = dict(cert.data)
    data["reduction"] = {**data["reduction"], "kept": [data["reduction"]["kept"][0], []]}
    with pytest.raises(CertificateError, match="reduction"):
        dataclasses.replace(cert, data=data).check(stack)
    full = slope_net(make_stack(random_weights([3, 8, 8, 1], seed=0), ["relu"] * 2), "fast")
    bad = dataclasses.replace(cert, multipliers={"t": np.ones(sum(full.hidden)), "rho": 1.0})
    with pytest.raises(CertificateError):
        bad.check(stack)


def test_never_looser_than_the_product_bound(monkeypatch):
    import importlib

    from certnet.verify.fast import feasible_start

    lipmod = importlib.import_module("certnet.verify.lipschitz")  # the module, not the function

    def loose(net, **kw):  # feasible but poor multipliers, as a time-limited run may return
        return [1e6 * t for t in feasible_start(net)], {"status": "time budget 0 s reached"}

    monkeypatch.setattr(lipmod, "optimize_multipliers", loose)
    stack = make_stack(random_weights([3, 6, 6, 1], seed=1), ["relu", "tanh"])
    cert = lipschitz(stack, "fast")
    prod = lipschitz(stack, "product")
    assert cert.method == "product" and cert.value == prod.value
    assert cert.data["looser"]["method"] == "fast" and cert.data["looser"]["value"] > cert.value
    assert cert.check(stack) <= cert.value


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    dims=st.sampled_from([[2, 5, 1], [3, 6, 4, 2], [2, 4, 4, 4, 1]]),
    zero_rows=st.integers(0, 2),
    dups=st.integers(0, 2),
)
def test_property_degenerate_random_nets(seed, dims, zero_rows, dups):
    rng = np.random.default_rng(seed)
    ws = random_weights(dims, seed=seed)
    bs = [rng.normal(size=w.shape[0]) for w in ws]
    for _ in range(zero_rows):
        k = rng.integers(0, len(ws) - 1)
        ws[k][rng.integers(0, ws[k].shape[0])] = 0.0
    for _ in range(dups):
        k = rng.integers(0, len(ws) - 1)
        i, j = rng.choice(ws[k].shape[0], 2, replace=False)
        ws[k][j], bs[k][j] = ws[k][i], bs[k][i]
    stack = make_stack(ws, ["relu"] * (len(dims) - 2), bs)
    fast = lipschitz(stack, "fast")
    ref = lipschitz(stack, "lipsdp-neuron", solver="CVXOPT")
    assert sampled_bound(stack, samples=200, seed=seed) <= fast.value * (1 + 1e-9)
    assert fast.value <= ref.value * 1.01 + 1e-12
    assert fast.check(stack) <= fast.value


def test_fast_falls_back_to_the_product_bound_when_its_multipliers_prove_nothing():
    # per-neuron scales 1e±8 under tanh (not homogeneous, so they cannot be rebalanced): the
    # fast optimiser finds no multipliers with C(t) ≺ 0; it used to raise CertificateError
    rng = np.random.default_rng(3)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)
    ).double()
    s = torch.from_numpy(10.0 ** rng.uniform(-8, 8, 6))
    with torch.no_grad():
        net[0].weight.mul_(s[:, None])
        net[2].weight.div_(s[None, :])
    cert = lipschitz(net, "fast")
    assert cert.method in ("fast", "product")
    if cert.method == "product":
        assert cert.data["looser"]["method"] == "fast"
    assert cert.check(net) <= cert.value
    assert cert.value >= lipschitz_lower_bound(net, class_restarts=0)["realized"] * (1 - 1e-9)
