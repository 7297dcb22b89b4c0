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


def test_certnet_softplus_is_continuous_exact_and_overflow_free():
    from certnet.nn import Softplus

    f = make_activation("softplus", beta=3.0)
    assert type(f) is Softplus
    x = torch.linspace(-30, 30, 20001, dtype=torch.float64)
    ref = torch.log1p(torch.exp(3.0 * x)) / 3.0  # exact formula, no overflow in this range
    assert torch.allclose(f.double()(x), ref, rtol=4e-16, atol=0)
    # torch's nn.Softplus jumps by log(1 + e^-20)/beta at beta*x = 20; certnet's does not
    t = torch.tensor([20.0 / 3.0], dtype=torch.float64)
    a, b = t, torch.nextafter(t, torch.tensor(100.0, dtype=torch.float64))
    torch_jump = float(torch.nn.Softplus(beta=3.0)(b) - torch.nn.Softplus(beta=3.0)(a))
    ours = float(f(b) - f(a))
    assert abs(torch_jump) > 1e-10 and abs(ours) <= 2 * float(b - a)
    big = torch.tensor([1e4, -1e4, 1e38], dtype=torch.float32)
    assert torch.equal(Softplus()(big), torch.tensor([1e4, 0.0, 1e38]))


@pytest.mark.parametrize(
    "module,exc,match",
    [
        (torch.nn.Softplus(), TypeError, "jump.*certnet.nn.activations.Softplus"),
        (torch.nn.Softplus(beta=2.0, threshold=5.0), TypeError, "threshold=5"),
        (torch.nn.LeakyReLU(-0.2), ValueError, "negative_slope >= 0"),
        (torch.nn.ELU(alpha=-1.0), ValueError, "alpha >= 0"),
    ],
)
def test_spec_of_module_refuses_what_has_no_slope_class(module, exc, match):
    with pytest.raises(exc, match=match):
        spec_of_module(module)


def test_spec_of_module_reads_every_argument_and_exact_types_only():
    nn = torch.nn
    assert spec_of_module(nn.LeakyReLU(0.3, inplace=True)).kwargs == {"negative_slope": 0.3}
    assert spec_of_module(nn.ELU(alpha=2.0, inplace=True)).kwargs == {"alpha": 2.0}
    assert spec_of_module(nn.GELU(approximate="tanh")).name == "gelu_tanh"
    assert spec_of_module(nn.GELU()).name == "gelu"
    assert spec_of_module(nn.ReLU(inplace=True)).name == "relu"
    assert spec_of_module(nn.SiLU(inplace=True)).name == "silu"
    g = nn.GELU()
    g.approximate = "sigmoid"
    with pytest.raises(TypeError, match="approximate='none' or 'tanh'"):
        spec_of_module(g)

    class MyTanh(nn.Tanh):
        def forward(self, x):
            return 2 * torch.tanh(x)

    with pytest.raises(TypeError, match="MyTanh is a subclass of Tanh"):
        spec_of_module(MyTanh())
