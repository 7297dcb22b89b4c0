import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from certnet.nn import ACTIVATIONS, NormalizedMLP

ELEMENTWISE = [a for a in ACTIVATIONS if a != "groupsort"]


@settings(max_examples=60, deadline=None)
@given(
    widths=st.lists(st.integers(1, 12), min_size=2, max_size=5),
    act=st.sampled_from(ELEMENTWISE + ["groupsort"]),
    budget=st.floats(0.05, 100.0),
    seed=st.integers(0, 10_000),
    scale_in=st.floats(0.1, 10.0),
    scale_out=st.floats(0.1, 10.0),
)
def test_sampled_ratios_below_bound(widths, act, budget, seed, scale_in, scale_out):
    if act == "groupsort":
        widths = [widths[0]] + [2 * w for w in widths[1:-1]] + [widths[-1]]
    torch.manual_seed(seed)
    net = NormalizedMLP(
        widths,
        activation=act,
        lipschitz=budget,
        dtype=torch.float64,
        input_scale=scale_in,
        output_scale=scale_out,
        seed=seed,
    )
    with torch.no_grad():  # random biases and random points on the spheres
        for lin in net.linears:
            lin.point.normal_()
            lin.point.mul_(lin.radius / lin.point.norm())
            lin.bias.normal_()
    x = torch.randn(256, widths[0], dtype=torch.float64) * 3
    y = x + torch.randn_like(x) * torch.logspace(-3, 1, 256, dtype=torch.float64)[:, None]
    with torch.no_grad():
        ratio = (net(x) - net(y)).norm(dim=1) / (x - y).norm(dim=1)
    assert float(ratio.max()) <= net.lipschitz_bound() * (1 + 1e-9)
    assert net.lipschitz_bound() <= budget


@pytest.mark.parametrize("budget", [1e-3, 0.3, 1.0, 25.0, 1e4])
def test_budget_radii_budget_roundtrip(budget):
    net = NormalizedMLP(
        [4, 32, 32, 2],
        activation="sigmoid",
        lipschitz=budget,
        input_scale=[1, 2, 3, 4],
        output_scale=0.5,
    )
    assert net.lipschitz_bound() == pytest.approx(budget, rel=1e-12)
    assert net.lipschitz_bound() <= budget
    again = NormalizedMLP(
        [4, 32, 32, 2],
        activation="sigmoid",
        radii=net.radii,
        input_scale=[1, 2, 3, 4],
        output_scale=0.5,
    )
    assert again.lipschitz_bound() == net.lipschitz_bound()


def test_radii_report_budget():
    net = NormalizedMLP([2, 8, 1], activation="relu", radii=[2.0, 3.0])
    assert net.lipschitz_bound() == 6.0
    net = NormalizedMLP([2, 8, 1], activation="sigmoid", radii=2.0, input_scale=[1, 5])
    assert net.lipschitz_bound() == pytest.approx(5 * 4 * 0.25)


def test_set_normalization_keeps_budget():
    net = NormalizedMLP([3, 16, 1], lipschitz=10.0)
    net.set_normalization(input_scale=[0.5, 2.0, 4.0], output_scale=3.0)
    assert net.lipschitz_bound() == pytest.approx(10.0, rel=1e-12)
    net.set_normalization(input_scale=1.0, keep_budget=False)
    assert net.lipschitz_bound() == pytest.approx(10.0 / 4.0, rel=1e-12)


def test_seed_reproducible():
    a = NormalizedMLP([3, 8, 1], seed=3)
    b = NormalizedMLP([3, 8, 1], seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_forward_shape_error():
    net = NormalizedMLP([3, 8, 1])
    with pytest.raises(ValueError, match="last dimension 3"):
        net(torch.randn(4, 2))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"widths": [3]}, "at least 2"),
        ({"widths": [3, 0, 1]}, "positive integer"),
        ({"widths": [3, 4, 1], "lipschitz": -3.0}, "lipschitz must be > 0"),
        ({"widths": [3, 4, 1], "lipschitz": 0.0}, "lipschitz must be > 0"),
        ({"widths": [3, 4, 1], "radii": [1.0, -1.0]}, "radius must be > 0"),
        ({"widths": [3, 4, 1], "radii": [1.0]}, "one radius per layer"),
        ({"widths": [3, 4, 1], "radii": 1.0, "lipschitz": 2.0}, "not both"),
        ({"widths": [3, 4, 1], "activation": "swish9"}, "unknown activation"),
        ({"widths": [3, 4, 1], "input_scale": [1.0, 2.0]}, "expected a scalar or 3"),
        ({"widths": [3, 4, 1], "output_scale": -1.0}, "scales must be > 0"),
        ({"widths": [3, 5, 1], "activation": "groupsort"}, "divisible by 2"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NormalizedMLP(**kwargs)


def test_bound_is_product_formula():
    net = NormalizedMLP(
        [2, 4, 4, 3],
        activation="leaky_relu",
        activation_kwargs={"negative_slope": 1.5},
        radii=[1.0, 2.0, 0.5],
        input_scale=[3.0, 1.0],
        output_scale=[1.0, 2.0, 0.1],
    )
    assert net.lipschitz_bound() == pytest.approx(3.0 * 2.0 * 1.0 * 1.5**2)
    assert math.isfinite(net.lipschitz_bound())


def test_dtype_casts_and_deepcopy_keep_the_bound():
    import copy

    net = NormalizedMLP([3, 16, 1], lipschitz=25.0, dtype=torch.float64)
    bound = net.lipschitz_bound()
    net.float()
    assert net.lipschitz_bound() == bound
    twin = copy.deepcopy(net)
    x = torch.randn(4, 3)
    with torch.no_grad():
        assert torch.equal(twin(x), net(x))
    assert twin.lipschitz_bound() == bound
