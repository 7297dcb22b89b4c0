"""Lower bounds on Lipschitz constants: what every certified upper bound must exceed.

Three kinds, in the user's units (scalings folded in), ℓ2 → ℓ2:

* **realised by this net** (biases included): the largest ‖J(x)‖₂ over random points, and
  gradient ascent on the ratio ‖f(x) − f(y)‖ / ‖x − y‖. Each value is attained, so
  Lip(f) ≥ it.
* **exact** for a 1-hidden-layer ReLU net with at most ``max_regions_neurons`` neurons: f is
  piecewise linear, so Lip(f) = max ‖W_1 diag(s) W_0‖₂ over activation patterns s whose region
  {x : sign(W_0 x + b_0) = s} has an interior (one ``scipy.optimize.linprog`` per pattern).
* **class** (slope patterns): max ‖W_ℓ D_ℓ ⋯ D_1 W_0‖₂ over diagonal D_k with entries in
  {α_k, β_k}, found by alternating maximisation of uᵀJv (for fixed singular vectors u, v the
  value is linear in each D_k, so each entry is set to α or β by the sign of its coefficient),
  from several random starts. Any such pattern is approached by *some* choice of biases, so
  every bias-independent certificate (product, LipSDP, fast) must be ≥ it; it is *not* a lower
  bound on this particular net's constant.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.optimize import linprog

from certnet.nn.extract import extract_layers

__all__ = [
    "lipschitz_lower_bound",
    "sampled_bound",
    "ascent_bound",
    "class_bound",
    "exact_relu",
    "region_bound",
]


def _torch_forward(stack):
    ws = [torch.from_numpy(w) for w in stack.folded_weights()]
    bs = [torch.from_numpy(b) for b in stack.folded_biases()]
    acts = [a.module().double() for a in stack.activations]

    def f(x):
        for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
            x = x @ w.T + b
            if k < len(acts):
                x = acts[k](x)
        return x

    return f


def sampled_bound(stack, samples: int = 2000, radius: float = 3.0, seed: int = 0) -> float:
    """max ‖J(x)‖₂ over ``samples`` points x ~ N(0, radius²·I) (around the input offset)."""
    f = _torch_forward(stack)
    g = torch.Generator().manual_seed(seed)
    d0 = stack.widths[0]
    x = torch.randn(samples, d0, generator=g, dtype=torch.float64) * radius
    x = x / torch.from_numpy(np.where(stack.input_scale != 0, stack.input_scale, 1.0))
    jac = torch.func.vmap(torch.func.jacrev(f))(x)
    return float(torch.linalg.matrix_norm(jac, ord=2).max())


def ascent_bound(
    stack, restarts: int = 16, steps: int = 200, radius: float = 3.0, seed: int = 0
) -> float:
    """max of ‖f(x) − f(y)‖/‖x − y‖ after Adam ascent from ``restarts`` random pairs."""
    f = _torch_forward(stack)
    g = torch.Generator().manual_seed(seed)
    d0 = stack.widths[0]
    x = (torch.randn(restarts, d0, generator=g, dtype=torch.float64) * radius).requires_grad_()
    d = (torch.randn(restarts, d0, generator=g, dtype=torch.float64) * 0.1).requires_grad_()
    opt = torch.optim.Adam([x, d], lr=0.02)
    best = 0.0
    for _ in range(steps):
        opt.zero_grad()
        ratio = (f(x + d) - f(x)).norm(dim=-1) / d.norm(dim=-1).clamp_min(1e-12)
        best = max(best, float(ratio.detach().max()))
        (-ratio.sum()).backward()
        opt.step()
    with torch.no_grad():
        ratio = (f(x + d) - f(x)).norm(dim=-1) / d.norm(dim=-1).clamp_min(1e-12)
        best = max(best, float(torch.nan_to_num(ratio, nan=0.0).max()))
    return best


def class_bound(stack, restarts: int = 8, sweeps: int = 30, seed: int = 0) -> float:
    """Largest ‖W_ℓ D_ℓ ⋯ D_1 W_0‖₂ found over D_k ∈ diag{α_k, β_k}^{n_k} (see module doc).

    Raises
    ------
    ValueError
        A non-elementwise activation (GroupSort has no slope pattern).
    """
    for a in stack.activations:
        if not a.elementwise:
            raise ValueError(f"no slope-pattern lower bound for {a.name!r} (not elementwise)")
    ws = stack.folded_weights()
    lo = [a.alpha for a in stack.activations]
    hi = [a.beta for a in stack.activations]
    rng = np.random.default_rng(seed)

    def jac(ds):
        j = ws[0]
        for k, dk in enumerate(ds):
            j = ws[k + 1] @ (dk[:, None] * j)
        return j

    best = 0.0
    for _ in range(restarts):
        ds = [np.where(rng.random(len(w)) < 0.5, lo[k], hi[k]) for k, w in enumerate(ws[:-1])]
        prev = -1.0
        for _ in range(sweeps):
            for k in range(len(ds)):
                u_, s_, vt = np.linalg.svd(jac(ds))
                u, v = u_[:, 0], vt[0]
                right = ws[0] @ v
                for i in range(k):
                    right = ws[i + 1] @ (ds[i] * right)
                left = ws[-1].T @ u
                for i in range(len(ds) - 1, k, -1):
                    left = ws[i].T @ (ds[i] * left)
                coef = left * right
                ds[k] = np.where(coef > 0, hi[k], lo[k])
            val = float(np.linalg.norm(jac(ds), 2))
            best = max(best, val)
            if val <= prev * (1 + 1e-12):
                break
            prev = val
    return best


def exact_relu(stack, max_neurons: int = 14) -> float:
    """Exact Lip(f) of a 1-hidden-layer ReLU net by enumerating its activation regions.

    Raises
    ------
    ValueError
        Not one hidden ReLU layer, or more than ``max_neurons`` hidden neurons (2ⁿ LPs).
    """
    if len(stack.activations) != 1 or stack.activations[0].name != "relu":
        raise ValueError("exact_relu needs a net with exactly one hidden ReLU layer")
    w0, w1 = stack.folded_weights()
    b0 = stack.folded_biases()[0]
    n, d0 = w0.shape
    if n > max_neurons:
        raise ValueError(
            f"exact_relu enumerates 2^n regions; n={n} > max_neurons={max_neurons}; "
            "use the sampled or ascent bounds instead"
        )
    best = 0.0
    for bits in itertools.product((0.0, 1.0), repeat=n):
        s = np.array(bits)
        val = float(np.linalg.norm(w1 @ (s[:, None] * w0), 2)) if n else 0.0
        if val <= best:
            continue
        sign = np.where(s > 0, -1.0, 1.0)  # active: w·x + b ≥ ε  ⇔  −w·x − ε ≤ b
        # variables (x, ε): maximise ε ≤ 1 subject to sign_i (w_i·x + b_i) + ε ≤ 0
        a_ub = np.hstack([sign[:, None] * w0, np.ones((n, 1))])
        res = linprog(
            np.r_[np.zeros(d0), -1.0],
            A_ub=a_ub,
            b_ub=-sign * b0,
            bounds=[(None, None)] * d0 + [(None, 1.0)],
            method="highs",
        )
        if res.status == 0 and -res.fun > 1e-9:
            best = val
    return best


def region_bound(
    stack, lo, hi, samples: int = 2000, restarts: int = 16, steps: int = 200, seed: int = 0
) -> dict:
    """Attained lower bounds of the Lipschitz constant of f restricted to the box [lo, hi].

    ``sampled``: max ‖J(x)‖₂ over ``samples`` uniform points of the box (interior points: the
    segment x + hv stays inside for small h, so Lip(f|box) ≥ ‖J(x)‖₂). ``ascent``: Adam ascent
    on ‖f(x) − f(y)‖/‖x − y‖ over pairs kept inside the box (x = lo + (hi − lo)·sigmoid(p)),
    started at the best Jacobian points with y = x + h v (v the top right singular vector,
    h = 10⁻³ of the box) and at random pairs; ``pair``: the best pair (x, y) found, whose
    quotient is ``ascent``.
    """
    f = _torch_forward(stack)
    g = torch.Generator().manual_seed(seed)
    lo_t, hi_t = torch.from_numpy(np.asarray(lo, float)), torch.from_numpy(np.asarray(hi, float))
    w = hi_t - lo_t
    d0 = lo_t.numel()
    x = lo_t + w * torch.rand(samples, d0, generator=g, dtype=torch.float64)
    jac = torch.func.vmap(torch.func.jacrev(f))(x)
    sv = torch.linalg.svd(jac)
    norms = sv.S[:, 0]
    sampled = float(norms.max())
    top = torch.argsort(norms, descending=True)[: max(restarts // 2, 1)]
    x0 = x[top]
    v = sv.Vh[top, 0, :]
    h = 1e-3 * w.max().clamp_min(1e-300)
    y0 = torch.minimum(torch.maximum(x0 + h * v, lo_t), hi_t)
    rx = lo_t + w * torch.rand(restarts - top.numel(), d0, generator=g, dtype=torch.float64)
    ry = lo_t + w * torch.rand(restarts - top.numel(), d0, generator=g, dtype=torch.float64)
    xs, ys = torch.cat([x0, rx]), torch.cat([y0, ry])
    safe = torch.where(w > 0, w, torch.ones_like(w))

    def logit(p):
        u = ((p - lo_t) / safe).clamp(1e-12, 1 - 1e-12)
        return torch.log(u) - torch.log1p(-u)

    px, py = logit(xs).requires_grad_(), logit(ys).requires_grad_()
    opt = torch.optim.Adam([px, py], lr=0.02)
    best, pair = 0.0, (xs[0].detach().clone(), ys[0].detach().clone())

    def points():
        return lo_t + w * torch.sigmoid(px), lo_t + w * torch.sigmoid(py)

    for _ in range(steps + 1):
        opt.zero_grad()
        a, b = points()
        diff = (a - b).norm(dim=-1)
        ratio = torch.nan_to_num((f(a) - f(b)).norm(dim=-1) / diff.clamp_min(1e-300), nan=0.0)
        ratio = torch.where(diff > 0, ratio, torch.zeros_like(ratio))
        r_now = ratio.detach()
        i = int(r_now.argmax())
        if float(r_now[i]) > best:
            best, pair = float(r_now[i]), (a[i].detach().clone(), b[i].detach().clone())
        (-ratio.sum()).backward()
        opt.step()
    return {
        "sampled": sampled,
        "ascent": best,
        "pair": (pair[0].numpy(), pair[1].numpy()),
    }


def lipschitz_lower_bound(
    net,
    *,
    region=None,
    samples: int = 2000,
    restarts: int = 16,
    steps: int = 200,
    class_restarts: int = 8,
    seed: int = 0,
) -> dict:
    """All applicable lower bounds of a network's ℓ2 Lipschitz constant.

    Parameters
    ----------
    net : NormalizedMLP, nn.Sequential or LayerStack
    samples, restarts, steps : int
        Random Jacobian samples; ascent restarts and Adam steps.
    region : optional
        A box in the user's input units (any form :func:`certnet.verify.local.as_box`
        accepts: ``(lo, hi)`` or ``{"centre": c, "half_widths": r}``): lower bounds of the
        constant of f *restricted to the box* (:func:`region_bound`), which every local
        certificate on that box must exceed.
    class_restarts : int
        Random starts of the slope-pattern search (0 skips it).

    Returns
    -------
    dict
        ``sampled``, ``ascent``, ``exact`` (1-hidden-layer ReLU with ≤ 14 neurons, else None),
        ``realized`` = the max of those (a lower bound on *this* net's constant), ``class``
        (None for GroupSort; a lower bound on every bias-independent certificate) and ``best``
        = max(realized, class). With ``region``: ``sampled``, ``ascent``, ``pair`` (the
        attaining (x, y) in the box), ``realized`` = ``best`` = their max, ``region`` (lo, hi).

    Raises
    ------
    ValueError
        A malformed region (see :func:`certnet.verify.local.as_box`).
    """
    stack = extract_layers(net)
    if region is not None:
        from certnet.verify.local import as_box

        lo, hi = as_box(region, stack.widths[0])
        out = region_bound(stack, lo, hi, samples, restarts, steps, seed=seed)
        out["realized"] = out["best"] = max(out["sampled"], out["ascent"])
        out["region"] = (lo, hi)
        return out
    out = {
        "sampled": sampled_bound(stack, samples, seed=seed),
        "ascent": ascent_bound(stack, restarts, steps, seed=seed),
        "exact": None,
        "class": None,
    }
    acts = stack.activations
    if len(acts) == 1 and acts[0].name == "relu" and stack.widths[1] <= 14:
        out["exact"] = exact_relu(stack)
    if class_restarts and all(a.elementwise for a in acts):
        out["class"] = class_bound(stack, class_restarts, seed=seed)
    out["realized"] = max(v for k, v in out.items() if k in ("sampled", "ascent", "exact") and v)
    out["best"] = max(out["realized"], out["class"] or 0.0)
    return out
