import math

import pytest
import torch

from certnet import geometry as g


def _point(shape, r, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=gen, dtype=dtype)
    return g.projx(w, r)


def _rand(shape, seed):
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("seed", range(5))
def test_proju_tangent_and_idempotent(seed):
    w = _point((7, 5), 2.5, torch.float64, seed)
    gen = torch.Generator().manual_seed(100 + seed)
    v = g.proju(w, torch.randn(7, 5, generator=gen, dtype=torch.float64), 2.5)
    assert abs(float(g.inner(w, v))) < 1e-12
    assert torch.allclose(g.proju(w, v, 2.5), v, atol=1e-13)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_expmap_stays_on_sphere_over_10k_random_steps(dtype, tol):
    gen = torch.Generator().manual_seed(0)
    radii = [0.5, 3.0, 40.0]
    ws = [_point((16, 9), r, dtype, k) for k, r in enumerate(radii)]
    for _ in range(10_000):
        vs = [
            g.proju(w, torch.randn(w.shape, generator=gen, dtype=dtype) * r, r)
            for w, r in zip(ws, radii)
        ]
        ws = g.expmap_all(ws, vs, radii)
    assert g.radii_residual(ws, radii) <= tol


def test_expmap_is_periodic():
    r = 1.7
    w = _point((4, 3), r, torch.float64)
    v = g.proju(w, _rand((4, 3), 3), r)
    period = 2 * math.pi * r / float(g.norm(v))
    for k in (1, 2, 3):
        assert torch.allclose(g.expmap(w, v * (k * period), r), w, atol=1e-10)
    half = g.expmap(w, v * (period / 2), r)
    assert torch.allclose(half, -w, atol=1e-10)


def test_expmap_matches_retraction_at_tan_relation():
    r = 2.0
    w = _point((5, 5), r, torch.float64)
    u = g.proju(w, _rand((5, 5), 1), r)
    u = u / g.norm(u)
    theta = 0.7
    a = g.expmap(w, u * (r * theta), r)
    b = g.retr(w, u * (r * math.tan(theta)), r)
    assert torch.allclose(a, b, atol=1e-12)


def test_dist_and_logmap_invert_expmap():
    r = 3.0
    w = _point((6, 2), r, torch.float64)
    v = g.proju(w, _rand((6, 2), 2), r)
    v = v * (1.3 * r / g.norm(v))  # angle 1.3 rad
    y = g.expmap(w, v, r)
    assert float(g.dist(w, y, r)) == pytest.approx(1.3 * r, rel=1e-12)
    assert torch.allclose(g.logmap(w, y, r), v, atol=1e-10)


def test_tiny_step_uses_retraction_without_nan():
    w = _point((3, 3), 1.0, torch.float64)
    out = g.expmap(w, torch.zeros_like(w), 1.0)
    assert torch.equal(out, w)


def test_is_on_sphere_explains():
    w = _point((3, 3), 1.0, torch.float64) * 1.01
    ok, why = g.is_on_sphere(w, 1.0, explain=True)
    assert not ok and "‖W‖_F" in why


def test_projx_rejects_zero_and_nan():
    with pytest.raises(ValueError, match="re-initialise"):
        g.projx(torch.zeros(2, 2), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        g.projx(torch.full((2, 2), float("nan")), 1.0)


def test_batched_length_mismatch():
    with pytest.raises(ValueError, match="one radius per layer"):
        g.proju_all([torch.ones(2, 2)], [torch.ones(2, 2)], [1.0, 2.0])
