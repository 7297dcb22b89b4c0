"""Interval arithmetic: every range contains every sampled value, rounding always moves outward."""

import math

import numpy as np
import pytest
import torch

from certnet.verify import interval as iv

RNG = np.random.default_rng(0)

_TORCH = {
    "exp": torch.exp,
    "log": torch.log,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "sin": torch.sin,
    "cos": torch.cos,
    "atan": torch.atan,
    "erf": torch.erf,
    "abs": torch.abs,
}


def _boxes(name, count=400):
    c = RNG.uniform(-6, 6, count) * 10.0 ** RNG.uniform(-3, 0.5, count)
    w = 10.0 ** RNG.uniform(-8, 1, count)
    lo, hi = c - w, c + w
    if name == "log":
        lo, hi = np.abs(c) + 1e-3, np.abs(c) + 1e-3 + w
    return lo, hi


@pytest.mark.parametrize("name", sorted(iv.FUNCTIONS))
def test_ranges_of_values_and_derivatives_contain_every_sample(name):
    lo, hi = _boxes(name)
    rng_v = iv.FUNCTIONS[name]((lo, hi))
    rng_d = iv.DERIVATIVES[name]((lo, hi))
    t = lo[:, None] + (hi - lo)[:, None] * np.concatenate(
        [np.zeros((len(lo), 1)), np.ones((len(lo), 1)), RNG.uniform(0, 1, (len(lo), 64))], 1
    )
    t = np.clip(t, lo[:, None], hi[:, None])  # lo + (hi − lo)·1 can round past hi
    x = torch.tensor(t, requires_grad=True)
    y = _TORCH[name](x)
    (g,) = torch.autograd.grad(y.sum(), x)
    y, g = y.detach().numpy(), g.numpy()
    assert np.all(rng_v[0][:, None] <= y) and np.all(y <= rng_v[1][:, None])
    assert np.all(rng_d[0][:, None] <= g + 1e-15) and np.all(g - 1e-15 <= rng_d[1][:, None])


def test_periodic_ranges_include_the_extremes_inside_the_interval():
    lo, hi = iv.FUNCTIONS["sin"]((np.array([1.0, -2.0, 0.0]), np.array([2.0, -1.0, 7.0])))
    assert hi[0] == 1.0 and lo[1] == -1.0 and (lo[2], hi[2]) == (-1.0, 1.0)
    lo, hi = iv.FUNCTIONS["cos"]((np.array([-0.1, 3.0]), np.array([0.1, 3.3])))
    assert hi[0] == 1.0 and lo[1] == -1.0


def test_outward_rounding_moves_at_least_one_ulp():
    x = RNG.standard_normal(10_000) * 10.0 ** RNG.uniform(-300, 300, 10_000)
    x = np.concatenate([x, [0.0, 5e-324, -5e-324, 2.0**-1022, 1.0, -2.0]])
    assert np.all(iv.up(x) >= np.nextafter(x, np.inf))
    assert np.all(iv.down(x) <= np.nextafter(x, -np.inf))
    assert iv.up(np.array([np.inf]))[0] == np.inf and iv.down(np.array([-np.inf]))[0] == -np.inf


def test_products_and_sums_contain_the_exact_result():
    from fractions import Fraction

    a = (np.array([0.1, -3.0, -1e-300]), np.array([0.3, 2.0, 1e-300]))
    b = (np.array([0.7, -0.5, 1e300]), np.array([0.9, 0.25, 2e300]))
    lo, hi = iv.mul(a, b)
    for k in range(3):
        corners = [Fraction(p) * Fraction(q) for p in (a[0][k], a[1][k])
                   for q in (b[0][k], b[1][k])]
        assert Fraction(lo[k]) <= min(corners) and max(corners) <= Fraction(hi[k])
    w = RNG.standard_normal((5, 40))
    m = RNG.standard_normal((3, 40))
    lo, hi = iv.matmul_const((m, m), w)
    exact = [[sum(Fraction(x) * Fraction(y) for x, y in zip(m[i], w[j])) for j in range(5)]
             for i in range(3)]
    assert all(Fraction(lo[i, j]) <= exact[i][j] <= Fraction(hi[i, j])
               for i in range(3) for j in range(5))


def test_overflow_leaves_lower_ends_finite():
    # a finite real above the largest float: its lower end must stay finite, else a later
    # multiplication by a tiny factor would give a lower bound of +inf (unsound)
    big = iv.mul((np.array([1e300]), np.array([2e300])), (np.array([1e300]), np.array([1e300])))
    inv = iv.recip((np.array([1e-310]), np.array([2e-310])))
    neg = iv.mul((np.array([-2e300]), np.array([-1e300])), (np.array([1e300]), np.array([1e300])))
    for lo, hi in (big, inv):
        assert np.isfinite(lo[0]) and hi[0] == np.inf
    assert neg[0][0] == -np.inf and np.isfinite(neg[1][0])
    lo, hi = iv.mul(big, (np.array([1e-300]), np.array([1e-300])))
    assert lo[0] <= 1e300 and hi[0] == np.inf


def test_undefined_operations_are_unbounded_and_named():
    iv.unbounded(clear=True)
    lo, hi = iv.recip((np.array([-1.0, 1.0]), np.array([1.0, 2.0])))
    assert lo[0] == -np.inf and hi[0] == np.inf and 0.5 >= lo[1] > 0.49
    lo, hi = iv.FUNCTIONS["log"]((np.array([-1.0]), np.array([1.0])))
    assert lo[0] == -np.inf
    lo, hi = iv.sqrt((np.array([-1.0]), np.array([1.0])))
    assert hi[0] == np.inf
    names = iv.unbounded(clear=True)
    assert any("contains 0" in s for s in names) and any("logarithm" in s for s in names)
    assert any("square root" in s for s in names) and iv.unbounded() == []


def test_square_is_tight_at_zero():
    lo, hi = iv.square((np.array([-2.0, 1.0, -3.0]), np.array([1.0, 2.0, -1.0])))
    assert lo[0] == 0.0 and hi[0] >= 4.0 and lo[1] <= 1.0 and lo[2] <= 1.0 <= hi[2] / 9
    assert math.isclose(hi[1], 4.0, rel_tol=1e-15)
