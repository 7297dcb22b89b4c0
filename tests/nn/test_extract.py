import numpy as np
import pytest
import torch
from torch import nn

from certnet.nn import GroupSort, LayerStack, NormalizedMLP, extract_layers
from certnet.nn.extract import _cross_check


def test_normalized_mlp_stack_matches_forward():
    net = NormalizedMLP(
        [3, 8, 8, 2],
        activation="silu",
        lipschitz=5.0,
        dtype=torch.float64,
        input_scale=[1, 2, 3],
        input_offset=[0.1, 0, -1],
        output_scale=[2, 0.5],
        output_offset=[1, -1],
    )
    with torch.no_grad():
        for lin in net.linears:
            lin.bias.normal_()
    s = extract_layers(net)
    x = np.random.default_rng(0).normal(size=(50, 3))
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.allclose(s.forward(x), ref, atol=1e-12)
    folded = LayerStack(
        tuple(s.folded_weights()),
        tuple(s.folded_biases()),
        s.activations,
        np.zeros(3),
        np.ones(3),
        np.ones(2),
        np.zeros(2),
    )
    assert np.allclose(folded.forward(x), ref, atol=1e-12)
    assert all(w.dtype == np.float64 for w in s.weights)
    assert s.widths == [3, 8, 8, 2]


def test_sequential_rules():
    seq = nn.Sequential(
        nn.Linear(2, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 4)), nn.Linear(4, 3), nn.Tanh()
    ).double()
    s = extract_layers(seq)
    assert s.widths == [2, 4, 4, 3, 3]
    assert [a.name for a in s.activations] == ["relu", "identity", "tanh"]
    x = np.random.default_rng(1).normal(size=(20, 2))
    with torch.no_grad():
        assert np.allclose(s.forward(x), seq(torch.from_numpy(x)).numpy(), atol=1e-12)


def test_fingerprint_changes_with_weights():
    net = NormalizedMLP([2, 4, 1], seed=0)
    a = extract_layers(net).fingerprint()
    with torch.no_grad():
        net.linears[0].bias[0] += 1e-6
    assert extract_layers(net).fingerprint() != a


@pytest.mark.parametrize(
    "seq,exc,match",
    [
        (
            nn.Sequential(nn.Linear(2, 3), nn.Dropout(), nn.Linear(3, 1)),
            TypeError,
            "Dropout at position 1",
        ),
        (nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)), TypeError, "BatchNorm1d"),
        (nn.Sequential(nn.ReLU(), nn.Linear(2, 3)), TypeError, "starts with an activation"),
        (nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Tanh()), TypeError, "two activations"),
        (nn.Sequential(nn.Linear(2, 3), nn.Linear(4, 1)), ValueError, "expects 4 inputs"),
        (nn.Sequential(), ValueError, "no nn.Linear"),
    ],
)
def test_sequential_errors(seq, exc, match):
    with pytest.raises(exc, match=match):
        extract_layers(seq)


def test_nan_and_foreign_module():
    seq = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        seq[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        extract_layers(seq)
    with pytest.raises(TypeError, match="cannot read a Conv1d"):
        extract_layers(nn.Conv1d(1, 1, 1))
    s = extract_layers(nn.Sequential(nn.Linear(2, 4), GroupSort(2), nn.Linear(4, 1)))
    assert s.activations[0].name == "groupsort"


# ------------------------------------------------------------------ what runs, not attributes
# Each test below builds a network whose forward is *not* what its attributes say; the old
# reader returned a stack for every one of them.


def _chain(d=3, w=8):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, w), nn.Tanh(), nn.Linear(w, 1))


def _qat_chain(width=8):
    from torch.ao.nn import qat
    from torch.ao.quantization import get_default_qat_qconfig

    torch.manual_seed(0)
    lin = qat.Linear(3, width, qconfig=get_default_qat_qconfig())
    net = nn.Sequential(lin, nn.Tanh(), nn.Linear(width, 1))
    net(torch.randn(200, 3) * 3)  # the observers calibrate the fake quantiser
    return net


def test_qat_linear_is_refused():
    with pytest.raises(TypeError, match=r"quantisation-aware .*qat.*position 0|position 0.*qat"):
        extract_layers(_qat_chain())


@pytest.mark.parametrize("where", ["layer", "activation", "container"])
@pytest.mark.parametrize("kind", ["forward", "pre"])
def test_hooks_are_refused(where, kind):
    net = _chain()
    target = {"layer": net[0], "activation": net[1], "container": net}[where]
    if kind == "forward":
        h = target.register_forward_hook(lambda m, i, o: 2 * o)
    else:
        h = target.register_forward_pre_hook(lambda m, i: (2 * i[0],))
    with pytest.raises(TypeError, match="hook.*remove the hook"):
        extract_layers(net)
    h.remove()
    extract_layers(net)


@pytest.mark.parametrize("kind", ["forward", "pre"])
def test_global_hooks_are_refused(kind):
    from torch.nn.modules import module

    net = _chain()
    if kind == "forward":
        h = module.register_module_forward_hook(lambda m, i, o: o)
    else:
        h = module.register_module_forward_pre_hook(lambda m, i: None)
    try:
        with pytest.raises(TypeError, match="global .*hook"):
            extract_layers(net)
    finally:
        h.remove()
    extract_layers(net)


def test_instance_forward_is_refused():
    net = _chain()
    net[1].forward = lambda x: 2 * torch.tanh(x)
    with pytest.raises(TypeError, match="own forward attribute"):
        extract_layers(net)


class _Residual(nn.Sequential):
    def forward(self, x):
        return x + super().forward(x)


def test_sequential_subclass_with_forward_is_refused():
    net = nn.Sequential(nn.Linear(3, 3), _Residual(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3)))
    with pytest.raises(
        TypeError, match="_Residual, a subclass of nn.Sequential.*use nn.Sequential"
    ):
        extract_layers(net)


def test_hook_based_weight_norm_and_spectral_norm_are_refused():
    lin = nn.Linear(3, 4)
    with pytest.warns(FutureWarning):
        torch.nn.utils.weight_norm(lin)
    with torch.no_grad():
        lin.weight_g.mul_(2.0)  # .weight is now stale until the next forward
    with pytest.raises(TypeError, match="remove_weight_norm"):
        extract_layers(nn.Sequential(lin))
    lin = torch.nn.utils.spectral_norm(nn.Linear(3, 4))
    with pytest.raises(TypeError, match="remove_spectral_norm"):
        extract_layers(nn.Sequential(lin))


def test_torch_parametrizations():
    from torch.nn.utils import parametrizations as P
    from torch.nn.utils import parametrize

    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(20, 3))
    for wrap in (P.orthogonal, P.weight_norm):
        net = nn.Sequential(wrap(nn.Linear(3, 4)), nn.ReLU(), nn.Linear(4, 1)).double()
        s = extract_layers(net)
        with torch.no_grad():
            assert np.allclose(s.forward(x), net(torch.from_numpy(x)).numpy(), atol=1e-12)
    sn = nn.Sequential(P.spectral_norm(nn.Linear(3, 4))).double()
    u0 = sn[0].parametrizations.weight[0]._u.clone()
    with pytest.raises(TypeError, match="spectral_norm.*training mode.*eval"):
        extract_layers(sn)
    assert torch.equal(sn[0].parametrizations.weight[0]._u, u0)  # no power iteration was run
    sn.eval()
    s = extract_layers(sn)
    assert sn.training is False
    with torch.no_grad():
        assert np.allclose(s.forward(x), sn(torch.from_numpy(x)).numpy(), atol=1e-12)

    class Double(nn.Module):
        def forward(self, w):
            return 2 * w

    lin = nn.Linear(3, 4)
    parametrize.register_parametrization(lin, "weight", Double())
    with pytest.raises(TypeError, match="parametrisation .*Double.*remove_parametrizations"):
        extract_layers(nn.Sequential(lin))


def test_normalized_mlp_is_read_from_the_modules_forward_calls():
    net = NormalizedMLP([2, 8, 8, 1], activation="leaky_relu", dtype=torch.float64, seed=0)
    assert net.lipschitz_bound() == 1.0
    net.acts[0].negative_slope = 3.0  # forward now uses slope 3 after layer 1
    s = extract_layers(net)
    assert s.activations[0].kwargs["negative_slope"] == 3.0
    assert s.activations[1].kwargs.get("negative_slope", 0.01) == 0.01
    assert net.lipschitz_bound() == 3.0
    x = np.random.default_rng(0).normal(size=(30, 2))
    with torch.no_grad():
        assert np.allclose(s.forward(x), net(torch.from_numpy(x)).numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="not one activation"):
        net.config()
    net.acts[0] = nn.Softplus()
    with pytest.raises(TypeError, match=r"acts\[0\].*certnet.nn.activations.Softplus"):
        extract_layers(net)


def test_normalized_mlp_subclass_with_forward_is_refused():
    class Twice(NormalizedMLP):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(TypeError, match="overrides NormalizedMLP.forward"):
        extract_layers(Twice([2, 4, 1], seed=0))


def test_torch_softplus_is_refused_and_certnets_is_read():
    from certnet.nn import Softplus

    with pytest.raises(TypeError, match=r"position 1.*jump.*certnet.nn.activations.Softplus"):
        extract_layers(nn.Sequential(nn.Linear(2, 3), nn.Softplus(beta=2.0), nn.Linear(3, 1)))
    s = extract_layers(nn.Sequential(nn.Linear(2, 3), Softplus(beta=2.0), nn.Linear(3, 1)))
    assert s.activations[0].name == "softplus" and s.activations[0].kwargs == {"beta": 2.0}


# ------------------------------------------------------------------ the cross-check
def _refused(net, stack, dtype=torch.float32):
    with pytest.raises(TypeError, match="disagrees with the layers certnet read.*largest"):
        _cross_check(net, stack, dtype, torch.device("cpu"))


@pytest.mark.parametrize("width", [8, 64, 512])
def test_cross_check_catches_qat(width):
    net = _qat_chain(width)
    plain = nn.Sequential(nn.Linear(3, width), nn.Tanh(), net[2])  # the float weights
    plain[0].load_state_dict({"weight": net[0].weight, "bias": net[0].bias})
    _refused(net, extract_layers(plain))


def test_cross_check_catches_hooks_subclasses_stale_weights_and_slopes():
    net = _chain()
    stack = extract_layers(net)
    h = net[0].register_forward_hook(lambda m, i, o: 1.01 * o)
    _refused(net, stack)
    h.remove()
    h = net.register_forward_pre_hook(lambda m, i: (1.01 * i[0],))
    _refused(net, stack)
    h.remove()
    _cross_check(net, stack, torch.float32, torch.device("cpu"))  # the clean net passes
    # residual block read as the plain chain
    inner = [nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3)]
    _refused(_Residual(*inner), extract_layers(nn.Sequential(*inner)))
    # stale hook-based weight_norm weight
    lin = nn.Linear(3, 4)
    with pytest.warns(FutureWarning):
        torch.nn.utils.weight_norm(lin)
    with torch.no_grad():
        lin.weight_g.mul_(1.5)
        stale = nn.Linear(3, 4)
        stale.weight.copy_(lin.weight)
        stale.bias.copy_(lin.bias)
    _refused(nn.Sequential(lin), extract_layers(nn.Sequential(stale)))
    # NormalizedMLP read from act_spec instead of the modules
    mlp = NormalizedMLP([2, 16, 1], activation="leaky_relu", seed=0)
    old = extract_layers(mlp)
    mlp.acts[0].negative_slope = 0.5
    _refused(mlp, old)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_check_accepts_ordinary_nets(dtype):
    from certnet.nn import ACTIVATIONS

    for act in ACTIVATIONS:
        net = NormalizedMLP(
            [3, 32, 32, 2],
            activation=act,
            lipschitz=40.0,
            seed=1,
            dtype=dtype,
            input_offset=[100.0, -3.0, 0.0],
            input_scale=[0.01, 1.0, 30.0],
            output_scale=[10.0, 0.1],
            output_offset=5.0,
        )
        with torch.no_grad():
            for lin in net.linears:
                lin.bias.normal_(0, 3)
        extract_layers(net)
    extract_layers(NormalizedMLP([4, 512, 512, 512, 2], lipschitz=50.0, seed=0, dtype=dtype))
    extract_layers(NormalizedMLP([3] + [64] * 30 + [1], "silu", radii=1.3, seed=0, dtype=dtype))
    torch.manual_seed(3)
    big = nn.Sequential(nn.Linear(3, 256), nn.ReLU(), nn.Linear(256, 256), nn.GELU())
    big.append(nn.Linear(256, 1))
    with torch.no_grad():
        for p in big.parameters():
            p.mul_(1e3)
    extract_layers(big.to(dtype))


def test_extraction_is_deterministic_and_leaves_the_net_and_rng_alone():
    net = NormalizedMLP([3, 16, 1], seed=0)
    net.train()
    state = torch.get_rng_state()
    a = extract_layers(net).fingerprint()
    assert torch.equal(torch.get_rng_state(), state)
    assert net.training
    net.eval()
    assert extract_layers(net).fingerprint() == a
    assert not net.training


def test_extract_layers_runs_the_cross_check(monkeypatch):
    import certnet.nn.extract as ex

    net = _chain()
    net[0].register_forward_hook(lambda m, i, o: 1.01 * o)
    monkeypatch.setattr(ex, "_check_module", lambda m, where: None)  # a path that forgets
    with pytest.raises(TypeError, match="disagrees with the layers certnet read"):
        extract_layers(net)
