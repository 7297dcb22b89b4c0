import math

import numpy as np
import pytest
import torch

from certnet.nn import NormalizedMLP
from certnet.optim import normalize_data


def test_normalisation_matches_scales_and_keeps_units(problem):
    X, Y, make, _ = problem
    X = X * 7.0 + 3.0
    Y = Y * 50.0 - 2.0
    net = make(radii=2.0)
    norm = normalize_data(net, X, Y)
    xh = (X - X.mean(0)) * norm.input_scale
    assert float(xh.pow(2).mean()) == pytest.approx(1.0, rel=1e-12)
    # init net's outputs (internal units) have the targets' rms in internal units
    with torch.no_grad():
        g = (net(X) - net(X.mean(0, keepdim=True))) / norm.output_scale
    yh = (Y - Y.mean(0)) / norm.output_scale
    assert float(g.pow(2).sum(1).mean().sqrt()) == pytest.approx(
        float(yh.pow(2).sum(1).mean().sqrt()), rel=1e-10
    )
    assert net.lipschitz_bound() == pytest.approx(
        norm.input_scale * norm.output_scale * 8.0, rel=1e-12
    )
    np.testing.assert_allclose(norm.output_offset, Y.mean(0).numpy())


def test_normalisation_keeps_budget(problem):
    X, Y, _, _ = problem
    net = NormalizedMLP([3, 8, 8, 1], lipschitz=3.0, dtype=torch.float64, seed=0)
    normalize_data(net, X * 10, Y)
    assert net.lipschitz_bound() == pytest.approx(3.0, rel=1e-12)
    assert net.lipschitz_bound() <= 3.0


@pytest.mark.parametrize(
    ("X", "Y", "exc", "match"),
    [
        (torch.ones(8, 3), torch.randn(8, 1), ValueError, "X is constant"),
        (torch.randn(8, 3), torch.ones(8, 1), ValueError, "Y is constant"),
        (torch.randn(8, 2), torch.randn(8, 1), ValueError, "maps 3 inputs"),
        (torch.randn(8, 3, 1), torch.randn(8, 1), ValueError, "shape \\(samples, features\\)"),
        (torch.full((8, 3), float("nan")), torch.randn(8, 1), ValueError, "NaN/inf"),
    ],
)
def test_normalisation_bad_data(problem, X, Y, exc, match):
    with pytest.raises(exc, match=match):
        normalize_data(problem[2](), X.double(), Y.double())


def test_normalisation_needs_normalized_mlp():
    with pytest.raises(TypeError, match="needs a certnet.nn.NormalizedMLP"):
        normalize_data(torch.nn.Linear(3, 1), torch.randn(4, 3), torch.randn(4, 1))


def test_normalisation_refuses_constant_network(problem):
    X, Y, make, _ = problem
    net = make(widths=(3, 4, 1), activation="relu")
    with torch.no_grad():
        net.linears[0].bias.fill_(-100.0)  # every ReLU off: g is constant
    with pytest.raises(ValueError, match="constant on the data"):
        normalize_data(net, X, Y)


def test_with_a_budget_the_targets_have_unit_rms_and_the_radii_keep_the_budget():
    """The deep tight-budget net of issue 12: the old output scale (≈3e3) shrank every radius
    to ≈0.2 and left an internal loss of ≈1e-7; now the targets set the output scale."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(512, 4, generator=g) * torch.tensor([1.0, 2.0, 1.0, 2.0])
    Y = 2 * torch.tanh(X @ torch.tensor([[-0.8], [-1.1], [0.8], [-0.35]]) / 2)
    net = NormalizedMLP([4, 64, 64, 64, 64, 1], lipschitz=1.25, seed=0)
    norm = normalize_data(net, X, Y)
    assert norm.mode == "budget" and norm.radii == net.radii
    yh = (Y - Y.mean(0)) / norm.output_scale
    assert float(yh.pow(2).mean()) == pytest.approx(1.0, rel=1e-5)
    assert net.lipschitz_bound() <= 1.25 and net.lipschitz_bound() == pytest.approx(1.25)
    assert min(net.radii) > 0.9  # the budget stays in the radii
    assert math.prod(net.radii) * norm.input_scale * norm.output_scale == pytest.approx(1.25)


def test_without_a_budget_the_output_scale_matches_the_initial_network(problem):
    X, Y, make, _ = problem
    net = make(radii=2.0)
    norm = normalize_data(net, X, Y)
    assert norm.mode == "gain" and norm.radii == [2.0, 2.0, 2.0]
