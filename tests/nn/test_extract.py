import numpy as np
import pytest
import torch
from torch import nn

from certnet.nn import GroupSort, LayerStack, NormalizedMLP, extract_layers


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
