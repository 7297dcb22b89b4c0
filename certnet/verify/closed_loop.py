"""Closed-loop certificates of a plant in feedback with a network: stability region and ℓ2 gain.

Two entry points:

* :func:`closed_loop` — is the loop x⁺ = F(x, sat(π(x))) stable, and from which states?
  ``method="sector"`` returns a region-of-attraction (ROA) ellipsoid {x : (x−x*)ᵀP(x−x*) ≤ 1}
  proved by local sector constraints and a Lyapunov LMI (:mod:`certnet.verify.loop_sector`);
  ``method="small-gain"`` returns ‖G‖∞ · Lip(π) < 1 for a stable LTI plant channel
  (:mod:`certnet.verify.loop_small_gain`).
* :func:`l2_gain` — a certified bound γ on Σ|y|² ≤ γ² Σ|d|² from a disturbance d to a
  performance output y, by a dissipation inequality with the same network constraints.

How the plant is read (the certificate's ``method`` says which case applied):

* an :class:`~certnet.plants.InvertedPendulum` with forward Euler: exact, with the remainder
  ψ(θ) = θ − sin θ as a sector nonlinearity on |θ| ≤ r̄ (method ``"sector"``);
* a linear plant (a discrete ``control.StateSpace``, a plant with ``integrator="exact"``, or
  ``LTI`` / ``VehicleLateral``, whose map is checked to be affine): exact (``"sector"``);
* any other plant: its linearisation at x*, and **only the linearisation** is certified — the
  method is then ``"sector-linearization"`` (``"small-gain-linearization"``).

Actuator limits (finite ``u_min``/``u_max``) always enter as a saturation sector.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from certnet.errors import CertificateError
from certnet.nn.extract import extract_layers
from certnet.verify.certificate import Certificate, register_checker
from certnet.verify.loop_sector import (
    LoopModel,
    _act_kind,
    _net_data,
    equilibrium,
    input_box,
    solve_l2,
    solve_stability,
    verify_l2,
    verify_stability,
)
from certnet.verify.loop_small_gain import check_kyp, hinf_certificate

__all__ = ["closed_loop", "l2_gain", "loop_model"]

_SOLVERS = ("CVXOPT", "SCS")
_LINEAR_PLANTS = ("LTI", "VehicleLateral")
_DV_GRID = (0.1, 0.3, 0.9, 2.7)
_RBAR_GRID = (2.0, 2.5, 3.14, 3.8)
_DV_DOWN = 0.5  # factor of the downward Δv search when the grid finds nothing
_DV_MIN = 1e-4  # smallest Δv it tries
_DV_REFINE = 2  # bisections of Δv after the first success
_GROW_STEPS = 12  # at most this many growth SDPs (closed_loop(grow=True))
_GROW_FACTORS = (2.0, 1.3, 1.1)  # growth per step, tried in turn after a failure


# ------------------------------------------------------------------ reading the plant
def _vec(v, n, what):
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (n,) or not np.isfinite(a).all():
        raise ValueError(f"{what} must be {n} finite numbers, got {v!r}")
    return a


def _limits(plant):
    lo = np.asarray(getattr(plant, "u_min", -np.inf), dtype=np.float64).reshape(-1)
    hi = np.asarray(getattr(plant, "u_max", np.inf), dtype=np.float64).reshape(-1)
    if np.all(np.isinf(lo)) and np.all(np.isinf(hi)):
        return None, None
    # an infinite limit on one input only: a far-away finite stand-in keeps one code path
    big = 1e12
    return np.maximum(lo, -big), np.minimum(hi, big)


def _map(plant):
    """x, u ↦ F(x, u) in float64 numpy, batched (u already saturated)."""

    def f(x, u):
        with torch.no_grad():
            xt = torch.as_tensor(np.atleast_2d(x), dtype=torch.float64)
            ut = torch.as_tensor(np.atleast_2d(u), dtype=torch.float64)
            return plant._update(xt, ut).numpy()

    return f


def loop_model(plant: Any, x_eq: Any = None) -> tuple[LoopModel, np.ndarray, Any]:
    """Read ``plant`` into a :class:`LoopModel` (up to the equilibrium input, set later).

    Returns the model (with ``x_eq``), the operating input used for a linearisation, and the
    plant map F(x, u) (numpy) or None for a ``control.StateSpace``.

    Raises
    ------
    TypeError
        Not a certnet Plant or a discrete-time ``control.StateSpace``.
    ValueError
        A continuous-time StateSpace, or x_eq of the wrong size.
    """
    import control

    if isinstance(plant, control.StateSpace):
        if not plant.isdtime(strict=True):
            raise ValueError(
                "the StateSpace is continuous-time; discretise it first, e.g. "
                "control.c2d(sys, dt) — the closed loop is sampled"
            )
        A, B = np.asarray(plant.A, float), np.asarray(plant.B, float)
        n = A.shape[0]
        x = np.zeros(n) if x_eq is None else _vec(x_eq, n, "x_eq")
        model = LoopModel(A, B, np.zeros((n, 0)), np.zeros((0, n)), "", x, None, None, False)
        return model, np.zeros(B.shape[1]), None
    if not hasattr(plant, "_update") or not hasattr(plant, "n_states"):
        raise TypeError(
            f"cannot read a {type(plant).__name__} as a plant; pass a certnet.plants Plant "
            "or a discrete-time control.StateSpace"
        )
    from certnet.plants import linearize

    n = plant.n_states
    x = _vec(plant.x_eq if x_eq is None else x_eq, n, "x_eq")
    u0 = np.asarray(plant.u_eq, dtype=np.float64).reshape(-1)
    lo, hi = _limits(plant)
    F = _map(plant)
    if getattr(plant, "_state_saturations", lambda: ())():
        linear = False  # a state saturation is not modelled: linearisation only
    else:
        linear = plant.integrator == "exact" or type(plant).__name__ in _LINEAR_PLANTS
    name = type(plant).__name__
    if (
        name == "InvertedPendulum"
        and plant.integrator == "euler"
        and not any(getattr(plant, "_state_saturations", lambda: ())())
    ):
        if not np.all(x == 0):
            raise ValueError(
                f"the exact pendulum model is built around the upright equilibrium x_eq = 0, "
                f"got {x.tolist()}"
            )
        dt, g, ml2 = plant.dt, plant.g / plant.length, plant.mass * plant.length**2
        A = np.array([[1.0, dt], [dt * g, 1.0 - dt * plant.friction / ml2]])
        B = np.array([[0.0], [dt / ml2]])
        E = np.array([[0.0], [-dt * g]])
        model = LoopModel(A, B, E, np.array([[1.0, 0.0]]), "s - sin(s)", x, lo, hi, False)
    else:
        sys = linearize(plant, x, u0)
        A, B = np.asarray(sys.A, float), np.asarray(sys.B, float)
        p0 = np.zeros((n, 0))
        model = LoopModel(A, B, p0, np.zeros((0, n)), "", x, lo, hi, not linear)
    _check_model(model, F, u0)
    return model, u0, F


def _check_model(model: LoopModel, F, u0) -> None:
    """The model must reproduce the plant map where it claims to be exact."""
    if model.linearised:
        return
    from certnet.verify.loop_sector import PSI_FUNCTIONS

    rng = np.random.default_rng(0)
    n, m = model.B.shape
    dx = rng.uniform(-1, 1, (64, n))
    du = rng.uniform(-1, 1, (64, m))
    base = F(model.x_eq, u0)[0]
    pred = base + dx @ model.A.T + du @ model.B.T
    if model.E.shape[1]:
        pred = pred + PSI_FUNCTIONS[model.psi][0](dx @ model.C_psi.T) @ model.E.T
    true = F(model.x_eq + dx, u0 + du)
    err = np.abs(pred - true).max() / (1.0 + np.abs(true).max())
    if not err < 1e-10:
        raise CertificateError(
            f"the plant's map differs from its exact model by {err:.3g}; it is not the "
            "linear/Euler model certnet assumed. Certify its linearisation instead"
        )


def _net(net: Any, n: int, m: int) -> tuple[dict, Any]:
    stack = extract_layers(net)
    if stack.widths[0] != n or stack.widths[-1] != m:
        raise ValueError(
            f"the network maps {stack.widths[0]} → {stack.widths[-1]} but the plant has "
            f"{n} states and {m} inputs; the closed-loop certificates need a state-feedback "
            "network u = π(x)"
        )
    return _net_data(stack.folded_weights(), stack.folded_biases(), stack.activations), stack


def _setup(plant, net, x_eq, u_eq):
    model, u0, F = loop_model(plant, x_eq)
    n, m = model.B.shape
    arrays, stack = _net(net, n, m)
    eq = equilibrium(model, arrays)
    if u_eq is not None:
        u_eq = _vec(u_eq, m, "u_eq")
        if not np.allclose(eq["u"], u_eq, rtol=1e-9, atol=1e-12):
            raise ValueError(
                f"the network gives π(x_eq) = {eq['u'].tolist()}, not u_eq = {u_eq.tolist()}; "
                "the loop's equilibrium input is what the network outputs there"
            )
    # x* must be a fixed point of the closed loop (the analysis is in deviations from it)
    if F is None:
        nxt = model.A @ model.x_eq + model.B @ eq["s"]
    else:
        nxt = F(model.x_eq, eq["s"])[0]
    if not np.allclose(nxt, model.x_eq, rtol=0, atol=1e-12 * (1 + np.abs(model.x_eq).max())):
        raise ValueError(
            f"x_eq = {model.x_eq.tolist()} is not an equilibrium of the closed loop: "
            f"F(x_eq, sat(π(x_eq))) = {nxt.tolist()}. Pass the loop's equilibrium as x_eq, "
            "or train the network so that π(x_eq) = u_eq"
        )
    if model.linearised and not np.allclose(eq["s"], u0, atol=1e-9):
        # the linearisation was taken at u0; re-take it at the loop's input
        from certnet.plants import linearize

        sys = linearize(plant, model.x_eq, eq["s"])
        model = LoopModel(
            np.asarray(sys.A, float),
            np.asarray(sys.B, float),
            model.E,
            model.C_psi,
            model.psi,
            model.x_eq,
            model.u_lo,
            model.u_hi,
            True,
        )
    return model, arrays, stack


def _solver(solver: str) -> str:
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}, got {solver!r}")
    return solver


# ------------------------------------------------------------------ stability
def closed_loop(
    plant: Any,
    net: Any,
    method: str = "auto",
    x_eq: Any = None,
    u_eq: Any = None,
    *,
    solver: str = "CVXOPT",
    dv: float | None = None,
    psi_bound: float | None = None,
    grow: bool = True,
) -> Certificate:
    """Certify stability of the loop x⁺ = F(x, sat(π(x))) around an equilibrium x*.

    Parameters
    ----------
    plant : Plant or control.StateSpace
        The plant (discrete time, sampling period ``plant.dt`` s); the network acts on its state.
    net : NormalizedMLP, nn.Sequential or LayerStack
        State-feedback controller u = π(x), n → m.
    method : {"auto", "small-gain", "sector"}
        ``"sector"``: ROA ellipsoid by local sector constraints (the default under ``"auto"``
        when every activation has a local sector rule); ``"small-gain"``: ‖G‖∞ Lip(π) < 1.
    x_eq, u_eq : array_like, optional
        The equilibrium (default ``plant.x_eq``); ``u_eq`` is checked against π(x_eq).
    solver : {"CVXOPT", "SCS"}
        SDP solver for the sector method.
    dv : float, optional
        Half-width Δv of the first-layer pre-activation box; default: searched over 0.1 … 2.7,
        then downward to 1e-4 when none of those is certified (about 6–14 SDPs).
    psi_bound : float, optional
        Bound r̄ on |θ| for the pendulum's θ − sin θ sector; default: searched.
    grow : bool
        After the Δv search, enlarge the region: re-certify on a parallelotope around the
        best ellipsoid, scaled by 2, 1.3 or 1.1 per step, while it is certified (up to 12
        more SDPs; see ``docs/closed_loop.md``). False: the Δv search (or ``dv``) only.

    Returns
    -------
    Certificate
        kind ``"stability"``: ``value`` = ρ with (x⁺−x*)ᵀP(x⁺−x*) ≤ ρ² (x−x*)ᵀP(x−x*) in the
        ellipsoid, ``data["P"]``, ``data["x_eq"]``, ``data["roa_volume"]`` (area for n = 2).
        Small gain: ``value`` = γ L (< 1 when certified), ``margin`` = 1 − γ L.

    Raises
    ------
    ValueError
        Unknown method or solver, shapes that do not match, x_eq not an equilibrium, an
        unstable open-loop plant for ``"small-gain"``.
    TypeError
        An activation without a local sector rule for ``"sector"``; an unsupported layer.
    """
    if method not in ("auto", "small-gain", "sector"):
        raise ValueError(f"method must be 'auto', 'small-gain' or 'sector', got {method!r}")
    solver = _solver(solver)
    model, arrays, stack = _setup(plant, net, x_eq, u_eq)
    if method == "auto":
        try:
            for a in stack.activations:
                _act_kind(a)
            method = "sector"
        except TypeError:
            method = "small-gain"
    if method == "small-gain":
        return _small_gain(model, net, stack)
    for a in stack.activations:
        _act_kind(a)
    return _sector_stability(model, arrays, stack, solver, dv, psi_bound, grow)


def _grid(model, dv, psi_bound):
    dvs = _DV_GRID if dv is None else [float(dv)]
    if not model.E.shape[1]:
        return dvs, [None]
    return dvs, _RBAR_GRID if psi_bound is None else [float(psi_bound)]


def _search(run, model, dv, psi_bound, score, shrink=False):
    """Coordinate search over Δv (then r̄); ``run(dv, rbar)`` → result dict or reason str.

    The grid :data:`_DV_GRID` first; when none of it succeeds (and Δv was not given), Δv is
    halved from the grid's smallest value down to :data:`_DV_MIN` until one succeeds. Then
    :data:`_DV_REFINE` geometric bisections between the best Δv and the smallest failed one
    above it (×1.6 when none failed), with ``shrink`` also ×0.6, then the other r̄. Returns
    the best result, the failed attempts as (Δv, r̄, reason) and the log
    [Δv, r̄, score or None].
    """
    dvs, rbars = _grid(model, dv, psi_bound)
    rbar0 = 2.5 if len(rbars) > 1 else rbars[0]
    best, failures, log = None, [], []

    def attempt(d, r):
        nonlocal best
        res = run(d, r)
        if isinstance(res, str):
            failures.append((d, r, res))
            log.append([d, r, None])
            return
        log.append([d, r, score(res)])
        if best is None or score(res) > score(best):
            best = res

    for d in dvs:
        attempt(d, rbar0)
    if best is None and dv is None:
        d = min(dvs) * _DV_DOWN
        while best is None and d >= _DV_MIN * (1 - 1e-9):
            attempt(d, rbar0)
            d *= _DV_DOWN
    if best is not None and len(dvs) > 1:
        for _ in range(_DV_REFINE):  # geometric bisection towards the next failure above
            d0 = best["dv"]
            above = [d for d, r, s in log if s is None and r == rbar0 and d > d0]
            attempt(math.sqrt(d0 * min(above)) if above else d0 * 1.6, rbar0)
        if shrink:  # a smaller region can have the better score (the ℓ2 gain)
            attempt(best["dv"] * 0.6, rbar0)
    if best is not None and len(rbars) > 1:
        for r in rbars:
            if r != rbar0:
                attempt(best["dv"], r)
    return best, failures, log


def _grow(run, best, log):
    """Enlarge a certified ellipsoid {δxᵀPδx ≤ 1}: certify again on the parallelotope
    |Lᵀδx|∞ ≤ s (P = LLᵀ) with Δv scaled by s, while the volume grows (at most
    :data:`_GROW_STEPS` SDPs). s starts at 2 and falls to 1.3, then 1.1, at each failure;
    growth stops when s = 1.1 fails. The parallelotope hugs the previous ellipsoid, so the
    zonotope bounds over it are far tighter than over the box of the Δv polytope."""
    factors = list(_GROW_FACTORS)
    for _ in range(_GROW_STEPS):
        s = factors[0]
        L = np.linalg.cholesky(best["P"])
        res = run(best["dv"] * s, best["rbar"], L.T / s)
        log.append([best["dv"] * s, best["rbar"], None if isinstance(res, str) else res["vol"]])
        if not isinstance(res, str) and res["vol"] > best["vol"]:
            best = res
            continue
        factors.pop(0)
        if not factors:
            break
    return best


def _failure_reason(what: str, failures: list, searched: bool) -> str:
    """Every failed attempt, grouped by reason: "SDP infeasible at Δv = 2.7, 0.9, …", and what
    to try next."""
    groups: dict[str, list[str]] = {}
    for d, r, why in failures:
        at = "none (global sectors)" if d is None else f"{d:.3g}"
        groups.setdefault(why, []).append(at + ("" if r is None else f" (r̄={r:g})"))
    parts = [f"{why} at Δv = {', '.join(ds)}" for why, ds in groups.items()]
    hint = (
        "the loop may not be locally stable at x* (check the eigenvalues of the linearised "
        "closed loop), or it needs a region smaller than Δv = "
        f"{_DV_MIN:g}; try solver='SCS', or a controller with a larger stability margin"
        if searched
        else f"pass dv=None to search Δv (down to {_DV_MIN:g}), or try a smaller dv"
    )
    return f"{what} in {len(failures)} attempt(s): " + "; ".join(parts) + f". What to do: {hint}"


def _sector_stability(model, arrays, stack, solver, dv, psi_bound, grow) -> Certificate:
    t0 = time.perf_counter()
    method = "sector-linearization" if model.linearised else "sector"
    w1 = arrays["weights"][0]

    def run(d, r, box=None):
        box = input_box(w1, d) if box is None else box
        res = solve_stability(model, arrays, d, r, solver, box)
        if "P" not in res:
            return f"SDP {res['status']}"
        try:
            rho, vol = verify_stability(model, arrays, d, r, res["P"], res["lam"], box)
        except CertificateError as e:
            return f"solution does not re-verify ({e})"
        return {**res, "dv": d, "rbar": r, "box": box, "rho": rho, "vol": vol}

    best, failures, log = _search(run, model, dv, psi_bound, lambda r: r["vol"])
    if best is not None and grow:
        best = _grow(run, best, log)
    elapsed = time.perf_counter() - t0
    common = dict(
        kind="stability", method=method, norm="P-ellipsoid", fingerprint=stack.fingerprint()
    )
    if best is None:
        return Certificate(
            value=math.inf,
            certified=False,
            reason=_failure_reason("no Lyapunov certificate found", failures, dv is None),
            data={"search": log, "time": elapsed},
            solver={"name": solver, "time": elapsed},
            **common,
        )
    value = best["rho"] * (1 + 1e-12)
    data = {
        **model.to_data(),
        **arrays,
        "P": best["P"],
        "dv": best["dv"],
        "box": best["box"],
        "rbar": best["rbar"],
        "roa_volume": best["vol"],
        "search": log,
    }
    return Certificate(
        value=value,
        certified=True,
        multipliers={"lambda": best["lam"]},
        data=data,
        solver={"name": solver, "status": best["status"], "time": elapsed},
        margin=1e-6,
        **common,
    )


def _arrays_for_check(cert: Certificate, stack) -> dict:
    if stack is not None:
        return _net_data(stack.folded_weights(), stack.folded_biases(), stack.activations)
    d = cert.data
    return {
        "weights": [np.asarray(w, dtype=np.float64) for w in d["weights"]],
        "biases": [np.asarray(b, dtype=np.float64) for b in d["biases"]],
        "activations": d["activations"],
    }


def _box(cert: Certificate) -> np.ndarray | None:
    box = cert.data.get("box")  # absent from certificates made before the input box
    return None if box is None else np.asarray(box, dtype=np.float64)


def _check_stability(cert: Certificate, stack) -> float:
    model = LoopModel.from_data(cert.data)
    arrays = _arrays_for_check(cert, stack)
    rho, vol = verify_stability(
        model,
        arrays,
        cert.data["dv"],
        cert.data["rbar"],
        cert.array("P"),
        cert.array("lambda"),
        _box(cert),
    )
    if cert.data["roa_volume"] > vol * (1 + 1e-9):
        raise CertificateError(
            f"the stored ROA volume {cert.data['roa_volume']:.9g} exceeds that of P ({vol:.9g})"
        )
    return rho


register_checker("stability", "sector")(_check_stability)
register_checker("stability", "sector-linearization")(_check_stability)


# ------------------------------------------------------------------ small gain
def _small_gain(model: LoopModel, net, stack) -> Certificate:
    import certnet.verify as verify

    t0 = time.perf_counter()
    n = model.A.shape[0]
    gamma, X = hinf_certificate(model.A, model.B, np.eye(n))
    lip = verify.lipschitz(net)
    if not lip.certified:
        raise CertificateError(f"the network's Lipschitz bound is not certified: {lip.reason}")
    loop = gamma * lip.value * (1 + 1e-12)
    method = "small-gain-linearization" if model.linearised else "small-gain"
    common = dict(
        kind="stability",
        method=method,
        value=loop,
        norm="l2-incremental",
        data={"A": model.A, "B": model.B, "X": X, "hinf": gamma, "lipschitz": lip.to_dict()},
        solver={"name": "hamiltonian-bisection+DARE", "time": time.perf_counter() - t0},
        margin=1 - loop,
        fingerprint=stack.fingerprint(),
    )
    if loop < 1:
        return Certificate(certified=True, **common)
    return Certificate(
        certified=False,
        reason=f"loop gain ‖G‖∞·Lip(π) = {gamma:.6g}·{lip.value:.6g} = {loop:.6g} ≥ 1",
        **common,
    )


def _check_small_gain(cert: Certificate, stack) -> float:
    from certnet.verify.certificate import checker_for

    d = cert.data
    gamma = check_kyp(
        cert.array("A"), cert.array("B"), np.eye(len(d["A"])), cert.array("X"), d["hinf"]
    )
    lip = Certificate.from_dict(d["lipschitz"])
    lv = float(checker_for(lip.kind, lip.method)(lip, stack))
    if lv > lip.value:
        raise CertificateError("the embedded Lipschitz certificate does not re-verify")
    loop = gamma * lv
    if not loop < 1:
        raise CertificateError(f"the loop gain {loop:.9g} is not < 1")
    return loop


register_checker("stability", "small-gain")(_check_small_gain)
register_checker("stability", "small-gain-linearization")(_check_small_gain)


# ------------------------------------------------------------------ ℓ2 gain
def _channel(spec, default, shape, what):
    if isinstance(spec, str):
        if spec != default[0]:
            raise ValueError(
                f"{what} must be {default[0]!r} or an array of shape {shape}, got {spec!r}"
            )
        return default[1]
    a = np.asarray(spec, dtype=np.float64)
    if (
        a.ndim != 2
        or (shape[0] is not None and a.shape[0] != shape[0])
        or (shape[1] is not None and a.shape[1] != shape[1])
        or not np.isfinite(a).all()
    ):
        raise ValueError(f"{what} must be a finite array of shape {shape}, got shape {a.shape}")
    return a


def l2_gain(
    plant: Any,
    net: Any,
    disturbance: Any = "input",
    performance: Any = "state",
    *,
    energy: float | None = None,
    x_eq: Any = None,
    solver: str = "CVXOPT",
    dv: float | None = None,
    psi_bound: float | None = None,
) -> Certificate:
    """Certify the ℓ2 gain from a disturbance d to a performance output y of the closed loop.

    The loop is x⁺ = F(x, sat(π(x))) + B_d d, y = C_y (x − x*), started at x*.

    Parameters
    ----------
    plant, net, x_eq, solver, dv, psi_bound
        As in :func:`closed_loop`.
    disturbance : "input" or array, shape (n, q)
        B_d; ``"input"`` means B (a disturbance added to the applied input).
    performance : "state" or array, shape (r, n)
        C_y; ``"state"`` means the identity.
    energy : float, optional
        Bound e on Σ|d|² (in d's units squared). Given: a local certificate, valid for every
        d with Σ|d|² ≤ e (the state provably stays where the local sectors hold). None: a
        global certificate with global sector bounds (often infeasible for loops that are
        only locally stable, e.g. with saturation or an unstable plant).

    Returns
    -------
    Certificate
        kind ``"l2-gain"``, ``value`` = γ with Σ|y|² ≤ γ² Σ|d|².

    Raises
    ------
    ValueError
        Bad shapes, a non-positive energy, or the errors of :func:`closed_loop`.
    """
    solver = _solver(solver)
    if energy is not None and not (math.isfinite(energy) and energy > 0):
        raise ValueError(f"energy must be a positive number (Σ|d|² bound) or None, got {energy!r}")
    model, arrays, stack = _setup(plant, net, x_eq, None)
    for a in stack.activations:
        _act_kind(a)
    n = model.A.shape[0]
    Bd = _channel(disturbance, ("input", model.B), (n, None), "disturbance")
    Cy = _channel(performance, ("state", np.eye(n)), (None, n), "performance")
    t0 = time.perf_counter()

    def run(d, r):
        box = None if d is None else input_box(arrays["weights"][0], d)
        res = solve_l2(model, arrays, d, r, solver, Bd, Cy, energy, box)
        if "P" not in res or not res.get("h", 0) > 0:
            return f"SDP {res['status']}"
        try:
            g = verify_l2(model, arrays, d, r, res["P"], res["lam"], res["h"], Bd, Cy, energy, box)
        except CertificateError as e:
            return f"solution does not re-verify ({e})"
        return {**res, "dv": d, "rbar": r, "box": box, "gamma": g}

    if energy is None:
        res = run(None, None)
        best, failures, log = (
            (None, [(None, None, res)], []) if isinstance(res, str) else (res, [], [])
        )
    else:
        best, failures, log = _search(run, model, dv, psi_bound, lambda r: -r["gamma"], shrink=True)
    elapsed = time.perf_counter() - t0
    method = "sector-linearization" if model.linearised else "sector"
    method += "-local" if energy is not None else "-global"
    common = dict(kind="l2-gain", method=method, norm="l2", fingerprint=stack.fingerprint())
    if best is None:
        return Certificate(
            value=math.inf,
            certified=False,
            reason=_failure_reason(
                "no dissipation certificate found", failures, dv is None and energy is not None
            ),
            data={"search": log},
            solver={"name": solver, "time": elapsed},
            **common,
        )
    data = {
        **model.to_data(),
        **arrays,
        "P": best["P"],
        "h": best["h"],
        "dv": best["dv"],
        "box": best["box"],
        "rbar": best["rbar"],
        "energy": energy,
        "Bd": Bd,
        "Cy": Cy,
        "search": log,
    }
    return Certificate(
        value=best["gamma"] * (1 + 1e-12),
        certified=True,
        multipliers={"lambda": best["lam"]},
        data=data,
        solver={"name": solver, "status": best["status"], "time": elapsed},
        margin=1e-6,
        **common,
    )


def _check_l2(cert: Certificate, stack) -> float:
    d = cert.data
    model = LoopModel.from_data(d)
    arrays = _arrays_for_check(cert, stack)
    n = model.A.shape[0]
    Bd = cert.array("Bd").reshape(n, -1)
    Cy = cert.array("Cy").reshape(-1, n)
    return verify_l2(
        model,
        arrays,
        d["dv"],
        d["rbar"],
        cert.array("P"),
        cert.array("lambda"),
        float(d["h"]),
        Bd,
        Cy,
        d["energy"],
        _box(cert),
    )


for _m in ("sector", "sector-linearization"):
    for _s in ("-local", "-global"):
        register_checker("l2-gain", _m + _s)(_check_l2)
