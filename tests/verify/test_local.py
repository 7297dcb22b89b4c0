"""Local Lipschitz certificates (certnet.verify.local): sound, never above the global bound,
tight where the maths says they must be, and refused or rejected when the region is wrong."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import certnet as cn
from certnet.errors import CertificateError
from certnet.nn import extract_layers
from certnet.verify import Certificate, lipschitz, lipschitz_lower_bound
from certnet.verify.local import as_box, local_lipschitz, region_bounds, slope_range


def mlp(dims, act=nn.ReLU, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]).double())
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def box(r, d=3, c=0.0):
    return {"centre": np.full(d, c), "half_widths": r}


ACTS = [nn.ReLU, nn.Tanh, nn.Sigmoid, nn.SiLU]


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.__name__)
@pytest.mark.parametrize("seed", [0, 1])
def test_local_is_below_global_and_above_the_sampled_lower_bound(act, seed):
    net = mlp([3, 12, 12, 2], act, seed)
    glob = lipschitz(net).value
    for r in (0.05, 0.5, 5.0):
        cert = lipschitz(net, region=box(r))
        assert cert.method == "fast-local" and cert.norm == "l2" and cert.kind == "lipschitz"
        assert cert.value <= glob
        low = lipschitz_lower_bound(net, region=box(r), samples=300, steps=60)
        assert low["realized"] <= cert.value * (1 + 1e-9)
        lo, up = cert.data["interval"]
        assert lo <= up == cert.value
        assert cert.check(net) <= cert.value


def test_small_regions_are_tighter_than_large_ones():
    net = mlp([3, 16, 16, 2], nn.Tanh, 2)
    v = [lipschitz(net, region=box(r)).value for r in (0.01, 1.0, 100.0)]
    g = lipschitz(net).value
    assert v[0] < 0.7 * g and v[0] < v[1] <= v[2] <= g


def test_stably_active_relu_gives_the_norm_of_the_product_exactly():
    torch.manual_seed(0)
    net = mlp([3, 6, 5, 2], nn.ReLU, 4)
    with torch.no_grad():  # every neuron active on [-1, 1]^3: biases far above the rows
        net[0].bias.copy_(net[0].weight.abs().sum(1) + 0.5)
        h_max = 2.0 * net[0].bias  # ≥ |W_0| 1 + b_0 ≥ every hidden output on the box
        net[2].bias.copy_(net[2].weight.abs() @ h_max + 0.5)
    stack = extract_layers(net)
    slopes = [ab for _, ab in region_bounds(stack, -np.ones(3), np.ones(3))]
    assert all(np.all(a == 1) and np.all(b == 1) for a, b in slopes)
    cert = lipschitz(net, region=(-np.ones(3), np.ones(3)))
    w = [m.weight.detach().numpy() for m in net if isinstance(m, nn.Linear)]
    exact = np.linalg.norm(w[2] @ w[1] @ w[0], 2)
    assert exact <= cert.value <= exact * (1 + 1e-12)
    assert cert.data["neurons"] == {"total": 11, "dead": 0, "linear": 11}
    assert cert.data["interval"][0] == pytest.approx(exact, rel=1e-6)  # f is linear there
    assert cert.check(net) == cert.value


def test_dead_relu_neurons_are_dropped_and_the_net_can_be_constant():
    net = mlp([2, 4, 1], nn.ReLU, 0)
    with torch.no_grad():
        net[0].bias.fill_(-100.0)  # every neuron off on the box
    cert = lipschitz(net, region=(-np.ones(2), np.ones(2)))
    assert cert.data["neurons"]["dead"] == 4
    assert cert.value < 1e-140 and cert.check(net) == cert.value  # 0 up to the 1e-300 floor of ρ


def test_a_tiny_region_converges_to_the_jacobian_norm():
    net = mlp([3, 16, 16, 2], nn.Tanh, 0)
    x0 = torch.zeros(3, dtype=torch.float64)
    jn = float(torch.linalg.matrix_norm(torch.autograd.functional.jacobian(net, x0), 2))
    ratios = [lipschitz(net, "lipsdp-neuron", region=box(r)).value / jn for r in (1e-1, 1e-2, 1e-3)]
    assert all(q >= 1 for q in ratios)
    assert ratios[0] > ratios[1] > ratios[2] and ratios[2] < 1.01  # → 1 like r


def test_refinement_meets_the_requested_gap():
    net = mlp([2, 8, 1], nn.Tanh, 3)
    region = (-np.full(2, 0.5), np.full(2, 0.5))
    plain = lipschitz(net, region=region)
    assert plain.data["interval"][1] > 1.15 * plain.data["interval"][0]  # refinement has work
    cert = lipschitz(net, region=region, gap=0.15, max_splits=60)
    lo, up = cert.data["interval"]
    assert up <= 1.15 * lo and up <= plain.value
    assert cert.solver["splits"] > 0 and len(cert.data["pieces"]) == cert.solver["splits"] + 1
    assert cert.check(net) == cert.value
    back = Certificate.from_json(cert.to_json())
    assert back.check(net) == cert.value


def test_the_global_bound_is_kept_when_the_local_one_is_not_smaller():
    net = mlp([3, 12, 12, 2], nn.ReLU, 0)
    glob = lipschitz(net, "lipsdp-neuron")  # on a huge box the slopes are the global ones
    cert = local_lipschitz(extract_layers(net), box(100.0), "fast", global_cert=glob)
    assert cert.data["local_value"] > glob.value == cert.value  # recorded, and embedded
    assert cert.solver["outcome"].startswith("global") and cert.data["interval"][1] == glob.value
    assert cert.check(net) == cert.value
    edited = json.loads(cert.to_json())
    del edited["data"]["global"]
    with pytest.raises(CertificateError, match="re-verification proves only"):
        Certificate.from_dict(edited).check(net)
    edited = json.loads(cert.to_json())
    edited["data"]["global"]["multipliers"]["t"][0] *= 0.5
    with pytest.raises(CertificateError):
        Certificate.from_dict(edited).check(net)


def test_normalized_mlp_with_input_scaling_in_user_units():
    net = cn.nn.NormalizedMLP(
        [2, 16, 16, 1], "tanh", seed=0, input_scale=[0.5, 4.0], input_offset=[1.0, -2.0]
    )
    centre = np.array([1.0, -2.0])
    cert = lipschitz(net, region={"centre": centre, "half_widths": [0.2, 0.025]})
    assert cert.value <= lipschitz(net).value and cert.check(net) == cert.value
    low = lipschitz_lower_bound(net, region={"centre": centre, "half_widths": [0.2, 0.025]})
    assert low["realized"] <= cert.value


@pytest.mark.parametrize(
    "region, match",
    [
        ((np.zeros(3), np.array([1.0, np.nan, 1.0])), "hi\\[1\\] = nan is not finite"),
        ((np.zeros(3), np.array([1.0, np.inf, 1.0])), "not finite"),
        ((np.zeros(2), np.ones(2)), "shape \\(2,\\), but the network has 3 inputs"),
        ((np.ones(3), np.zeros(3)), "empty: lo\\[0\\] = 1.0 > hi\\[0\\] = 0.0"),
        ({"centre": np.zeros(3), "half_widths": -1.0}, "half_widths must be >= 0"),
        ({"middle": 0}, "keys \\['middle'\\]"),
        ("box", "pair \\(lo, hi\\) or a dict"),
    ],
)
def test_bad_regions_are_refused_with_what_to_do(region, match):
    net = mlp([3, 4, 1], nn.Tanh)
    with pytest.raises(ValueError, match=match):
        lipschitz(net, region=region)


def test_bad_methods_and_gaps_are_refused():
    net = mlp([3, 4, 1], nn.Tanh)
    with pytest.raises(ValueError, match="'fast' or 'lipsdp-neuron'"):
        lipschitz(net, "product", region=box(1.0))
    with pytest.raises(ValueError, match="gap must be"):
        lipschitz(net, region=box(1.0), gap=-1.0)
    with pytest.raises(ValueError, match="give region"):
        lipschitz(net, gap=0.1)
    gs = nn.Sequential(nn.Linear(3, 4), cn.nn.GroupSort(2), nn.Linear(4, 1)).double()
    with pytest.raises(ValueError, match="elementwise"):
        lipschitz(gs, region=box(1.0))


def test_a_centre_box_is_enclosed_outward():
    lo, hi = as_box({"centre": [0.1, 0.2], "half_widths": 0.3}, 2)
    assert np.all(lo <= np.array([0.1, 0.2]) - 0.3) and np.all(hi >= np.array([0.1, 0.2]) + 0.3)


@pytest.mark.parametrize(
    "name, kw",
    [
        ("relu", {}),
        ("leaky_relu", {"negative_slope": 0.1}),
        ("tanh", {}),
        ("sigmoid", {}),
        ("softplus", {"beta": 2.0}),
        ("elu", {"alpha": 1.5}),
        ("elu", {"alpha": 0.5}),
        ("silu", {}),
        ("gelu", {}),
        ("gelu_tanh", {}),
    ],
)
def test_slope_classes_contain_every_chord_slope_on_the_interval(name, kw):
    spec = cn.nn.activation_spec(name, **kw)
    f = spec.module().double()
    rng = np.random.default_rng(0)
    c = rng.uniform(-6, 6, 400)
    w = 10.0 ** rng.uniform(-6, 1, 400)
    lo, hi = c - w, c + w
    a, b = slope_range(spec, (lo, hi))
    assert np.all(a <= b) and np.all(a >= spec.alpha) and np.all(b <= spec.beta)
    u = rng.uniform(size=(400, 50))
    x = torch.from_numpy(lo[:, None] + (hi - lo)[:, None] * u)
    y = torch.from_numpy(lo[:, None] + (hi - lo)[:, None] * rng.uniform(size=(400, 50)))
    with torch.no_grad():
        fx, fy = f(x), f(y)
        q = ((fx - fy) / (x - y)).numpy()
        tol = (1e-15 * (fx.abs() + fy.abs() + 1.0) / (x - y).abs()).numpy()  # q's own rounding
    assert np.all(q >= a[:, None] - tol) and np.all(q <= b[:, None] + tol)
    if name != "gelu_tanh":  # (which keeps its global class)
        assert np.mean(b - a < 0.5 * (spec.beta - spec.alpha)) > 0.3  # narrower than global


def _edit(cert, path, value):
    d = json.loads(cert.to_json())
    node = d
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return Certificate.from_dict(d)


def test_edited_regions_are_rejected_unless_smaller_and_re_proved():
    net = mlp([3, 8, 8, 1], nn.Tanh, 1)
    cert = lipschitz(net, region=box(0.5))
    hi = cert.data["region"]["hi"]
    bigger = _edit(cert, ("data", "region", "hi"), [h * 2 for h in hi])
    with pytest.raises(CertificateError):
        bigger.check(net)
    d = json.loads(cert.to_json())
    for k in ("slopes", "pieces", "local_value", "neurons"):  # even with nothing to compare
        del d["data"][k]
    d["data"]["region"]["hi"] = [h * 2 for h in hi]
    with pytest.raises(CertificateError):  # the stored multipliers prove less on the bigger box
        Certificate.from_dict(d).check(net)
    with pytest.raises(CertificateError, match="not attained by its witness"):
        _edit(cert, ("data", "lower", "value"), cert.data["lower"]["value"] * 1.01).check(net)
    with pytest.raises(CertificateError, match="differs from what the network gives"):
        _edit(cert, ("data", "slopes", "alpha", 0, 0), 0.9).check(net)
    with pytest.raises(CertificateError, match="region"):
        _edit(cert, ("data", "region", "lo"), [1.0, 1.0, 1.0]).check(net)


def test_lipsdp_neuron_local_agrees_with_fast():
    net = mlp([3, 8, 8, 2], nn.Tanh, 5)
    f = lipschitz(net, region=box(0.3))
    s = lipschitz(net, "lipsdp-neuron", region=box(0.3))
    assert s.method == "lipsdp-neuron-local" and s.check(net) == s.value
    assert s.value <= f.value * 1.001
