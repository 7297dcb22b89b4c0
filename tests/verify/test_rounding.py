from fractions import Fraction

import numpy as np

from certnet.verify.rounding import dot2, frob_up, matmul_err, scale_err


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
