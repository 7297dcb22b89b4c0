import numpy as np
import pytest
import torch

from certnet.nn import ACTIVATIONS, GroupSort, activation_spec, make_activation, spec_of_module

CASES = [
    ("identity", {}),
    ("relu", {}),
    ("leaky_relu", {"negative_slope": 0.1}),
    ("leaky_relu", {"negative_slope": 2.0}),
    ("tanh", {}),
    ("sigmoid", {}),
    ("softplus", {"beta": 3.0}),
    ("elu", {"alpha": 1.0}),
    ("elu", {"alpha": 2.5}),
    ("silu", {}),
    ("gelu", {}),
    ("gelu_tanh", {}),
]


@pytest.mark.parametrize("name,kw", CASES)
def test_slope_table_contains_sampled_difference_quotients(name, kw):
    spec = activation_spec(name, **kw)
    f = make_activation(name, **kw).double()
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.uniform(-8, 8, 200_000))
    step = rng.uniform(-1, 1, 200_000) * rng.choice([1e-4, 1e-2, 1.0, 5.0], 200_000)
    b = a + torch.from_numpy(step)
    fa, fb = f(a).numpy(), f(b).numpy()
    dist = np.abs((a - b).numpy())
    q = (fa - fb) / (a - b).numpy()
    # float64 rounding of f(a) - f(b), divided by the distance
    slack = 8 * np.finfo(float).eps * (np.abs(fa) + np.abs(fb) + 1) / dist
    if name == "softplus":  # documented jump of torch's Softplus at its threshold
        slack += np.exp(-20.0) / kw["beta"] / dist
    assert (q >= spec.alpha - 1e-12 - slack).all()
    assert (q <= spec.beta + 1e-12 + slack).all()
    # and the bounds are tight (within 1e-3 of the sampled extremes), so they are not lazily loose
    assert q.min() <= spec.alpha + 2e-3
    assert q.max() >= spec.beta - 2e-3


def test_negative_lower_slopes_are_reported():
    assert activation_spec("silu").alpha < -0.09
    assert activation_spec("gelu").alpha < -0.12


def test_groupsort_is_not_elementwise_and_1_lipschitz():
    spec = activation_spec("groupsort", group_size=2)
    assert not spec.elementwise and spec.lipschitz == 1.0
    gs = GroupSort(2)
    x = torch.randn(1000, 6, dtype=torch.float64)
    y = torch.randn(1000, 6, dtype=torch.float64)
    assert ((gs(x) - gs(y)).norm(dim=1) <= (x - y).norm(dim=1) + 1e-12).all()
    with pytest.raises(ValueError, match="multiple of 2"):
        gs(torch.randn(3, 5))


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match="choose one of"):
        activation_spec("swish9")
    with pytest.raises(TypeError, match="takes no keyword"):
        activation_spec("tanh", beta=2)


def test_spec_of_module_roundtrip():
    for name, kw in CASES:
        spec = activation_spec(name, **kw)
        again = spec_of_module(spec.module())
        assert again == spec
    assert spec_of_module(torch.nn.Dropout()) is None
    assert set(ACTIVATIONS) >= {"relu", "tanh", "groupsort"}
