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

With ``region=`` the bound is *local*: ‖f(x) − f(y)‖₂ ≤ L‖x − y‖₂ for x, y in a box, proved by
LipSDP-Neuron with per-neuron slope classes from interval bound propagation over the box
(:mod:`certnet.verify.local`; methods "fast-local", "lipsdp-neuron-local"), never larger than
the global certificate (embedded when it is the smaller), with an attained lower bound in
``data["interval"]`` and optional refinement by bisection (``gap=``).

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
from certnet.verify.local import as_box, local_lipschitz, region_bounds  # registers checkers
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
    region=None,
    gap: float | None = None,
    max_splits: int = 64,
    progress: bool = False,
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
    region : optional
        A box in the user's input units: ``(lo, hi)`` (arrays of shape (d_0,)) or
        ``{"centre": c, "half_widths": r}`` (r scalar or array ≥ 0; enclosed outward). The
        certificate then bounds ‖f(x) − f(y)‖₂ ≤ L‖x − y‖₂ for x, y *in the box* (method
        "fast" or "auto" → "fast-local", "lipsdp-neuron" → "lipsdp-neuron-local"); it is the
        smaller of the local bound and the global one of ``method`` (the global certificate is
        then embedded and re-checked), ``data["interval"]`` = [attained lower bound on the box,
        value], ``data["region"]`` = the box, ``data["slopes"]`` = the neurons' slope classes
        on it (for information: ``check`` re-derives them). Ellipsoids: pass their bounding
        box (a bound on the box holds on every subset).
    gap : float, optional
        With ``region``: bisect the region (the piece of largest bound, along its widest input
        in the network's scaled units) until value ≤ (1 + gap)·lower or ``max_splits`` splits
        are used. The maximum over the pieces is a bound on the whole box because the box is
        convex: a segment [x, y] crosses the pieces in sub-segments, and the triangle
        inequality gives ‖f(x) − f(y)‖ ≤ Σ_j L_j ‖segment_j‖ ≤ max_j L_j ‖x − y‖.
    max_splits : int
        Split budget of the refinement (counts only: never wall time).
    progress : bool
        Show a rich progress bar during the refinement.

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
        Unknown method; an SDP method on a net with GroupSort; with ``region``: a malformed
        region (NaN/inf, wrong shape, lo > hi), a method other than fast / auto /
        lipsdp-neuron, a bad ``gap`` or ``max_splits``.
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
    if region is not None:
        if method not in ("auto", "fast", "lipsdp-neuron"):
            raise ValueError(
                f"a local certificate (region=...) is proved with per-neuron slopes by "
                f"'fast' or 'lipsdp-neuron', not {method!r}; pass method='fast'"
            )
        box = as_box(region, stack.widths[0])  # refuse a bad region before any work
        region_bounds(stack, *box)  # and GroupSort, by name
        method = "fast" if method == "auto" else method
        glob = lipschitz(
            stack, method, solver=solver, time_budget=time_budget, max_iter=max_iter,
            max_memory=max_memory,
        )
        return local_lipschitz(
            stack, box, method, global_cert=glob, gap=gap, max_splits=max_splits,
            max_iter=max_iter, solver=solver, progress=progress,
        )
    if gap is not None:
        raise ValueError("gap= refines a local certificate: give region=(lo, hi) as well")
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
