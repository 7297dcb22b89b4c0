import pytest
import torch

from certnet.nn import FrobeniusLinear, frobenius_norm, is_frobenius


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_sphere_after_construction(dtype, tol):
    layer = FrobeniusLinear(7, 5, radius=3.0, dtype=dtype)
    assert abs(float(layer.weight.norm()) / 3.0 - 1) <= tol
    assert abs(float(layer.point.norm()) / 3.0 - 1) <= tol


def test_orthogonal_init_has_equal_singular_values():
    layer = FrobeniusLinear(8, 4, radius=2.0, dtype=torch.float64)
    s = torch.linalg.svdvals(layer.weight.detach())
    assert torch.allclose(s, torch.full_like(s, 2.0 / 2.0), atol=1e-12)


def test_grad_of_stored_point_is_riemannian_gradient():
    layer = FrobeniusLinear(4, 3, radius=1.5, dtype=torch.float64)
    x = torch.randn(10, 4, dtype=torch.float64)
    layer(x).pow(2).sum().backward()
    g = layer.point.grad
    assert abs(float((g * layer.point.detach()).sum())) < 1e-10


def test_weight_survives_free_optimiser_steps():
    layer = FrobeniusLinear(6, 6, radius=0.7)
    opt = torch.optim.Adam(layer.parameters(), lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        layer(torch.randn(8, 6)).sum().backward()
        opt.step()
    assert abs(float(layer.weight.norm()) - 0.7) < 1e-6


def test_ball_mode():
    layer = FrobeniusLinear(5, 5, radius=2.0, mode="ball", dtype=torch.float64)
    with torch.no_grad():
        layer.point.mul_(0.25)
    assert float(layer.weight.norm()) == pytest.approx(0.5)
    with torch.no_grad():
        layer.point.mul_(100)
    assert float(layer.weight.norm()) == pytest.approx(2.0)


def test_assignment_projects_and_set_radius_rescales():
    layer = FrobeniusLinear(3, 3, radius=1.0, dtype=torch.float64)
    layer.weight = torch.eye(3, dtype=torch.float64) * 10
    assert float(layer.weight.norm()) == pytest.approx(1.0)
    layer.set_radius(4.0)
    assert float(layer.weight.norm()) == pytest.approx(4.0)
    assert layer.radius == 4.0


@pytest.mark.parametrize("radius", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_radius(radius):
    with pytest.raises(ValueError, match="radius must be > 0"):
        FrobeniusLinear(2, 2, radius=radius)


def test_bad_mode_and_double_registration():
    with pytest.raises(ValueError, match="mode must be one of"):
        FrobeniusLinear(2, 2, mode="cube")
    lin = torch.nn.Linear(3, 2)
    frobenius_norm(lin, radius=2.0)
    assert is_frobenius(lin)
    with pytest.raises(ValueError, match="already"):
        frobenius_norm(lin)
    with pytest.raises(ValueError, match="matrix"):
        frobenius_norm(torch.nn.Conv1d(1, 1, 3))
