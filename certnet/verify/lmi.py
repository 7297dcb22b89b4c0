"""The LipSDP matrix inequality in float64 numpy, and its rigorous re-check.

Network (biases dropped: the bound holds for every bias)::

    x_k = σ_k(W_{k−1} x_{k−1} + b_{k−1}),  k = 1 … ℓ;     f(x_0) = W_ℓ x_ℓ + b_ℓ,

with σ_k slope-restricted on [α_k, β_k]. For each hidden neuron i, with Δz the change of its
pre-activation and Δw that of its output, (Δw − αΔz)(βΔz − Δw) ≥ 0. Weighting these by
multipliers t ≥ 0 and adding ‖Δf‖² − ρ‖Δx_0‖² gives, for v = [Δx_0; Δx_1; …; Δx_ℓ],

    M(ρ, t) = block-tridiagonal, with
      M_{00}   = −ρ I − 2 W_0ᵀ diag(α_1β_1 t_1) W_0
      M_{kk}   = −2 diag(t_k) − 2 W_kᵀ diag(α_{k+1}β_{k+1} t_{k+1}) W_k      (0 < k < ℓ)
      M_{ℓℓ}   = −2 diag(t_ℓ) + W_ℓᵀ W_ℓ
      M_{k−1,k} = (α_k + β_k) W_{k−1}ᵀ diag(t_k)

and M(ρ, t) ⪯ 0 implies ‖f(x) − f(y)‖ ≤ √ρ ‖x − y‖ (S-procedure; Fazlyab et al. 2019). The
−2αβ terms matter when α < 0 (a sector that is not in [0, ∞)).

For fixed t with hidden block C(t) ≺ 0, the smallest feasible ρ is the Schur complement value

    ρ*(t) = λ_max(P − Q C⁻¹ Qᵀ),   M(0, t) = [[P, Q], [Qᵀ, C]]  split after the input block,

so *any* t ≥ 0 with C(t) ≺ 0 proves a bound for the computed weights W̃ (after the exact
reduction of :mod:`certnet.verify.reduce`); the certified value adds
:func:`rounding_inflation`, the proved effect of W − W̃ (folded scalings, multiplied-out
identity layers, merged duplicate columns), so it bounds the exact network.
:func:`certify_rho` recomputes ρ from t alone and proves M(ρ, t) ⪯ 0 by a floating-point
Cholesky factorisation with Rump's (2006) round-off margin plus margins for forming M and for
the diagonal shifts. All work is done on weights rescaled by exact powers of two (so no
rounding is added); ρ and t are stored in the user's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla

from certnet.errors import CertificateError
from certnet.verify.certificate import Certificate, register_checker
from certnet.verify.product import check_derived, common_derived, spectral_norms
from certnet.verify.reduce import reduce_layers
from certnet.verify.rounding import frob_up, matmul_err, scale_err, up

__all__ = [
    "SlopeNet",
    "slope_net",
    "assemble",
    "certify_rho",
    "sqrt_up",
    "rounding_inflation",
    "perturbation_margin",
    "lip_of",
    "certified_value",
    "lmi_certificate",
]

_U = np.finfo(np.float64).eps / 2  # unit round-off


@dataclass(frozen=True)
class SlopeNet:
    """Folded weights and per-layer slope classes: all LipSDP needs.

    Attributes
    ----------
    ws : tuple of ndarray
        W̃_0 … W̃_ℓ: the float64 weights the LMI is proved for (scalings folded in, identity
        layers multiplied out, dead and duplicated neurons removed).
    alpha, beta : tuple of (float or ndarray)
        Slope bounds of hidden layers 1 … ℓ: one float per layer (the activation's class, for
        every input), or one array of shape (n_k,) per layer holding each neuron's class
        [α_i, β_i] (a local certificate: valid on a region, :mod:`certnet.verify.local`).
    names : tuple of str
        Activation names (for messages).
    errs : tuple of float
        e_k ≥ ‖W_k − W̃_k‖₂, W_k the exact matrix of the user's network (0: computed exactly);
        empty means all 0. See :func:`rounding_inflation`.
    reduction : dict
        What :func:`~certnet.verify.reduce.reduce_layers` and the rescaling did (stored in the
        certificate and compared by the checker).
    local : bool
        True when the slopes hold only on a region (computed with the biases): the bias-shift
        argument of :func:`rounding_inflation` then fails, so the rounding ``errs`` are instead
        covered inside the matrix inequality (:func:`perturbation_margin`, used by
        :func:`certify_rho`) and :func:`certified_value` adds no inflation.
    """

    ws: tuple[np.ndarray, ...]
    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    names: tuple[str, ...]
    errs: tuple[float, ...] = ()
    reduction: dict = field(default_factory=dict)
    local: bool = False

    @property
    def widths(self) -> list[int]:
        return [self.ws[0].shape[1]] + [w.shape[0] for w in self.ws]

    @property
    def hidden(self) -> list[int]:
        """[n_1, …, n_ℓ]."""
        return [w.shape[0] for w in self.ws[:-1]]

    def pow2_scales(self) -> list[float]:
        """s_k = 2^round(log2 ‖W_k‖₂): exact rescaling that makes every layer O(1)."""
        out = []
        for w in self.ws:
            n = np.linalg.norm(w, 2) if w.size else 0.0
            out.append(2.0 ** round(math.log2(n)) if n > 0 else 1.0)
        return out

    def normalized(self) -> tuple[SlopeNet, list[float]]:
        """(this net with W_k / s_k, [s_k]); exact in floating point."""
        s = self.pow2_scales()
        ws = tuple(w / sk for w, sk in zip(self.ws, s, strict=True))
        errs = tuple(e / sk for e, sk in zip(self.errs, s, strict=False))
        out = SlopeNet(ws, self.alpha, self.beta, self.names, errs, self.reduction, self.local)
        return out, s


_HOMOGENEOUS = ("relu", "leaky_relu")  # σ(cz) = cσ(z) for c > 0


def _rebalance(ws: list, es: list, names: list) -> int:
    """Move a power-of-two scale c_i ≈ √(‖col_i‖/‖row_i‖) from each positively homogeneous
    neuron's outgoing column to its incoming row (σ(c z) = c σ(z), c > 0): the same map and,
    for LipSDP-Neuron, the same bound (t_i absorbs c_i²), but every neuron at a like scale, so
    the solvers see no 1e±10 spread. Exact: skipped for a neuron whose scaled entries would
    leave the normal range. LipSDP-Layer is not invariant under it, but it stays a valid bound
    on the same map (measured: 2.7e19× → 1.0× the lower bound on a net with 1e±10 rows).
    Returns the number of neurons rescaled; edits in place."""
    count = 0
    for k, name in enumerate(names):
        if name not in _HOMOGENEOUS:
            continue
        w_in, w_out = ws[k], ws[k + 1]
        rn, cn = np.linalg.norm(w_in, axis=1), np.linalg.norm(w_out, axis=0)
        ok = (rn > 0) & (cn > 0)
        ex = np.zeros(rn.shape, dtype=int)
        ex[ok] = np.round(0.5 * (np.log2(cn[ok]) - np.log2(rn[ok]))).astype(int)
        ex = np.clip(ex, -900, 900)
        if not ex.any():
            continue
        c = np.ldexp(1.0, ex)
        new_in, new_out = w_in * c[:, None], w_out / c[None, :]

        def fine(a, b):
            return ((np.abs(a) >= 2.0**-1022) & np.isfinite(a)) | (b == 0)

        good = fine(new_in, w_in).all(axis=1) & fine(new_out, w_out).all(axis=0)
        c = np.where(good, c, 1.0)
        ws[k], ws[k + 1] = w_in * c[:, None], w_out / c[None, :]
        for j, sc in ((k, c[:, None]), (k + 1, 1.0 / c[None, :])):
            if es[j] is not None:
                es[j] = np.where(es[j] > 0, np.nextafter(es[j] * sc, np.inf), 0.0)
        count += int(np.count_nonzero(c != 1.0))
    return count


def slope_net(stack, method: str, slopes=None, min_width: float = 0.0) -> SlopeNet:
    """The :class:`SlopeNet` of a LayerStack; refuses activations with no slope class.

    ``slopes``, optional: per hidden layer of the *original* network a pair (α, β) of arrays
    of shape (n_k,), each neuron's slope class on a region (from
    :func:`certnet.verify.local.region_slopes`). The net is then local (``local=True``), a
    neuron with α_i = β_i = 0 is one whose activation is identically 0 on the region (its
    outgoing column is zeroed, so step 1 drops it: the same map on the region), a layer whose
    neurons all have α_i = β_i = c_i is the linear map diag(c) on the region and is
    multiplied out in step 3, and merged duplicates get the hull of their classes.

    In order, each step exact or with its rounding bounded (:mod:`certnet.verify.rounding`):

    1. dead neurons dropped and exact duplicates merged (:func:`~certnet.verify.reduce.
       reduce_layers`);
    2. input/output scalings folded into the first/last weights (exact for powers of two,
       else a γ₁ entrywise error bound);
    3. layers joined by a linear activation (α = β, e.g. identity) multiplied out — the same
       map, and LipSDP then bounds the product directly instead of through multipliers that
       would have to grow without bound. The product is computed with a proved entrywise error
       bound (Dot2 under cancellation), so a cancelling product such as
       [1, 1, 1]·[1e16, 1, −1e16]ᵀ cannot be certified as 0;
    4. ReLU / leaky-ReLU neurons rebalanced by powers of two (:func:`_rebalance`; exact, so
       the same map: LipSDP-Neuron's bound is unchanged in exact arithmetic, LipSDP-Layer's and
       both solvers' conditioning improve).

    The bound e_k on ‖W_k − W̃_k‖₂ is kept in ``errs``; :func:`rounding_inflation` turns it
    into the amount added to the LMI's value.

    Raises
    ------
    ValueError
        An activation that is not elementwise (GroupSort), named with its position.
    """
    for k, a in enumerate(stack.activations):
        if not a.elementwise:
            raise ValueError(
                f"method {method!r} needs elementwise activations with a slope class, but "
                f"hidden layer {k + 1} is {a.name!r} (not elementwise); use method='product'"
            )
    weights = list(stack.weights)
    if slopes is not None:
        slopes = _checked_slopes(stack, slopes)
        for k, (a, b) in enumerate(slopes):
            dead = (a == 0.0) & (b == 0.0)
            if dead.any():  # σ ≡ 0 on the region: nothing downstream depends on it
                weights[k + 1] = np.where(dead[None, :], 0.0, weights[k + 1])
    red = reduce_layers(weights, stack.biases, stack.activations)
    ws, es = list(red.weights), list(red.errors)
    ws[0], es[0] = scale_err(ws[0], es[0], stack.input_scale, axis=1)
    ws[-1], es[-1] = scale_err(ws[-1], es[-1], stack.output_scale, axis=0)
    out_w, out_e, al, be, names = [ws[0]], [es[0]], [], [], []
    for k, a in enumerate(red.activations):
        if slopes is None:
            ak, bk = float(a.alpha), float(a.beta)
        else:  # the kept neurons' classes; a merged group gets the hull of its members'
            ak = np.array([slopes[k][0][g].min() for g in red.kept[k]], dtype=np.float64)
            bk = np.array([slopes[k][1][g].max() for g in red.kept[k]], dtype=np.float64)
        if np.all(ak == bk):  # a linear map (identity, or linear on the region): merge
            w_next, e_next = ws[k + 1], es[k + 1]
            c = np.broadcast_to(np.asarray(ak, dtype=np.float64), (w_next.shape[1],))
            if np.any(c != 1.0):
                w_next, e_next = scale_err(w_next, e_next, c, 1)  # W_{k+1} diag(c)
            out_w[-1], out_e[-1] = matmul_err(w_next, e_next, out_w[-1], out_e[-1])
            continue
        if slopes is not None and min_width > 0 and not np.all(ak == bk):
            ak, bk = _widened(ak, bk, float(a.alpha), float(a.beta), min_width)
        out_w.append(ws[k + 1])
        out_e.append(es[k + 1])
        al.append(ak)
        be.append(bk)
        names.append(a.name)
    rescaled = _rebalance(out_w, out_e, names)
    reduction = {"kept": red.kept, "rescaled": rescaled} if red.changed or rescaled else {}
    errs = tuple(frob_up(e) for e in out_e)
    return SlopeNet(
        tuple(out_w),
        tuple(al),
        tuple(be),
        tuple(names),
        errs if any(errs) else (),
        reduction,
        local=slopes is not None,
    )


def _widened(a, b, ga, gb, min_width):
    """Classes narrower than ``min_width``·(β_g − α_g) widened about their centre, within the
    global class [α_g, β_g] (a superset: sound). A sector [c, c] inside a layer that is not
    linear needs t_i → ∞ in LipSDP (its quadratic constraint has no strictly feasible point,
    so the S-lemma gives it no finite multiplier that beats the wide class); a sector of
    width κ(β_g − α_g) has one, and is still at least as tight as the global class."""
    w = min_width * (gb - ga)
    narrow = (b - a) < w
    if not narrow.any():
        return a, b
    c = 0.5 * a + 0.5 * b
    lo = np.where(narrow, np.maximum(np.minimum(a, c - w / 2), ga), a)
    hi = np.where(narrow, np.minimum(np.maximum(b, lo + w), gb), b)
    lo = np.where(narrow, np.maximum(np.minimum(lo, hi - w), ga), lo)
    return lo, hi


def _checked_slopes(stack, slopes) -> list[tuple[np.ndarray, np.ndarray]]:
    hidden = [w.shape[0] for w in stack.weights[:-1]]
    if len(slopes) != len(hidden):
        raise ValueError(
            f"slopes has {len(slopes)} layers but the network has {len(hidden)} hidden layers; "
            "compute them with certnet.verify.local.region_slopes"
        )
    out = []
    for k, (pair, n) in enumerate(zip(slopes, hidden, strict=True)):
        a, b = (np.asarray(v, dtype=np.float64).reshape(-1) for v in pair)
        if a.shape != (n,) or b.shape != (n,) or not (np.isfinite(a).all() and (a <= b).all()):
            raise ValueError(
                f"slopes of hidden layer {k + 1} must be finite arrays of shape ({n},) with "
                "alpha <= beta; compute them with certnet.verify.local.region_slopes"
            )
        out.append((a, b))
    return out


def rounding_inflation(net: SlopeNet) -> float:
    """Bound on Lip(f) − Lip(f̃) for f the exact network and f̃ the computed one (``net.ws``).

    With e_j ≥ ‖W_j − W̃_j‖₂, n_j ≥ ‖W̃_j‖₂ (rounded-up SVD) and λ_k = max(|α_k|, |β_k|),

        Lip(f) ≤ Lip(f̃) + ∏_k λ_k · Σ_j e_j ∏_{i>j} n_i ∏_{i<j} (n_i + e_i).

    Proof: replace W̃_j by W_j one layer at a time, j = 0 … ℓ; at step j write the net as
    G ∘ W_j ∘ H (H: layers < j, already exact; G: layers > j, still computed). Then
    G(W_j H(x)) − G(W_j H(y)) = [G(W̃_j H(x) + c) − G(W̃_j H(y) + c)] + [G(W̃_j H(y) + c) −
    G(W̃_j H(y) + c′)] with c = (W_j − W̃_j) H(x), c′ = (W_j − W̃_j) H(y): the first bracket is
    the previous net with a shifted bias — and every bound here, like every LipSDP bound, holds
    for every bias — and the second is at most Lip(G) e_j Lip(H) ‖x − y‖. Lip(G), Lip(H) are
    bounded by the products above. Computed in float64 and rounded up.
    """
    if not any(net.errs):
        return 0.0
    n = spectral_norms(net.ws)
    lam = math.prod(lip_of(a, b) for a, b in zip(net.alpha, net.beta, strict=True))
    total = 0.0
    for j, e in enumerate(net.errs):
        if e > 0:
            after = math.prod(n[j + 1 :])
            before = math.prod(ni + ei for ni, ei in zip(n[:j], net.errs[:j], strict=True))
            total += e * after * before
    return float(up(total * lam, 3 * len(net.ws) + 4))


def lip_of(a, b) -> float:
    """λ_k = max_i max(|α_i|, |β_i|): a Lipschitz constant of every neuron of the layer."""
    return float(max(np.max(np.abs(a)), np.max(np.abs(b))))


def perturbation_margin(net: SlopeNet, ts) -> float:
    """η ≥ ‖M_W(0, t) − M_W̃(0, t)‖₂ for every exact W with ‖W_j − W̃_j‖₂ ≤ e_j (``net.errs``).

    M is affine in each of the terms W_{k−1}ᵀ D_k W_{k−1} (D_k = diag(−2α β t_k)),
    W_{k−1}ᵀ diag((α+β) t_k) (and its transpose) and W_ℓᵀ W_ℓ; with n_j ≥ ‖W̃_j‖₂,
    ‖WᵀDW − W̃ᵀDW̃‖ ≤ ‖D‖ e (2n + e) and ‖[[0, B − B̃], [(B − B̃)ᵀ, 0]]‖ = ‖B − B̃‖, so

        η = Σ_k (max|2αβt_k| e_{k−1}(2n_{k−1} + e_{k−1}) + max|(α+β)t_k| e_{k−1})
            + e_ℓ (2n_ℓ + e_ℓ),

    computed in float64 and rounded up. Proving M_W̃(ρ, t) + ηI ⪯ 0 then proves M_W(ρ, t) ⪯ 0
    for the exact weights, with no assumption on the biases (what local slopes need).
    """
    if not any(net.errs):
        return 0.0
    n = spectral_norms(net.ws)
    e = list(net.errs)
    total = 0.0
    for k in range(1, len(net.ws)):
        t = np.abs(np.asarray(ts[k - 1], dtype=np.float64))
        a, b = net.alpha[k - 1], net.beta[k - 1]
        d = float(np.max(np.abs(2.0 * a * b) * t, initial=0.0))
        c = float(np.max(np.abs(a + b) * t, initial=0.0))
        ek, nk = e[k - 1], n[k - 1]
        total += d * ek * (2.0 * nk + ek) + c * ek
    total += e[-1] * (2.0 * n[-1] + e[-1])
    return float(up(total, 8 * len(net.ws) + 8))


def _offsets(net: SlopeNet) -> list[int]:
    off = [0]
    for n in net.widths[:-1]:
        off.append(off[-1] + n)
    return off  # start of block k, k = 0 … ℓ, plus the total size


def assemble(net: SlopeNet, ts: list[np.ndarray], rho: float, absolute: bool = False):
    """Dense M(ρ, t) of size n_0 + N (see the module docstring).

    With ``absolute=True`` every term is replaced by its entrywise magnitude (|W|, |t|, …): a
    bound on what is summed while forming M, used for the round-off bound of the check.
    """
    off = _offsets(net)
    m = np.zeros((off[-1], off[-1]))
    f = np.abs if absolute else (lambda a: a)
    n0 = net.widths[0]
    m[:n0, :n0] += f(-float(rho)) * np.eye(n0)
    ell = len(net.ws) - 1
    for k in range(1, ell + 1):
        t = np.asarray(ts[k - 1], dtype=np.float64)
        w = f(net.ws[k - 1])
        a, b = net.alpha[k - 1], net.beta[k - 1]  # floats, or per-neuron arrays
        p, q = slice(off[k - 1], off[k]), slice(off[k], off[k + 1])
        if np.any(np.asarray(a * b) != 0.0):
            m[p, p] += w.T @ (f(-2.0 * a * b * t)[:, None] * w)
        blk = w.T * f((a + b) * t)[None, :]
        m[p, q] += blk
        m[q, p] += blk.T
        m[q, q] += np.diag(f(-2.0 * t))
    wl = f(net.ws[-1])
    last = slice(off[ell], off[ell + 1])
    m[last, last] += wl.T @ wl
    return m


def _split(net: SlopeNet, t_flat) -> list[np.ndarray]:
    t_flat = np.asarray(t_flat, dtype=np.float64).ravel()
    if t_flat.size != sum(net.hidden):
        raise CertificateError(
            f"the certificate has {t_flat.size} multipliers but the network has "
            f"{sum(net.hidden)} hidden neurons; it was made for another network"
        )
    if not (np.isfinite(t_flat).all() and (t_flat >= 0).all()):
        raise CertificateError("multipliers must be finite and >= 0; the certificate is invalid")
    return np.split(t_flat, np.cumsum(net.hidden)[:-1]) if net.hidden else []


def _gamma(n: int) -> float:
    return n * _U / (1 - n * _U)


def certify_rho(net: SlopeNet, ts) -> float:
    """Smallest ρ (in the user's units) for which M(ρ, t) ⪯ 0 is *proved* in float64.

    Parameters
    ----------
    net : SlopeNet
    ts : sequence of ndarray, or a flat ndarray
        Multipliers t_k ≥ 0 per hidden layer (user's units).

    Returns
    -------
    float
        ρ with −M(ρ, t) − δI positive definite by a successful floating-point Cholesky
        factorisation, δ covering the round-off of forming M and of the factorisation
        (Rump, BIT 2006); so M(ρ, t) ≺ 0 holds exactly and √ρ bounds Lip(f).

    Raises
    ------
    CertificateError
        Multipliers of the wrong size, negative or non-finite, or a hidden block C(t) that is not
        negative definite (t proves nothing).
    """
    if not isinstance(ts, (list, tuple)):
        ts = _split(net, ts)
    else:
        ts = _split(net, np.concatenate([np.ravel(t) for t in ts]) if ts else np.zeros(0))
    nn_, s = net.normalized()
    p2 = [1.0]
    for sk in s:
        p2.append(p2[-1] * sk * sk)  # p_k², p_0 = 1, last = P²
    big = p2[-1]
    th = [t * (p2[k + 1] / big) for k, t in enumerate(ts)]  # exact (powers of two)
    m0 = assemble(nn_, th, 0.0)
    d = m0.shape[0]
    n0 = nn_.widths[0]
    nmax = max(nn_.widths) + 3
    # |fl(M) − M| ≤ γ_{n+3} |M|_abs entrywise (each entry: ≤ n products summed, then ≤ 3 block
    # additions); ‖·‖₂ ≤ ‖·‖_F, the latter computed with a relative error ≤ γ_{D²+1}.
    d_form = _gamma(nmax) * float(np.linalg.norm(assemble(nn_, th, 0.0, absolute=True)))
    d_form *= 1 + 2 * _gamma(d * d + 2)
    eta = perturbation_margin(nn_, th) if nn_.local else 0.0  # the weights' rounding
    delta = 4.0 * d_form + 1e-290 + eta
    c = m0[n0:, n0:] + 2.0 * delta * np.eye(d - n0)
    if d > n0:
        try:
            cf = sla.cho_factor(-c, lower=True)
        except np.linalg.LinAlgError:
            raise CertificateError(
                "the hidden block C(t) of the LipSDP matrix is not negative definite, so these "
                "multipliers prove nothing; re-certify the network"
            ) from None
        q = m0[:n0, n0:]
        schur = m0[:n0, :n0] - q @ sla.cho_solve(cf, -q.T)
    else:
        schur = m0
    schur = (schur + schur.T) / 2 + 2.0 * delta * np.eye(n0)
    rho = max(float(np.linalg.eigvalsh(schur)[-1]), 0.0) + 2.0 * delta
    rho = max(rho, 1e-300)
    diag_max = float(np.abs(np.diag(m0)).max())
    for attempt in range(8):
        a = -m0
        a[np.diag_indices(n0)] += rho
        g = _gamma(d + 1)
        # Rump's margin for the factorisation, of the computed trace (γ_d relative), plus
        # the rounding of forming M (d_form) and of adding ρ and subtracting the margin on the
        # diagonal (one rounding each, ≤ u (ρ + max|M_ii| + d_chol)).
        d_chol = g / (1 - 2 * g) * float(np.trace(a)) * (1 + 2 * _gamma(d + 1)) + d_form
        d_chol = (d_chol + 2 * _U * (rho + diag_max) + 1e-290) * (1 + 4 * _U) + eta
        a[np.diag_indices(d)] -= d_chol
        try:
            np.linalg.cholesky(a)
            return rho * big
        except np.linalg.LinAlgError:
            rho += max(abs(rho) * 1e-9 * 10.0**attempt, d_chol * 10.0**attempt)
    raise CertificateError(
        "could not prove M(rho, t) negative definite in float64 (the hidden block is too close "
        "to singular); re-certify with a larger margin"
    )


def sqrt_up(rho: float) -> float:
    """√ρ rounded up (sqrt is correctly rounded, so one ulp up bounds the exact root)."""
    return float(np.nextafter(math.sqrt(rho), math.inf))


def certified_value(net: SlopeNet, rho: float) -> float:
    """The Lipschitz bound of the *exact* network proved by ρ for the computed one:
    √ρ (rounded up) + :func:`rounding_inflation`, the sum rounded up. For a local net the
    rounding is already inside ρ (:func:`perturbation_margin`): √ρ rounded up."""
    base = sqrt_up(rho)
    if net.local:
        return base
    infl = rounding_inflation(net)
    return float(np.nextafter(base + infl, math.inf)) if infl > 0 else base


def lmi_certificate(
    stack, method: str, ts, *, solver: dict, margin: float, data: dict | None = None
) -> Certificate:
    """A ``kind="lipschitz"`` certificate proved by multipliers ``ts`` (user's units), for the
    reduced, computed net of :func:`slope_net`; ``data`` records the rounding inflation and the
    reduction, which the checker re-derives from the original network."""
    net = slope_net(stack, method)
    flat = np.concatenate([np.ravel(t) for t in ts]) if len(ts) else np.zeros(0)
    rho = certify_rho(net, flat)
    info = {
        "widths": net.widths,
        "alpha": list(net.alpha),
        "beta": list(net.beta),
        "rounding": {"errors": list(net.errs), "inflation": rounding_inflation(net)},
        "reduction": net.reduction,
    }
    info.update(data or {})
    return Certificate(
        kind="lipschitz",
        value=certified_value(net, rho),
        method=method,
        certified=True,
        norm="l2",
        multipliers={"t": flat, "rho": rho},
        data=info,
        solver=solver,
        margin=margin,
        fingerprint=stack.fingerprint(),
    )


def _check_lmi(cert: Certificate, stack, **context) -> float:
    if stack is None:
        raise CertificateError(
            f"a {cert.method!r} certificate is re-verified against the weights: call "
            "cert.check(net) with the network it was made for"
        )
    net = slope_net(stack, cert.method)
    check_derived(
        cert,
        {
            "widths": net.widths,
            "alpha": list(net.alpha),
            "beta": list(net.beta),
            "rounding": {"errors": list(net.errs), "inflation": rounding_inflation(net)},
            **common_derived(cert, stack),
        },
    )
    stored = cert.data.get("reduction", {})
    if _jsonable_eq(stored) != _jsonable_eq(net.reduction):
        raise CertificateError(
            "the certificate's network reduction (dropped/merged/rescaled neurons) differs from "
            "the one re-derived from the network; it was tampered with or made for another "
            "network: re-certify"
        )
    return certified_value(net, certify_rho(net, cert.array("t")))


def _jsonable_eq(x):
    import json

    return json.dumps(x, sort_keys=True, default=int)


for _m in ("lipsdp-neuron", "lipsdp-layer", "fast"):
    register_checker("lipschitz", _m, norm="l2")(_check_lmi)
