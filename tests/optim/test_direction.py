import math

import pytest
import torch

from certnet.geometry import inner, proju
from certnet.optim import MM, AutoNewton
from certnet.optim.direction import MEMORY, record_step, search_direction
from certnet.optim.mm import fitted_kappa


def _flat(parts):
    """A list of per-layer tensors as one flat float64 vector (the memory's layout)."""
    return torch.cat([v.reshape(-1) for v in parts]).double()


def _grads(net, X, Y):
    loss = ((net(X) - Y) ** 2).mean()
    params = [lin.point for lin in net.linears] + [lin.bias for lin in net.linears]
    raw = torch.autograd.grad(loss, params)
    n = len(net.linears)
    gw = [proju(lin.point.detach(), g, lin.radius) for lin, g in zip(net.linears, raw[:n])]
    return gw, list(raw[n:])


@pytest.mark.parametrize("kind", ["lbfgs", "gradient"])
def test_direction_has_unit_total_angle_and_descends(problem, kind):
    X, Y, make, _ = problem
    net = make(radii=[0.5, 2.0, 3.0])
    gw, gb = _grads(net, X, Y)
    d = search_direction(net.linears, gw, gb, {}, kind)
    sizes = [
        math.sqrt(float(inner(dw, dw)) + float(inner(db, db))) / lin.radius
        for lin, dw, db in zip(net.linears, d.dw, d.db)
    ]
    assert sum(sizes) == pytest.approx(1.0, rel=1e-12)
    slope = -sum(float(inner(g, v)) + float(inner(h, e)) for g, v, h, e in zip(gw, d.dw, gb, d.db))
    assert d.slope == pytest.approx(slope, rel=1e-12) and d.slope > 0
    turns = [float(dw.norm()) / lin.radius for lin, dw in zip(net.linears, d.dw)]
    assert d.turn == pytest.approx(max(turns), rel=1e-12)
    for lin, dw in zip(net.linears, d.dw):  # tangent to the sphere
        assert abs(float(inner(lin.point.detach(), dw))) < 1e-12 * lin.radius


def test_gradient_direction_is_angle_steepest_descent(problem):
    """Without memory, D_k ∝ −r_k² g_k and d_k ∝ −r_k² h_k with one constant for all layers."""
    X, Y, make, _ = problem
    net = make(radii=[0.5, 2.0, 3.0])
    gw, gb = _grads(net, X, Y)
    memory: dict = {}
    d = search_direction(net.linears, gw, gb, memory, "gradient")
    assert memory == {}
    ratios = [
        float(inner(dw, g)) / (lin.radius**2 * float(inner(g, g)))
        for lin, dw, g in zip(net.linears, d.dw, gw)
    ]
    ratios += [
        float(inner(db, h)) / (lin.radius**2 * float(inner(h, h)))
        for lin, db, h in zip(net.linears, d.db, gb)
    ]
    assert all(r < 0 for r in ratios)
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-10)


def test_two_loop_recursion_satisfies_the_secant_equation(problem):
    """With one stored pair (s, y), BFGS's H maps y to s: a gradient equal to y gives P ∝ −s."""
    X, Y, make, _ = problem
    net = make(radii=[0.5, 2.0, 3.0])
    g = torch.Generator().manual_seed(3)
    units = [lin.point.detach() / lin.radius for lin in net.linears]

    def tangent_flat():
        pts = [proju(u, torch.randn(u.shape, generator=g, dtype=u.dtype), 1.0) for u in units]
        return pts + [
            torch.randn(lin.out_features, generator=g, dtype=X.dtype) for lin in net.linears
        ]

    s, y = tangent_flat(), tangent_flat()
    y = [a + b for a, b in zip(s, y)]  # ⟨s, y⟩ > 0 almost surely
    assert sum(float(inner(a, b)) for a, b in zip(s, y)) > 0
    n = len(units)
    gw = [v / lin.radius for lin, v in zip(net.linears, y[:n])]
    gb = [v / lin.radius for lin, v in zip(net.linears, y[n:])]
    d = search_direction(net.linears, gw, gb, {"s": [_flat(s)], "y": [_flat(y)]}, "lbfgs")
    assert d.pairs == 1
    got = [dw / lin.radius for lin, dw in zip(net.linears, d.dw)]
    got += [db / lin.radius for lin, db in zip(net.linears, d.db)]
    scale = sum(float(inner(a, b)) for a, b in zip(got, s)) / sum(float(inner(a, a)) for a in s)
    assert scale < 0
    for a, b in zip(got, s):
        torch.testing.assert_close(a, scale * b, rtol=1e-9, atol=1e-12)


def test_pairs_without_positive_curvature_are_not_stored(problem):
    X, Y, make, _ = problem
    net = make()
    gw, gb = _grads(net, X, Y)
    memory: dict = {}
    search_direction(net.linears, gw, gb, memory)
    record_step(memory, 0.1)
    # the same gradient again: y = 0, ⟨s, y⟩ = 0, so no pair is formed
    search_direction(net.linears, gw, gb, memory)
    assert memory["s"] == [] and "pending" in memory
    record_step(memory, 0.0)  # no step taken: the memory is dropped
    assert memory == {}


def test_memory_is_bounded_and_restart_clears_it(problem):
    X, Y, make, closure_for = problem
    net = make()
    opt = MM(net)
    for _ in range(3 * MEMORY):
        opt.step(closure_for(net))
    memory = opt.state[net.linears[0].point]["memory"]
    assert 1 <= len(memory["s"]) <= MEMORY and len(memory["s"]) == len(memory["y"])
    assert opt.state[net.linears[0].point]["last"]["pairs"] >= 1
    opt.restart()
    assert "memory" not in opt.state[net.linears[0].point]


@pytest.mark.parametrize("cls", [MM, AutoNewton])
def test_lbfgs_beats_steepest_descent_on_an_ill_conditioned_regression(cls):
    """A linear target on inputs with scales 1…30 (condition number ~10³): at equal steps the
    L-BFGS direction reaches a loss at least 2× lower than the gradient direction."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 4, generator=g, dtype=torch.float64) * torch.tensor([1.0, 3.0, 10.0, 30.0])
    Y = X @ torch.tensor([[0.5], [-0.2], [0.05], [0.01]], dtype=torch.float64)
    final = {}
    for direction in ("lbfgs", "gradient"):
        from certnet.nn import NormalizedMLP

        net = NormalizedMLP([4, 16, 1], radii=2.0, dtype=torch.float64, seed=0)
        opt = cls(net, direction=direction)
        for _ in range(60):
            opt.step(lambda net=net: ((net(X) - Y) ** 2).mean())
        with torch.no_grad():
            final[direction] = float(((net(X) - Y) ** 2).mean())
    assert final["lbfgs"] < 0.5 * final["gradient"]


def test_mm_carries_the_fitted_kappa_of_the_accepted_step(problem):
    X, Y, make, closure_for = problem
    net = make(radii=2.0)
    opt = MM(net)
    closure = closure_for(net)
    for _ in range(3):
        phi0 = float(opt.step(closure))
        st = opt.state[net.linears[0].point]
        with torch.no_grad():
            phi = float(closure())
        fit = fitted_kappa(st["last"]["eta"], phi, phi0, st["last"]["G"])
        if fit > 0:
            assert st["kappa"] == pytest.approx(fit, rel=1e-8)


@pytest.mark.parametrize("cls", [MM, AutoNewton])
def test_unknown_direction_is_refused(problem, cls):
    _, _, make, _ = problem
    with pytest.raises(ValueError, match="lbfgs, gradient"):
        cls(make(), direction="adam")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pairs_with_unresolved_curvature_are_dropped(dtype):
    """Steps at the dtype's resolution: ⟨s, y⟩ is round-off, so the pair is not used (no
    division by a zero curvature, the direction stays finite and descends)."""
    from certnet.nn import NormalizedMLP

    net = NormalizedMLP([3, 8, 1], radii=1.0, dtype=dtype, seed=0)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(64, 3, generator=g, dtype=dtype)
    gw, gb = _grads(net, X, torch.sin(X[:, :1]))
    units = [lin.point.detach() / lin.radius for lin in net.linears]
    s = [proju(u, torch.randn(u.shape, generator=g, dtype=dtype), 1.0) * 1e-12 for u in units]
    s += [torch.zeros(lin.out_features, dtype=dtype) for lin in net.linears]
    r = [proju(u, torch.randn(u.shape, generator=g, dtype=dtype), 1.0) for u in units]
    r += [torch.zeros_like(v) for v in s[len(units) :]]
    c = sum(float(inner(a, b)) for a, b in zip(s, r)) / sum(float(inner(a, a)) for a in s)
    y = [b - c * a for a, b in zip(s, r)]  # ⟨s, y⟩ = 0 up to round-off: no curvature seen
    memory = {"s": [_flat(s)], "y": [_flat(y)]}
    d = search_direction(net.linears, gw, gb, memory, "lbfgs")
    assert d.pairs == 0 and memory["s"] == []
    assert d.slope > 0 and all(bool(torch.isfinite(v).all()) for v in d.dw)
