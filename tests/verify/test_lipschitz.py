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
