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


def test_row_conditioning_removes_row_scaling_ill_conditioning():
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    x = torch.diag(torch.logspace(-3, 0, 6, dtype=torch.float64)) @ q  # κ = 1000
    plain = FrobeniusLinear(6, 6, radius=2.0, dtype=torch.float64)
    cond = FrobeniusLinear(6, 6, radius=2.0, conditioning="row", dtype=torch.float64)
    with torch.no_grad():
        plain.point.copy_(x * 2.0 / x.norm())
        cond.point.copy_(x * 2.0 / x.norm())
    s_plain = torch.linalg.svdvals(plain.weight.detach())
    s_cond = torch.linalg.svdvals(cond.weight.detach())
    assert float(s_plain[0] / s_plain[-1]) == pytest.approx(1000.0, rel=1e-6)
    assert float(s_cond[0] / s_cond[-1]) == pytest.approx(1.0, abs=1e-9)
    assert float(cond.weight.norm()) == pytest.approx(2.0, rel=1e-12)


def test_row_conditioning_narrows_spread_on_row_scaled_random_matrices():
    gen = torch.Generator().manual_seed(0)
    narrowed = 0
    for _ in range(50):
        scales = torch.logspace(-2, 0, 8, dtype=torch.float64)[torch.randperm(8, generator=gen)]
        x = scales[:, None] * torch.randn(8, 5, generator=gen, dtype=torch.float64)
        layer = FrobeniusLinear(5, 8, radius=1.0, conditioning="row", dtype=torch.float64)
        with torch.no_grad():
            layer.point.copy_(x / x.norm())
        k_before = torch.linalg.cond(x)
        k_after = torch.linalg.cond(layer.weight.detach())
        narrowed += int(k_after < k_before)
        assert torch.allclose(
            layer.weight.detach().norm(dim=1), torch.full((8,), 8**-0.5, dtype=torch.float64)
        )
    assert narrowed == 50


def test_conditioning_is_scale_invariant_and_validated():
    layer = FrobeniusLinear(4, 3, radius=1.5, conditioning="row", dtype=torch.float64)
    x = torch.randn(10, 4, dtype=torch.float64)
    layer(x).pow(2).sum().backward()
    assert abs(float((layer.point.grad * layer.point.detach()).sum())) < 1e-10
    with pytest.raises(ValueError, match="conditioning must be one of"):
        FrobeniusLinear(2, 2, conditioning="column")
    with pytest.raises(ValueError, match="needs mode='sphere'"):
        FrobeniusLinear(2, 2, conditioning="row", mode="ball")
