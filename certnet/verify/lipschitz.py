"""``lipschitz(net, method=...)``: a certified ℓ2 Lipschitz bound of a network.

Methods (tightest first; all hold for every bias value, and in the user's units because the
input/output scalings are folded into the weights):

=================  ==============================================================  =========
method             what proves the bound                                            cost
=================  ==============================================================  =========
``fast``           LipSDP-Neuron multipliers found by :mod:`certnet.verify.fast`    Σ n_k³ per
                   (no SDP solver), re-proved by Schur complement + Cholesky        iteration
``lipsdp-neuron``  LipSDP-Neuron in cvxpy (CVXOPT / SCS), re-proved likewise        O(N⁴)/iter
``lipsdp-layer``   LipSDP-Layer (one multiplier per layer) in cvxpy                 cheaper
``product``        ∏‖W_k‖₂ · ∏ Lip(σ_k) (exact SVDs); any activation, GroupSort     instant
=================  ==============================================================  =========

``auto`` uses "product" for GroupSort nets (no slope class) and "fast" otherwise.

The SDP methods first reduce the net exactly (:mod:`certnet.verify.reduce`: dead neurons
dropped, bit-identical neurons merged — so for a net with duplicated neurons the bound holds
for every bias that keeps them equal — ReLU neurons rebalanced by powers of two) and add a
proved bound on the rounding of folding scalings and multiplying out identity layers
(:func:`certnet.verify.lmi.rounding_inflation`). An SDP certificate looser than the product
bound is never returned: the product certificate is, with ``data["looser"]`` saying so; the
same when ``fast``'s multipliers prove nothing (e.g. per-neuron scales 1e±8 under tanh).
"""

from __future__ import annotations

import dataclasses
import math
import time

from certnet.errors import CertificateError
from certnet.nn.extract import extract_layers
from certnet.verify.certificate import Certificate
from certnet.verify.fast import optimize_multipliers
from certnet.verify.lipsdp import lipsdp
from certnet.verify.lmi import lmi_certificate, slope_net
from certnet.verify.product import offset_norm, product_certificate

__all__ = ["lipschitz", "METHODS"]

METHODS = ("auto", "fast", "lipsdp-neuron", "lipsdp-layer", "product")


def _fast(stack, time_budget: float | None, max_iter: int, max_memory: float) -> Certificate:
    net = slope_net(stack, "fast")
    nn_, s = net.normalized()
    p2 = [1.0]
    for sk in s:
        p2.append(p2[-1] * sk * sk)
    th, info = optimize_multipliers(
        nn_, time_budget=time_budget, max_iter=max_iter, max_memory=max_memory
    )
    ts = [t * (p2[-1] / p2[k + 1]) for k, t in enumerate(th)]
    solver = {"name": "certnet.fast (primal-dual HKM predictor-corrector)", **info}
    return lmi_certificate(stack, "fast", ts, solver=solver, margin=0.0)


def _product_instead(stack, t0: float, method: str, value: float, solver: dict, note: str):
    """The product certificate, with ``data["looser"]`` saying which method was asked for and
    what it gave (a larger value, or a failure)."""
    prod = product_certificate(stack)
    data = dict(prod.data)
    f0 = offset_norm(stack)
    data["affine_gain"] = {"lipschitz": prod.value, "f0_norm": f0}
    data["product"] = prod.value
    data["wall_time"] = time.perf_counter() - t0
    data["looser"] = {"method": method, "value": value, "solver": solver, "note": note}
    return dataclasses.replace(prod, data=data)


def lipschitz(
    net,
    method: str = "fast",
    *,
    solver: str | None = None,
    time_budget: float | None = None,
    max_iter: int = 300,
    max_memory: float = 4e9,
) -> Certificate:
    """Certified upper bound on the ℓ2 → ℓ2 Lipschitz constant of ``net``.

    ‖f(x) − f(y)‖₂ ≤ L ‖x − y‖₂ for all x, y and for every value of the biases; multi-output
    nets use the ℓ2 operator norm. ``data["affine_gain"]`` holds (L, ‖f(0)‖₂), so that
    ‖f(x)‖₂ ≤ L‖x‖₂ + ‖f(0)‖₂.

    Parameters
    ----------
    net : NormalizedMLP, nn.Sequential or LayerStack
    method : {"fast", "auto", "lipsdp-neuron", "lipsdp-layer", "product"}
    solver : {"CVXOPT", "SCS"}, optional
        For the lipsdp methods (default by size).
    time_budget : float, optional
        A cap in seconds for the "fast" optimiser, for users who need one; it then stops with
        the best multipliers so far (still a proved bound) and says so in
        ``solver["status"]``. Default None: it stops on its tolerance or ``max_iter`` only, so
        the certified value does not depend on the machine's load.
    max_iter : int
        Interior-point iterations allowed to the "fast" optimiser (it typically converges in
        7–25).
    max_memory : float
        Bytes; lipsdp and fast problems estimated larger are refused (ProblemTooLargeError).

    Returns
    -------
    Certificate
        ``kind="lipschitz"``, ``norm="l2"``; ``check(net)`` re-proves it in float64. If the
        requested SDP method proves a larger value than the product bound (e.g. stopped by
        ``time_budget``), the product certificate is returned instead (``method="product"``,
        ``data["looser"]`` holds the method asked for, its value and solver status); also
        when "fast" finds no multipliers that prove a bound (value ``inf`` in ``looser``).

    Raises
    ------
    ValueError
        Unknown method; an SDP method on a net with GroupSort.
    TypeError
        A network certnet cannot read (the message names the layer).
    ProblemTooLargeError
        A lipsdp or fast problem above ``max_memory``.

    Examples
    --------
    >>> import certnet as cn
    >>> from certnet.verify import lipschitz
    >>> cert = lipschitz(cn.nn.NormalizedMLP([2, 16, 1], seed=0))
    >>> cert.check(cn.nn.NormalizedMLP([2, 16, 1], seed=0)) <= cert.value
    True
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    stack = extract_layers(net)
    t0 = time.perf_counter()
    if method == "auto":
        method = "fast" if all(a.elementwise for a in stack.activations) else "product"
    if method == "product":
        cert = product_certificate(stack)
    elif method == "fast":
        try:
            cert = _fast(stack, time_budget, max_iter, max_memory)
        except CertificateError as exc:  # its multipliers prove nothing: the product bound
            return _product_instead(stack, t0, "fast", math.inf, {}, f"fast failed: {exc}")
    else:
        cert = lipsdp(stack, method.split("-")[1], solver=solver, max_memory=max_memory)
    f0 = offset_norm(stack)
    data = dict(cert.data)
    data["affine_gain"] = {"lipschitz": cert.value, "f0_norm": f0}
    data["wall_time"] = time.perf_counter() - t0
    if cert.method != "product":
        prod = product_certificate(stack)
        data["product"] = prod.value
        if prod.value < cert.value:  # never return a bound looser than one we hold
            note = (
                f"{cert.method} proved {cert.value!r}, looser than the product bound; the "
                "product certificate is returned"
            )
            return _product_instead(stack, t0, cert.method, cert.value, cert.solver, note)
    return dataclasses.replace(cert, data=data)
