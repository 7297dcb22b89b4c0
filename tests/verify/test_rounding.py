from fractions import Fraction

import numpy as np
import pytest

from certnet.verify.rounding import dot2, frob_up, matmul_err, scale_err, spectral_norm_up


def _exact_product(a, b):
    return [
        [
            sum(Fraction(a[i, k]) * Fraction(b[k, j]) for k in range(a.shape[1]))
            for j in range(b.shape[1])
        ]
        for i in range(a.shape[0])
    ]


def test_dot2_recovers_a_cancelling_product_exactly():
    a, b = np.array([[1.0, 1.0, 1.0]]), np.array([[1e16], [1.0], [-1e16]])
    assert (a @ b)[0, 0] == 0.0  # what plain float64 gives
    p, d = dot2(a, b)
    assert p[0, 0] == 1.0 and d[0, 0] < 1e-14


def test_matmul_error_bound_holds_against_exact_arithmetic():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.normal(size=(3, 5)) * 10.0 ** rng.integers(-8, 8, size=(3, 5))
        b = rng.normal(size=(5, 4)) * 10.0 ** rng.integers(-8, 8, size=(5, 4))
        ea = np.abs(a) * 1e-10
        p, e = matmul_err(a, ea, b, None)
        ex = _exact_product(a, b)
        for i in range(3):
            for j in range(4):
                # exact (a + δ) b with the worst δ = ±ea is within ex ± (ea |b|)
                slack = sum(Fraction(ea[i, k]) * abs(Fraction(b[k, j])) for k in range(5))
                assert abs(ex[i][j] - Fraction(p[i, j])) + slack <= Fraction(e[i, j])


def test_scale_err_is_exact_for_powers_of_two_and_bounded_otherwise():
    w = np.array([[0.1, 3.0], [-7.0, 1e-3]])
    r, e = scale_err(w, None, np.array([0.5, 4.0]), axis=1)
    assert e is None and np.array_equal(r, w * np.array([0.5, 4.0]))
    s = np.array([0.1, 3.3])
    r, e = scale_err(w, None, s, axis=1)
    for i in range(2):
        for j in range(2):
            err = abs(Fraction(w[i, j]) * Fraction(s[j]) - Fraction(r[i, j]))
            assert err <= Fraction(e[i, j])
    assert frob_up(e) >= np.linalg.norm(e) > 0


@pytest.mark.parametrize(
    "shape,scale",
    [((1, 1), 1.0), ((4, 1), 2.0**-10), ((1, 7), 2.0**17), ((9, 9), 1.0), ((40, 13), 2.0**660)],
)
def test_spectral_norm_up_bounds_the_exact_norm_and_stays_within_a_few_ulps(shape, scale):
    # powers of two: W·scale is exact, so the bound is about the integer matrix W
    rng = np.random.default_rng(sum(shape))
    w = rng.integers(-7, 8, shape).astype(np.float64)
    s = spectral_norm_up(w * scale) / scale
    # the exact ‖W‖₂² is an eigenvalue of the integer matrix WᵀW: its characteristic
    # polynomial is positive above the largest root, so p(s²) > 0 with s² above all of them
    g = [[Fraction(int(v)) for v in row] for row in (w.T @ w if shape[0] >= shape[1] else w @ w.T)]
    exact_top = float(np.linalg.eigvalsh(np.array(g, dtype=np.float64))[-1])
    t = Fraction(s) ** 2
    # s² − G is positive definite ⇔ all leading principal minors > 0 (exact rationals)
    m = [[(t if i == j else 0) - g[i][j] for j in range(len(g))] for i in range(len(g))]
    assert all(_det([row[:n] for row in m[:n]]) > 0 for n in range(1, len(m) + 1))
    assert s <= np.sqrt(exact_top) * (1 + 1e-12)


def _det(m):
    """Exact determinant by fraction-free Gaussian elimination."""
    m = [row[:] for row in m]
    n, det = len(m), Fraction(1)
    for i in range(n):
        piv = next((r for r in range(i, n) if m[r][i] != 0), None)
        if piv is None:
            return Fraction(0)
        if piv != i:
            m[i], m[piv], det = m[piv], m[i], -det
        det *= m[i][i]
        for r in range(i + 1, n):
            f = m[r][i] / m[i][i]
            m[r] = [a - f * b for a, b in zip(m[r], m[i], strict=True)]
    return det


def test_spectral_norm_up_survives_extreme_scales_and_rank_one():
    assert spectral_norm_up(np.diag([1e-300, 1e300])) >= 1e300
    assert spectral_norm_up(np.zeros((3, 2))) == 0.0
    w = np.outer([3.0, 4.0], [1.0, 2.0, 2.0])  # ‖W‖₂ = 5 · 3 exactly
    assert 15.0 <= spectral_norm_up(w) <= 15.0 * (1 + 1e-14)
