"""Soundness fuzz: random and adversarial networks, every Lipschitz method, tampered files.

Run:  python benchmarks/soundness.py              (10⁴ networks; about an hour on 2 cores)
      python benchmarks/soundness.py --quick      (400 networks, a few minutes)

For each network (seeded: case ``i`` is the same on every machine) the script

1. builds it from one of the families below, as a user would (``nn.Sequential`` of torch
   modules, certnet's ``NormalizedMLP``, float32 or float64, adversarial constructions);
2. asks certnet for every Lipschitz certificate (``product``, ``fast``, ``auto``, and
   ``lipsdp-neuron`` with CVXOPT on small nets), plus ``NormalizedMLP.lipschitz_bound()``;
3. re-checks each certificate with ``check(net)``;
4. computes lower bounds **on the module's own forward pass** (a float64 copy of the module,
   hooks and all, never certnet's reading of it): Jacobian norms at random points, Adam ascent
   on difference quotients, difference quotients at tiny steps (to catch jumps), and for linear
   nets the exact constant from a product in exact rational arithmetic;
5. tampers with a share of the certificates (every JSON field perturbed in turn) and checks
   that no tampered file whose claim is false is accepted.

Outcomes: *unsound* = a certified value below an attained lower bound (relative tolerance
1e-9 for the rounding of the lower bound itself); *refused* = a clear TypeError/ValueError;
*not certified* = a CertificateError (the method could not prove a bound); *crash* = any other
exception. Writes docs/bench/soundness.md and docs/bench/img/soundness_ratios.png.

Families
--------
``normalized``  NormalizedMLP, random widths/activation/budget, points and biases random on
                their spheres, float32 or float64.
``sequential``  nn.Sequential of Linear and a torch activation (with random parameters), weight
                scales 1e-3 … 1e3.
``degenerate``  pruned neurons (zero rows or columns), duplicated neurons, per-neuron scale
                spread up to 1e±8, rank-1 layers.
``linear``      chains of Linear layers (identity joints), some with cancellation
                (entries up to 1e16 summing to small numbers); exact oracle.
``adversarial`` modules whose forward differs from what their attributes say: QAT Linear,
                forward hooks, a Sequential subclass with a residual forward, Softplus with a
                low threshold (a jump), hook-based weight_norm, a NormalizedMLP whose
                activation module was changed after construction. Refusal is the expected
                answer; a certificate is allowed only if it is sound.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from fractions import Fraction  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import certnet as cn  # noqa: E402
from certnet.errors import CertificateError  # noqa: E402
from certnet.verify import Certificate, lipschitz  # noqa: E402

__all__ = [
    "main",
    "make_case",
    "make_loop",
    "run_case",
    "run_loop",
    "lower_bound",
    "tamper_variants",
]

FAMILIES = ("normalized", "sequential", "degenerate", "linear", "adversarial")
TOL = 1e-9  # relative slack for the rounding of an attained lower bound

_ACTS = [
    ("relu", lambda r: nn.ReLU()),
    ("leaky_relu", lambda r: nn.LeakyReLU(float(r.choice([0.01, 0.3, 2.0])))),
    ("tanh", lambda r: nn.Tanh()),
    ("sigmoid", lambda r: nn.Sigmoid()),
    ("elu", lambda r: nn.ELU(float(r.choice([0.5, 1.0, 2.0])))),
    ("silu", lambda r: nn.SiLU()),
    ("gelu", lambda r: nn.GELU()),
    ("gelu_tanh", lambda r: nn.GELU(approximate="tanh")),
    ("softplus", lambda r: cn.nn.make_activation("softplus", beta=float(r.choice([0.5, 1, 3])))),
]


def _widths(r: np.random.Generator, max_width: int = 24) -> list[int]:
    depth = int(r.integers(1, 4))
    return (
        [int(r.integers(1, 5))]
        + [int(r.integers(1, max_width + 1)) for _ in range(depth)]
        + [int(r.integers(1, 4))]
    )


def _sequential(widths, act, r, scale=1.0, dtype=torch.float64) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(len(widths) - 1):
        lin = nn.Linear(widths[k], widths[k + 1], bias=bool(r.random() < 0.8), dtype=dtype)
        with torch.no_grad():
            w = r.standard_normal((widths[k + 1], widths[k])) * scale / math.sqrt(widths[k])
            lin.weight.copy_(torch.from_numpy(w))
            if lin.bias is not None:
                lin.bias.copy_(torch.from_numpy(r.standard_normal(widths[k + 1])))
        layers.append(lin)
        if k < len(widths) - 2:
            layers.append(act(r))
    return nn.Sequential(*layers)


def _normalized(r):
    widths = _widths(r)
    names = ["relu", "leaky_relu", "tanh", "sigmoid", "elu", "silu", "gelu", "softplus"]
    act = str(r.choice(names + ["groupsort"]))
    if act == "groupsort":
        widths = [widths[0]] + [2 * max(1, w // 2) for w in widths[1:-1]] + [widths[-1]]
    dtype = torch.float32 if r.random() < 0.5 else torch.float64
    net = cn.nn.NormalizedMLP(
        widths,
        activation=act,
        lipschitz=float(10 ** r.uniform(-2, 3)),
        input_scale=float(10 ** r.uniform(-1, 1)),
        output_scale=float(10 ** r.uniform(-1, 1)),
        dtype=dtype,
        seed=int(r.integers(1 << 30)),
    )
    with torch.no_grad():
        g = torch.Generator().manual_seed(int(r.integers(1 << 30)))
        for lin in net.linears:
            p = torch.randn(lin.point.shape, generator=g, dtype=torch.float64)
            if r.random() < 0.2:  # rank one
                p = torch.outer(p[:, 0], p[0])
            lin.point.copy_((p * lin.radius / p.norm()).to(dtype))
            if lin.bias is not None:
                lin.bias.copy_(torch.randn(lin.bias.shape, generator=g, dtype=dtype))
    return f"normalized/{act}/{str(dtype)[6:]}", net, None


def _sequential_case(r):
    name, act = _ACTS[int(r.integers(len(_ACTS)))]
    scale = float(10 ** r.uniform(-3, 3))
    return f"sequential/{name}", _sequential(_widths(r), act, r, scale), None


def _degenerate(r):
    name, act = _ACTS[int(r.integers(len(_ACTS)))]
    widths = _widths(r, 12)
    widths[1] = max(widths[1], 3)
    net = _sequential(widths, act, r)
    lins = [m for m in net if isinstance(m, nn.Linear)]
    kind = str(r.choice(["zero_row", "zero_col", "duplicate", "spread", "rank1"]))
    with torch.no_grad():
        w0, w1 = lins[0].weight, lins[1].weight
        if kind == "zero_row":
            w0[0] = 0.0
        elif kind == "zero_col":
            w1[:, 0] = 0.0
        elif kind == "duplicate":
            w0[1] = w0[0]
            if lins[0].bias is not None:
                lins[0].bias[1] = lins[0].bias[0]
        elif kind == "spread":
            s = torch.from_numpy(10.0 ** r.uniform(-8, 8, w0.shape[0]))
            w0.mul_(s[:, None])
            w1.div_(s[None, :])
        else:
            u, v = w0[:, 0].clone(), w0[0].clone()
            w0.copy_(torch.outer(u, v))
    return f"degenerate/{kind}/{name}", net, None


def _linear(r):
    widths = _widths(r, 6)
    layers = []
    cancel = r.random() < 0.3
    for k in range(len(widths) - 1):
        lin = nn.Linear(widths[k], widths[k + 1], bias=False, dtype=torch.float64)
        w = r.integers(-3, 4, (widths[k + 1], widths[k])).astype(np.float64)
        if cancel and k == 0:
            big = float(10 ** r.integers(8, 17))
            # rows big, w, −big: a left-to-right sum big + (w…) − big loses w
            w = np.vstack([big * np.ones((1, widths[k])), w, -big * np.ones((1, widths[k]))])
        if cancel and k == 1:
            ones = np.ones((widths[k + 1], 1))
            w = np.hstack([ones, w, ones])
        with torch.no_grad():
            lin.weight = nn.Parameter(torch.from_numpy(w))
            lin.in_features, lin.out_features = w.shape[1], w.shape[0]
        layers.append(lin)
    if cancel and len(layers) == 1:  # need a second layer to cancel in
        w = np.ones((1, layers[0].weight.shape[0]))
        lin = nn.Linear(w.shape[1], 1, bias=False, dtype=torch.float64)
        lin.weight = nn.Parameter(torch.from_numpy(w))
        layers.append(lin)
    net = nn.Sequential(*layers)
    return "linear/cancel" if cancel else "linear/plain", net, _exact_linear(net)


def _exact_linear(net) -> float:
    """‖W_L ⋯ W_1‖₂ with the product in exact rationals (entries are floats, so exact)."""
    prod = None
    for m in net:
        w = [[Fraction(float(v)) for v in row] for row in m.weight.detach().tolist()]
        if prod is None:
            prod = w
        else:
            prod = [
                [sum(w[i][k] * prod[k][j] for k in range(len(prod))) for j in range(len(prod[0]))]
                for i in range(len(w))
            ]
    m = np.array([[float(v) for v in row] for row in prod])  # each entry rounded once
    return float(np.linalg.norm(m, 2))


class _Residual(nn.Sequential):
    def forward(self, x):
        h = x
        for m in self:
            h = m(h)
        return h + x[..., : h.shape[-1]] * 3.0


def _adversarial(r):
    kind = str(
        r.choice(["qat", "hook", "pre_hook", "residual", "softplus_jump", "weight_norm", "mlp_act"])
    )
    widths = _widths(r, 12)
    if kind == "qat":
        from torch.ao.nn.qat import Linear as QATLinear
        from torch.ao.quantization import get_default_qat_qconfig

        qc = get_default_qat_qconfig("fbgemm")
        layers: list[nn.Module] = []
        for k in range(len(widths) - 1):
            lin = QATLinear(widths[k], widths[k + 1], qconfig=qc)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(r.standard_normal(lin.weight.shape)))
            layers.append(lin)
            if k < len(widths) - 2:
                layers.append(nn.ReLU())
        net = nn.Sequential(*layers)
        net(torch.randn(64, widths[0]))  # let the observers see data
        net.eval()
        return "adversarial/qat", net, None
    if kind == "residual":
        widths[-1] = min(widths[-1], widths[0])
        net = _Residual(*_sequential(widths, lambda r: nn.Tanh(), r))
        return "adversarial/residual", net, None
    if kind == "softplus_jump":
        net = _sequential(widths, lambda r: nn.Softplus(beta=1.0, threshold=1.0), r, scale=3.0)
        return "adversarial/softplus_jump", net, None
    if kind == "mlp_act":
        net = cn.nn.NormalizedMLP(widths, activation="leaky_relu", lipschitz=5.0, seed=0)
        for a in getattr(net, "acts", []):
            if hasattr(a, "negative_slope"):
                a.negative_slope = 4.0
        return "adversarial/mlp_act", net, None
    net = _sequential(widths, lambda r: nn.ReLU(), r)
    lin = net[0]
    if kind == "hook":
        lin.register_forward_hook(lambda m, i, o: o * 7.0)
    elif kind == "pre_hook":
        lin.register_forward_pre_hook(lambda m, i: (i[0] * 7.0,))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.nn.utils.weight_norm(lin)
        with torch.no_grad():
            lin.weight_g.mul_(5.0)  # the stale `weight` attribute stays the old one
    return f"adversarial/{kind}", net, None


_MAKERS = {
    "normalized": _normalized,
    "sequential": _sequential_case,
    "degenerate": _degenerate,
    "linear": _linear,
    "adversarial": _adversarial,
}


def make_case(i: int):
    """Case ``i``: (family/kind label, module, exact constant or None). Deterministic in i."""
    r = np.random.default_rng([20261202, i])
    family = FAMILIES[i % len(FAMILIES)]
    torch.manual_seed(i)
    return _MAKERS[family](r)


# --------------------------------------------------------------------------- lower bounds
def _double(net: nn.Module) -> nn.Module:
    """A float64 copy computing the same real-arithmetic function: parametrised weights are
    first evaluated in the module's own dtype and frozen (``.double()`` of a parametrised
    float32 layer would recompute its weight in float64 — another function), then widened,
    which is exact."""
    from torch.nn.utils import parametrize

    f = copy.deepcopy(net)
    for parent in list(f.modules()):
        for name, m in list(parent.named_children()):
            if isinstance(m, nn.Linear) and parametrize.is_parametrized(m):
                # parametrize.remove_parametrizations would edit the class the deep copy
                # shares with the original; a plain Linear with the computed weight instead
                plain = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
                with torch.no_grad():
                    plain.weight = nn.Parameter(m.weight.detach().clone())
                    if m.bias is not None:
                        plain.bias = nn.Parameter(m.bias.detach().clone())
                plain._forward_hooks.update(m._forward_hooks)
                plain._forward_pre_hooks.update(m._forward_pre_hooks)
                setattr(parent, name, plain)
    try:
        return f.double()
    except Exception:  # a module that cannot change dtype: evaluate as it is
        return f


def _in_dim(net: nn.Module) -> int:
    for m in net.modules():
        if isinstance(m, nn.Linear):
            return m.in_features
    raise ValueError("no Linear layer")


def _jacobian_norms(f, x):
    x = x.clone().requires_grad_()
    y = f(x)
    rows = [torch.autograd.grad(y[:, j].sum(), x, retain_graph=True)[0] for j in range(y.shape[1])]
    jac = torch.stack(rows, 1)
    return torch.linalg.matrix_norm(jac, ord=2)


def lower_bound(net: nn.Module, seed: int, samples: int = 256, steps: int = 60) -> float:
    """An attained lower bound on Lip(net) from its own forward (see the module doc)."""
    try:
        f = _double(net)
        f(torch.zeros(2, _in_dim(net), dtype=torch.float64))
    except Exception:  # noqa: BLE001 - no float64 copy (QAT, hook-based weight_norm): as it is
        f = net
    dtype = next(f.parameters()).dtype
    f.requires_grad_(False)
    d0 = _in_dim(net)
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([0.01, 0.3, 3.0, 30.0], dtype=dtype).repeat_interleave(samples // 4)
    x = torch.randn(len(scale), d0, generator=g, dtype=dtype) * scale[:, None]
    best = float(_jacobian_norms(f, x).max())
    # Adam ascent on difference quotients
    xa = x[:16].clone().requires_grad_()
    d = (torch.randn(16, d0, generator=g, dtype=dtype) * 0.1).requires_grad_()
    opt = torch.optim.Adam([xa, d], lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        ratio = (f(xa + d) - f(xa)).norm(dim=-1) / d.norm(dim=-1).clamp_min(1e-12)
        ratio = torch.nan_to_num(ratio, nan=0.0)
        best = max(best, float(ratio.detach().max()))
        (-ratio.sum()).backward()
        opt.step()
    # tiny steps: a jump shows as a quotient far above any slope; the numerator is reduced
    # by a rounding allowance so that round-off alone cannot produce a false "attained" value
    with torch.no_grad():
        u = torch.randn(len(x), d0, generator=g, dtype=dtype)
        h = u / u.norm(dim=1, keepdim=True) * torch.logspace(-9, -2, len(x), dtype=dtype)[:, None]
        fx, fy = f(x), f(x + h)
        allow = 1e-12 * (1 + fx.norm(dim=1) + fy.norm(dim=1))
        q = ((fx - fy).norm(dim=1) - allow).clamp_min(0) / h.norm(dim=1)
        best = max(best, float(torch.nan_to_num(q, nan=0.0).max()))
    return best


# --------------------------------------------------------------------------- tampering
def _paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list) and node and not isinstance(node[0], (list, dict)):
        yield (*prefix, "*")  # one perturbation of the whole numeric list
    elif isinstance(node, list):
        for k, v in enumerate(node):
            yield from _paths(v, (*prefix, k))
    else:
        yield prefix


_IGNORED = {"created", "version", "solver", "wall_time", "reason"}  # metadata, not claims


def _get(d, path):
    for p in path[:-1]:
        d = d[p]
    return d


def tamper_variants(cert: Certificate, r: np.random.Generator):
    """Yield (description, tampered dict) for every field of the certificate's JSON."""
    base = cert.to_dict()
    for path in _paths(base):
        if path and path[0] in _IGNORED:
            continue
        d = json.loads(json.dumps(base))
        parent = _get(d, path if path[-1] != "*" else path[:-1])
        key = path[-1] if path[-1] != "*" else None
        if key is None:  # a numeric list
            parent_key = path[-2]
            holder = _get(d, path[:-1])
            lst = holder[parent_key]
            if lst and isinstance(lst[0], (int, float)) and not isinstance(lst[0], bool):
                holder[parent_key] = [v * float(r.choice([0.5, 0.999999, 2.0])) for v in lst]
            else:
                holder[parent_key] = lst[:-1]
            yield "/".join(map(str, path)), d
            continue
        v = parent[key]
        if isinstance(v, bool):
            parent[key] = not v
        elif isinstance(v, (int, float)):
            parent[key] = v * float(r.choice([0.5, 0.999999, -1.0, 2.0])) if v else 1.0
        elif isinstance(v, str):
            parent[key] = {
                "fast": "product",
                "product": "fast",
                "lipsdp-neuron": "lipsdp-layer",
                "lipsdp-layer": "lipsdp-neuron",
                "lipschitz": "l2-gain",
                "l2": "linf",
            }.get(v, v[::-1] if v else "x")
        else:
            continue
        yield "/".join(map(str, path)), d
    d = json.loads(json.dumps(base))
    d["value"] = base["value"] * 0.5
    yield "value/halved", d


# --------------------------------------------------------------------------- one case
def _method_list(net, i: int, lipsdp_every: int) -> list[str]:
    n = sum(m.out_features for m in net.modules() if isinstance(m, nn.Linear))
    out = ["product", "fast", "auto"]
    if lipsdp_every and i % lipsdp_every == 0 and n <= 40:
        out.append("lipsdp-neuron")
    return out


def run_case(i: int, lipsdp_every: int, tamper_every: int) -> dict:
    label, net, exact = make_case(i)
    rec = {"i": i, "label": label, "family": label.split("/")[0], "methods": {}, "tamper": []}
    try:
        lb = exact if exact is not None else lower_bound(net, seed=i)
    except Exception as exc:  # the module itself does not run: not certnet's fault
        rec["lb_error"] = f"{type(exc).__name__}: {exc}"
        return rec
    rec["lb"] = lb
    rec["exact"] = exact is not None
    if isinstance(net, cn.nn.NormalizedMLP):
        rec["methods"]["by-construction"] = {"status": "certified", "value": net.lipschitz_bound()}
    r = np.random.default_rng([7, i])
    for method in _method_list(net, i, lipsdp_every):
        out: dict = {}
        t0 = time.perf_counter()
        try:
            kw = {"solver": "CVXOPT"} if method.startswith("lipsdp") else {}
            cert = lipschitz(net, method=method, **kw)
            out["value"] = cert.value
            out["status"] = "certified" if cert.certified else "not certified"
            if cert.certified:
                proved = cert.check(net)
                out["checked"] = proved
                if tamper_every and i % tamper_every == 0 and method != "auto":
                    rec["tamper"].extend(_tamper(cert, net, lb, r))
        except (TypeError, ValueError) as exc:
            out["status"], out["error"] = "refused", str(exc)[:200]
        except CertificateError as exc:
            out["status"], out["error"] = "not certified", str(exc)[:200]
        except Exception as exc:  # noqa: BLE001 - a crash is what this benchmark counts
            out["status"], out["error"] = "crash", f"{type(exc).__name__}: {exc}"[:200]
        out["seconds"] = time.perf_counter() - t0
        rec["methods"][method] = out
    return rec


def _tamper(cert: Certificate, net, lb: float, r) -> list[dict]:
    out = []
    for what, d in tamper_variants(cert, r):
        try:
            c = Certificate.from_dict(d)
            proved = c.check(net)
        except (CertificateError, ValueError, KeyError, TypeError) as exc:
            # KeyError/TypeError from reading a mangled file are rejections too, but they are
            # not the clear CertificateError a user should get: counted apart
            kind = "rejected" if isinstance(exc, (CertificateError, ValueError)) else "unclear"
            out.append({"field": what, "outcome": kind, "error": type(exc).__name__})
            continue
        except Exception as exc:  # noqa: BLE001
            out.append({"field": what, "outcome": "crash", "error": type(exc).__name__})
            continue
        false = c.kind == "lipschitz" and c.value < lb * (1 - TOL)
        false |= c.kind != cert.kind or c.norm != cert.norm
        out.append(
            {"field": what, "outcome": "accepted-false" if false else "accepted-true"}
            | {"value": c.value, "proved": proved}
        )
    return out


# --------------------------------------------------------------------------- closed loops
def make_loop(i: int):
    """Closed-loop case ``i``: a randomised inverted pendulum (mass, length, torque limit) and
    a one-hidden-layer net whose linearisation is the plant's dLQR gain, perturbed so that
    some loops are unstable. Deterministic in i."""
    r = np.random.default_rng([20261203, i])
    plant = cn.plants.InvertedPendulum(
        mass=float(r.uniform(0.5, 2.0)),
        length=float(r.uniform(0.5, 1.5)),
        max_torque=float(r.choice([0.5, 1.0, 2.0, 5.0])),
    )
    k = cn.experts.lqr(plant, Q=np.diag([1.0, float(r.choice([0.01, 0.1, 1.0]))]), R=[[1.0]]).K
    width = int(r.integers(4, 17))
    name = str(r.choice(["tanh", "sigmoid", "elu", "silu", "softplus", "relu"]))
    w1 = r.standard_normal((width, 2)) * float(r.uniform(0.2, 1.5))
    act = cn.nn.make_activation(name)
    with torch.no_grad():  # the slope of σ at 0 (σ'(0) = 1/4 for sigmoid, 1/2 for softplus)
        z = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    slope = float(torch.autograd.grad(act(z).sum(), z)[0]) if name != "relu" else 1.0
    w2 = -k @ np.linalg.pinv(w1) / slope
    w2 = w2 * float(r.choice([1.0, 1.0, 1.0, 0.3, 3.0, 20.0]))  # some loops unstable
    biased = name != "relu" or r.random() < 0.5
    net = nn.Sequential(nn.Linear(2, width, bias=biased), act, nn.Linear(width, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(w1))
        b0 = torch.zeros(width, dtype=torch.float64)
        if biased:
            b0 = torch.from_numpy(r.uniform(-1.0, 1.0, width))
            net[0].bias.copy_(b0)
        net[2].weight.copy_(torch.from_numpy(w2))
        # the output bias cancels π(0), so that the upright position stays an equilibrium
        net[2].bias.zero_()
        net[2].bias.copy_(-net[2](net[1](b0)))
    return f"loop/{name}", plant, net


def run_loop(i: int, samples: int = 1000, steps: int = 1500) -> dict:
    """Certify loop ``i``; if certified, re-check it and simulate ``samples`` starts of the
    region on the real plant: each must stay in {V ≤ 1} and converge."""
    from certnet.verify import ClosedLoop, closed_loop
    from certnet.verify.loop_model import flush_subnormals
    from certnet.verify.loop_plot import region_samples

    label, plant, net = make_loop(i)
    rec: dict = {"i": i, "label": label}
    t0 = time.perf_counter()
    try:
        cert = closed_loop(plant, net, max_cells=20_000)
    except (TypeError, ValueError, CertificateError) as exc:
        rec.update(status="refused", error=f"{type(exc).__name__}: {exc}"[:200])
        return rec
    except Exception as exc:  # noqa: BLE001
        rec.update(status="crash", error=f"{type(exc).__name__}: {exc}"[:200])
        return rec
    rec["seconds"] = time.perf_counter() - t0
    if not cert.certified:
        rec.update(status="not certified", error=cert.reason[:200])
        return rec
    rec["status"] = "certified"
    try:
        cert.check(net, plant=plant)
    except Exception as exc:  # noqa: BLE001 - its own check must pass
        rec.update(status="crash", error=f"check: {type(exc).__name__}: {exc}"[:200])
        return rec
    P, x0 = cert.array("P"), cert.array("x_eq")
    loop = ClosedLoop(plant, net)
    x = torch.as_tensor(region_samples(cert, samples, seed=i))
    worst = 0.0
    with torch.no_grad(), flush_subnormals():
        for _ in range(steps):
            x = loop.step(x)
            d = x.numpy() - x0
            worst = max(worst, float(np.einsum("bi,ij,bj->b", d, P, d).max()))
    rec["worst_V"] = worst
    rec["final_error"] = float(np.abs(x.numpy() - x0).max())
    # the claim: no start leaves {V ≤ 1} and every one converges; a loop whose rate is near 1
    # may need more than `steps` steps, so slow convergence is reported apart from leaving
    rec["violated"] = bool(worst > 1 + 1e-9)
    rec["slow"] = bool(rec["final_error"] > 1e-6)
    return rec


# --------------------------------------------------------------------------- report
def _summarise(records: list[dict]) -> dict:
    table: dict = defaultdict(Counter)
    ratios: dict = defaultdict(list)
    unsound: list = []
    for rec in records:
        if "lb" not in rec:
            table[(rec["family"], "(lower bound)")]["module error"] += 1
            continue
        for m, out in rec["methods"].items():
            key = (rec["family"], m)
            table[key][out["status"]] += 1
            if out["status"] == "certified":
                v = out["value"]
                if v < rec["lb"] * (1 - TOL):
                    table[key]["UNSOUND"] += 1
                    unsound.append((rec["i"], rec["label"], m, v, rec["lb"]))
                if rec["lb"] > 0:
                    ratios[m].append(v / rec["lb"])
    tamper = Counter(t["outcome"] for rec in records for t in rec["tamper"])
    bad_tamper = [
        (rec["i"], rec["label"], t["field"])
        for rec in records
        for t in rec["tamper"]
        if t["outcome"] in ("accepted-false", "crash")
    ]
    return {
        "table": table,
        "ratios": ratios,
        "unsound": unsound,
        "tamper": tamper,
        "bad_tamper": bad_tamper,
    }


def _quantiles(v: list[float]) -> str:
    if not v:
        return "—"
    q = np.quantile(v, [0.5, 0.9, 0.99, 1.0])
    return " / ".join(f"{x:.4g}" for x in q)


def _loop_lines(loops: list[dict]) -> list[str]:
    if not loops:
        return []
    c = Counter(r["status"] for r in loops)
    bad = [r for r in loops if r.get("violated")]
    slow = [r for r in loops if r.get("slow")]
    crashes = [r for r in loops if r["status"] == "crash"]
    secs = [r["seconds"] for r in loops if "seconds" in r]
    return [
        "",
        f"Closed loops ({len(loops)} randomised inverted pendulums under perturbed dLQR-like "
        "nets, `closed_loop(plant, net)` on the real plant, 1000 starts of each certified "
        "region simulated for 1500 steps): "
        f"certified {c['certified']}, refused {c['refused']}, not certified "
        f"{c['not certified']}, crashes {c['crash']}, **starts that left their region: "
        f"{len(bad)} loops**; still converging after the 1500 steps (inside the region, "
        f"error > 1e-6): {len(slow)}; median "
        f"{np.median(secs) if secs else float('nan'):.2f} s per certificate.",
    ] + [f"* loop {r['i']} {r['label']}: worst V {r['worst_V']:.6g}" for r in bad[:20]] + [
        f"* slow: loop {r['i']} {r['label']}: worst V {r['worst_V']:.6g}, error after 1500 "
        f"steps {r['final_error']:.3g}" for r in slow[:20]
    ] + [f"* crash: loop {r['i']} {r['label']}: {r['error']}" for r in crashes[:20]]


def _write(summary: dict, args, seconds: float, n: int, path: Path, loops=()) -> None:
    lines = [
        "# Soundness fuzz",
        "",
        f"Command: `python benchmarks/soundness.py{' --quick' if args.quick else ''}"
        f"{f' --n {args.n}' if args.n else ''}` — {n} networks, cases {args.start}…"
        f"{args.start + n - 1} (deterministic), {seconds:.0f} s on {platform.machine()} "
        f"({os.cpu_count()} cores), torch {torch.__version__}, certnet {cn.__version__}.",
        "",
        "Lower bounds are attained on each module's own forward pass (float64 copy, hooks "
        "included); linear nets use the exact constant. *unsound* = a certified value below "
        f"the lower bound by more than {TOL:g} relative.",
        "",
        "| family | method | certified | refused | not certified | crash | UNSOUND |",
        "|---|---|---|---|---|---|---|",
    ]
    for (fam, m), c in sorted(summary["table"].items()):
        lines.append(
            f"| {fam} | {m} | {c['certified']} | {c['refused']} | {c['not certified']} "
            f"| {c['crash'] + c['module error']} | {c['UNSOUND']} |"
        )
    lines += [
        "",
        "Certificate ÷ attained lower bound (median / 90 % / 99 % / max):",
        "",
        "| method | n | ratio |",
        "|---|---|---|",
    ]
    for m, v in sorted(summary["ratios"].items()):
        lines.append(f"| {m} | {len(v)} | {_quantiles(v)} |")
    t = summary["tamper"]
    lines += [
        "",
        f"Tampered files (every JSON field of every {args.tamper_every}th case's certificates): "
        f"{sum(t.values())} variants — rejected {t['rejected']}, rejected with an unclear "
        f"error (KeyError/TypeError) {t['unclear']}, accepted with a claim that is still true "
        f"{t['accepted-true']}, **accepted with a false claim {t['accepted-false']}**, "
        f"crashes {t['crash']}.",
        "",
    ]
    if summary["unsound"]:
        lines += ["Unsound certificates:", ""]
        lines += [
            f"* case {i} {lab} {m}: {v:.6g} < {lb:.6g}"
            for i, lab, m, v, lb in summary["unsound"][:30]
        ]
    if summary["bad_tamper"]:
        lines += ["", "Tampering accepted falsely or crashing:", ""]
        lines += [f"* case {i} {lab}: {f}" for i, lab, f in summary["bad_tamper"][:30]]
    lines += _loop_lines(list(loops))
    lines.append("")
    lines.append("![certificate ÷ lower bound](img/soundness_ratios.png)")
    path.write_text("\n".join(lines) + "\n")


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for m, v in sorted(summary["ratios"].items()):
        v = np.clip(np.asarray(v), 1.0, None)
        ax.hist(np.log10(v), bins=60, histtype="step", label=f"{m} (n={len(v)})")
    ax.set_xlabel("log10(certificate ÷ attained lower bound)")
    ax.set_ylabel("networks")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("certnet Lipschitz certificates on fuzzed networks")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="400 networks")
    p.add_argument("--n", type=int, default=0, help="number of networks (default 10000)")
    p.add_argument("--start", type=int, default=0, help="first case index")
    p.add_argument("--lipsdp-every", type=int, default=10)
    p.add_argument("--tamper-every", type=int, default=25)
    p.add_argument("--loops", type=int, default=-1, help="closed loops (default 200; quick 20)")
    p.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "bench")
    p.add_argument("--records", type=Path, default=None, help="write every outcome (JSONL)")
    args = p.parse_args(argv)
    n = args.n or (400 if args.quick else 10_000)
    torch.set_num_threads(1)
    from rich.progress import Progress

    records = []
    t0 = time.perf_counter()
    with Progress() as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = bar.add_task("fuzzing", total=n)
        for i in range(args.start, args.start + n):
            records.append(run_case(i, args.lipsdp_every, args.tamper_every))
            bar.advance(task)
        n_loops = args.loops if args.loops >= 0 else (20 if args.quick else 200)
        task = bar.add_task("closed loops", total=n_loops)
        loops = []
        for i in range(n_loops):
            loops.append(run_loop(i))
            bar.advance(task)
    seconds = time.perf_counter() - t0
    summary = _summarise(records)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "img").mkdir(exist_ok=True)
    _write(summary, args, seconds, n, args.out / "soundness.md", loops)
    _plot(summary, args.out / "img" / "soundness_ratios.png")
    if args.records:  # every case's outcome, one JSON line each (~8 MB for 10⁴ nets)
        args.records.write_text("\n".join(json.dumps(r) for r in [*records, *loops]) + "\n")
    print((args.out / "soundness.md").read_text())
    bad = len(summary["unsound"]) + len(summary["bad_tamper"])
    bad += sum(c["crash"] for c in summary["table"].values())
    bad += sum(1 for r in loops if r.get("violated") or r["status"] == "crash")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
