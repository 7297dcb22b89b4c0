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


def _drifted(dtype, conditioning=None, seed=0):
    """A net after a few Adam steps: its stored points are far off their spheres."""
    from certnet.nn import NormalizedMLP

    torch.manual_seed(seed)
    net = NormalizedMLP([3, 32, 16, 2], radii=[1.3, 0.7, 2.0], seed=seed, dtype=dtype,
                        conditioning=conditioning)
    opt = torch.optim.Adam(net.parameters(), lr=0.3)
    for _ in range(5):
        opt.zero_grad()
        net(torch.randn(16, 3, dtype=dtype)).pow(2).sum().backward()
        opt.step()
    return net


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("conditioning", [None, "row"])
def test_sphere_point_keeps_the_forward_weight(dtype, conditioning):
    max_ulps = 4
    from certnet.geometry import is_on_sphere

    exact = 0
    for seed in range(3):
        net = _drifted(dtype, conditioning, seed)
        for lin in net.linears:
            assert not is_on_sphere(lin.point, lin.radius)  # Adam moved it off
            before = lin.point.detach().clone()
            y = lin.sphere_point()
            assert torch.equal(lin.point, before)  # the layer is not modified
            assert is_on_sphere(y, lin.radius)
            w = lin.weight.detach()
            w2 = lin.parametrizations.weight[0](y)
            ulp = torch.nextafter(w.abs(), torch.tensor(torch.inf, dtype=dtype)) - w.abs()
            assert float(((w2 - w).abs() / ulp).max()) <= max_ulps
            exact += torch.equal(w, w2)
    if conditioning is None:
        assert exact >= 3  # bit for bit in many layers (of 9; the plain projection: none)


def test_sphere_point_of_a_ball_layer_is_the_stored_point():
    lin = FrobeniusLinear(3, 4, radius=1.0, mode="ball")
    with torch.no_grad():
        lin.point.mul_(3.0)
    assert torch.equal(lin.sphere_point(), lin.point)


def test_the_radius_is_in_the_state_dict_and_checked_on_load():
    a = FrobeniusLinear(3, 4, radius=2.0)
    sd = a.state_dict()
    assert sd["parametrizations.weight.0.radius"].dtype == torch.float64
    assert float(sd["parametrizations.weight.0.radius"]) == 2.0
    # .float()/.half() cannot round it: it is written from the Python float
    assert float(a.half().state_dict()["parametrizations.weight.0.radius"]) == 2.0
    b = FrobeniusLinear(3, 4, radius=1.5)
    with pytest.raises(RuntimeError, match=r"saved with radius 2.0 but this layer has radius 1.5"):
        b.load_state_dict(FrobeniusLinear(3, 4, radius=2.0).state_dict())
    with pytest.raises(RuntimeError, match="radius"):  # strict=False does not waive it
        b.load_state_dict(FrobeniusLinear(3, 4, radius=2.0).state_dict(), strict=False)
    old = {k: v for k, v in FrobeniusLinear(3, 4, radius=1.5).state_dict().items()
           if not k.endswith("radius")}
    with pytest.warns(UserWarning, match="has no .*radius.* keeps its radius 1.5"):
        b.load_state_dict(old)
    assert b.radius == 1.5 and torch.equal(b.point, old["parametrizations.weight.original"])
