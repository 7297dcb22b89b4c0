"""Product bounds: ∏ ‖W_k‖₂ · ∏ Lip(σ_k), and the Frobenius (by-construction) bound.

For f = W_ℓ ∘ σ_ℓ ∘ … ∘ σ_1 ∘ W_0 (biases do not change Lipschitz constants),

    Lip(f) ≤ ∏_k ‖W_k‖₂ · ∏_k Lip(σ_k) ≤ ∏_k ‖W_k‖_F · ∏_k Lip(σ_k),

with Lip(σ) = max(|α|, |β|) for an elementwise activation of slope class [α, β] and 1 for
GroupSort. The Frobenius product is what a :class:`~certnet.nn.NormalizedMLP` guarantees by
construction (‖W_k‖_F = r_k); the spectral product is never larger, so it is the certificate and
the Frobenius figure is reported alongside in ``data``.

Round-off: LAPACK's largest singular value comes with no guaranteed bound, so each ‖W_k‖₂ is
*proved* (:func:`~certnet.verify.rounding.spectral_norm_up`: s² I − WᵀW ≻ 0 by a Cholesky
factorisation with Rump's margins, s a few ulps above σ̃_max); Frobenius norms and the products
are inflated by 8(n+1)·u for n roundings, which exceeds γ_n, so the certified value bounds the
exact one. Folding a scaling
that is not a power of two into W rounds each entry (relative error ≤ u); the bound e_k of
:func:`folded_with_errors` on ‖W_k − W̃_k‖_F is added to both norms of that layer.
"""

from __future__ import annotations

import math
import time

import numpy as np

from certnet.errors import CertificateError
from certnet.verify.certificate import Certificate, register_checker
from certnet.verify.rounding import frob_up, scale_err, spectral_norm_up

__all__ = ["product_bound", "product_certificate", "spectral_norms", "offset_norm", "check_derived"]

_U = np.finfo(np.float64).eps / 2


def _up(x: float, n: int) -> float:
    return float(x) * (1.0 + 8.0 * (n + 1) * _U)


def spectral_norms(weights) -> list[float]:
    """Proved upper bounds on ‖W_k‖₂ of every matrix (:func:`~certnet.verify.rounding.
    spectral_norm_up`: LAPACK's σ_max as the candidate, proved by a Cholesky factorisation
    with Rump's margins); 0 for an empty one."""
    return [spectral_norm_up(w) for w in weights]


def folded_with_errors(stack) -> tuple[list[np.ndarray], list[float]]:
    """(W̃_k, e_k): the folded weights as computed and e_k ≥ ‖W_k − W̃_k‖_F for the exact
    W_1 diag(s_in) and diag(s_out) W_L (0 unless a scaling is not a power of two)."""
    ws = [np.asarray(w, dtype=np.float64) for w in stack.weights]
    es: list = [None] * len(ws)
    ws[0], es[0] = scale_err(ws[0], es[0], stack.input_scale, axis=1)
    ws[-1], es[-1] = scale_err(ws[-1], es[-1], stack.output_scale, axis=0)
    return ws, [frob_up(e) for e in es]


def product_bound(stack) -> dict:
    """Per-layer spectral and Frobenius norms, activation constants and both products.

    Returns
    -------
    dict
        ``spectral`` and ``frobenius`` (lists, one per weight matrix, rounded up),
        ``act_lipschitz`` (one per hidden layer), ``product_spectral``, ``product_frobenius``.
    """
    ws, errs = folded_with_errors(stack)
    spec = [_up(n + e, 1) for n, e in zip(spectral_norms(ws), errs, strict=True)]
    frob = [_up(np.linalg.norm(w), w.size) + e for w, e in zip(ws, errs, strict=True)]
    acts = [float(a.lipschitz) for a in stack.activations]
    k = len(ws) + len(acts)
    return {
        "spectral": spec,
        "frobenius": frob,
        "act_lipschitz": acts,
        "product_spectral": _up(math.prod(spec) * math.prod(acts), k),
        "product_frobenius": _up(math.prod(frob) * math.prod(acts), k),
    }


def offset_norm(stack) -> float:
    """An upper bound on ‖f(0)‖₂ of the exact network (so ‖f(x)‖ ≤ L‖x‖ + it): the float64
    forward's norm plus a proved bound on its rounding
    (:func:`~certnet.nn.extract.forward_error_bound` with ``proven=True``), rounded up."""
    from certnet.nn.extract import forward_error_bound

    x = np.zeros((1, stack.widths[0]))
    y, err = forward_error_bound(stack, x, _U, proven=True)
    return _up(float(np.linalg.norm(y)) + float(np.max(err)), 3)


def check_derived(cert: Certificate, derived: dict) -> None:
    """Every entry of ``cert.data`` that the checker can re-derive (``derived``) must equal the
    re-derived value exactly (JSON-equal); a missing entry is fine (older files), a different
    one means the file says something the proof does not. Raises CertificateError."""
    import json

    def same(a, b) -> bool:
        return json.dumps(a, sort_keys=True, default=float) == json.dumps(
            b, sort_keys=True, default=float
        )

    from certnet.verify.certificate import _jsonable

    for key, value in derived.items():
        if key in cert.data and not same(_jsonable(cert.data[key]), _jsonable(value)):
            raise CertificateError(
                f"the certificate's data[{key!r}] differs from what the network gives; the file "
                "was tampered with or made for another network: re-run certnet verify"
            )


def common_derived(cert: Certificate, stack, product: float | None = None) -> dict:
    """What :func:`~certnet.verify.lipschitz.lipschitz` adds to every Lipschitz certificate:
    ``affine_gain`` (L, a bound on ‖f(0)‖₂) and ``product`` (the product bound; computed
    unless given)."""
    if product is None:
        product = product_certificate(stack).value
    return {
        "affine_gain": {"lipschitz": cert.value, "f0_norm": offset_norm(stack)},
        "product": product,
    }


def product_certificate(stack) -> Certificate:
    """``method="product"`` certificate: the spectral product (≤ the Frobenius one)."""
    t0 = time.perf_counter()
    b = product_bound(stack)
    return Certificate(
        kind="lipschitz",
        value=min(b["product_spectral"], b["product_frobenius"]),
        method="product",
        certified=True,
        norm="l2",
        multipliers={"spectral": b["spectral"]},
        data=b,
        solver={
            "name": "certnet.verify.rounding.spectral_norm_up",
            "status": "exact",
            "time": time.perf_counter() - t0,
        },
        fingerprint=stack.fingerprint(),
    )


@register_checker("lipschitz", "product", norm="l2")
def _check_product(cert: Certificate, stack, **context) -> float:
    if stack is None:
        raise CertificateError(
            "a 'product' certificate is re-verified against the weights: call cert.check(net)"
        )
    b = product_bound(stack)
    value = min(b["product_spectral"], b["product_frobenius"])
    check_derived(cert, {**b, **common_derived(cert, stack, value)})
    stored = cert.array("spectral")
    if stored.shape != (len(b["spectral"]),) or np.any(stored < np.asarray(b["spectral"])):
        raise CertificateError(
            "the stored spectral norms are smaller than the weights' norms; the certificate "
            "was tampered with or made for other weights"
        )
    return min(b["product_spectral"], b["product_frobenius"])
