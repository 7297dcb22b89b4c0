"""Closed-loop certificates of a real plant in feedback with a network.

* :func:`closed_loop` — from which states does x⁺ = F(x, sat(π(h(x)))) converge to its
  equilibrium? A region of attraction {δxᵀPδx ≤ 1}, proved on the plant's own code
  (:mod:`certnet.verify.loop_stability`); or, for a linear plant, ``method="small-gain"``.
* :func:`l2_gain` — by how much is a disturbance of bounded energy amplified? A dissipation
  inequality proved on the same loop (:mod:`certnet.verify.loop_gain`).

The plant is anything :func:`certnet.plants.as_plant` reads — a certnet Plant, a python-control
``StateSpace`` or ``NonlinearIOSystem`` (continuous ones sampled with a zero-order hold at the
controller's period, the exact flow enclosed by :mod:`certnet.verify.ode`), a torch function —
and the network is read by :func:`certnet.nn.extract_layers`. The loop is evaluated by running
that code on interval jets (:class:`~certnet.verify.loop_model.ClosedLoop`): nothing is
linearised, and what cannot be bounded is refused by name. Plant parameters may be given as
ranges (``parameters``) and the actuator as an uncertain gain (``input_gain``); the certificate
then holds for every plant in that set.

``check(net, plant=plant)`` re-proves a certificate: it rebuilds the loop from the plant given,
compares the loop map with the one certified at stored probe states, re-proves the fixed point
(Krawczyk) and re-runs every cell test in float64 interval arithmetic.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from certnet.errors import CertificateError
from certnet.verify import loop_gain, loop_stability
from certnet.verify.certificate import Certificate, register_checker
from certnet.verify.loop_bnb import MAX_CELLS, ellipsoid_volume
from certnet.verify.loop_model import ClosedLoop
from certnet.verify.loop_small_gain import check_kyp, hinf_certificate

__all__ = ["closed_loop", "l2_gain"]

_METHODS = ("lyapunov", "small-gain")
_PROBE_RTOL = 1e-9


# ------------------------------------------------------------------ shared set-up
def _positive_int(v: Any, what: str) -> int:
    if not (isinstance(v, (int, np.integer)) and v > 0):
        raise ValueError(f"{what} must be a positive integer, got {v!r}")
    return int(v)


def _half_widths(region: Any, n: int) -> np.ndarray | None:
    if region is None:
        return None
    h = np.broadcast_to(np.asarray(region, dtype=np.float64), (n,)).copy()
    if not (np.all(np.isfinite(h)) and np.all(h > 0)):
        raise ValueError(f"region must be {n} positive half-widths (state units) around the "
                         f"equilibrium, got {region!r}")
    return h


def _loop(plant, net, observation, dt, parameters, input_gain, plant_kwargs) -> ClosedLoop:
    return ClosedLoop(plant, net, observation=observation, dt=dt, parameters=parameters,
                      input_gain=input_gain, **plant_kwargs)


def _describe(loop: ClosedLoop, observation: Any) -> dict:
    p = loop.plant
    return {
        "plant": type(p).__name__,
        "plant_module": type(p).__module__,
        "dt": loop.dt,
        "states": list(p.state_names),
        "inputs": list(p.input_names),
        "u_min": loop.u_lo,
        "u_max": loop.u_hi,
        "observation": observation if isinstance(observation, str) else "callable",
        "sampling": "zero-order hold, exact flow" if loop.continuous else "discrete map",
        "parameters": loop.parameters,
        "input_gain": loop.input_gain,
    }


def _probe(loop: ClosedLoop, x0: np.ndarray, scale: np.ndarray) -> dict:
    """G at 2n + 1 fixed states around x̂: the loop's fingerprint (a different plant,
    observation or parameter gives different values)."""
    n = len(x0)
    pts = np.vstack([x0, x0 + np.diag(0.37 * scale), x0 - np.diag(0.61 * scale)])
    with torch.no_grad():
        g = loop.step(torch.as_tensor(pts)).numpy()
    return {"states": pts, "next": g} if n else {}


def _check_probe(loop: ClosedLoop, data: dict) -> None:
    pts = np.asarray(data["probe"]["states"], dtype=np.float64)
    want = np.asarray(data["probe"]["next"], dtype=np.float64)
    with torch.no_grad():
        got = loop.step(torch.as_tensor(pts)).numpy()
    err = np.abs(got - want).max() / (1.0 + np.abs(want).max())
    if not err <= _PROBE_RTOL:
        raise CertificateError(
            f"this certificate was made for another closed loop: the plant/observation given "
            f"moves the probe states differently (relative difference {err:.3g}); pass the "
            "plant (and its parameters) the certificate was made for"
        )


def _equilibrium(loop: ClosedLoop, x_eq: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    x0, lo, hi = loop.equilibrium(x_eq)
    r_eq = float(np.sqrt((np.maximum(np.abs(lo - x0), np.abs(hi - x0)) ** 2).sum())) * (
        1 + 1e-12)
    return x0, lo, hi, r_eq


def _loop_for_check(cert: Certificate, stack, context: dict) -> ClosedLoop:
    if stack is None:
        raise CertificateError("re-checking a closed-loop certificate needs the network: "
                               "cert.check(net, plant=plant)")
    plant = context.get("plant")
    if plant is None:
        raise CertificateError(
            "re-checking a closed-loop certificate needs the plant it is about: "
            f"cert.check(net, plant=...) (it was made for a {cert.data['loop']['plant']})"
        )
    d = cert.data["loop"]
    obs = context.get("observation", d["observation"] if d["observation"] != "callable"
                      else None)
    if obs is None:
        raise CertificateError("the certificate's loop reads a user observation function; "
                               "pass it: cert.check(net, plant=..., observation=h)")
    loop = _loop(plant, stack, obs, d["dt"], d["parameters"], d["input_gain"],
                 context.get("plant_kwargs", {}))
    _check_probe(loop, cert.data)
    x0 = np.asarray(cert.data["x_eq"], dtype=np.float64)
    lo, hi = (np.asarray(v, dtype=np.float64) for v in cert.data["equilibrium_box"])
    loop.prove_fixed_point(x0, lo, hi)
    return loop


def _r_eq(cert: Certificate) -> float:
    x0 = np.asarray(cert.data["x_eq"], dtype=np.float64)
    lo, hi = (np.asarray(v, dtype=np.float64) for v in cert.data["equilibrium_box"])
    return float(np.sqrt((np.maximum(np.abs(lo - x0), np.abs(hi - x0)) ** 2).sum())) * (
        1 + 1e-12)


# ------------------------------------------------------------------ stability
def closed_loop(
    plant: Any,
    net: Any,
    method: str = "lyapunov",
    *,
    x_eq: Any = None,
    observation: Any = "auto",
    dt: float | None = None,
    region: Any = None,
    P: Any = None,
    parameters: dict | None = None,
    input_gain: Any = None,
    max_cells: int = MAX_CELLS,
    seed: int = 0,
    **plant_kwargs: Any,
) -> Certificate:
    """Certify a region of attraction of the loop x⁺ = F(x, sat(π(h(x)))) around its equilibrium.

    Parameters
    ----------
    plant : Plant, control.StateSpace, control.NonlinearIOSystem or callable
        The real plant (see the module docstring); functions need ``n_states=`` and
        ``n_inputs=``.
    net : NormalizedMLP, nn.Sequential or LayerStack
        The controller, as it runs (scalings included).
    method : {"lyapunov", "small-gain"}
        ``"lyapunov"``: a region of attraction proved on the real loop. ``"small-gain"``
        (linear plants only): ‖G‖∞ · Lip(π) < 1, a global incremental ℓ2-stability
        certificate.
    x_eq : array_like (n,), optional
        Where to look for the loop's equilibrium (default ``plant.x_eq``); the fixed point
        found near it is proved (Krawczyk).
    observation : "auto", "state", "plant" or callable
        What the network reads (see :class:`~certnet.verify.loop_model.ClosedLoop`).
    dt : float, optional
        Sampling period in s for plants that need one (continuous python-control systems and
        functions).
    region : float or array_like (n,), optional
        Half-widths (state units) of the box around the equilibrium the region is searched in;
        the certified ellipsoid stays inside it. Default: the plant's reset box (or ±1),
        doubled up to 3 times while the region touches it.
    P : array_like (n, n), optional
        A Lyapunov matrix to start the search from (e.g. from an SDP of your own).
    parameters : dict, optional
        Plant parameters as ranges, {name: (low, high)} (attributes of a certnet plant used by
        its ``update``/``vector_field``, or keys of an nlsys's params); the certificate holds for
        every value in the ranges.
    input_gain : (low, high), optional
        An uncertain actuator gain: the plant receives g ⊙ sat(π) with g_k ∈ [low, high] at
        every step (memoryless, possibly time-varying); it must contain 1.
    max_cells : int
        Budget of cell evaluations of the branch and bound (an iteration count, so the result
        does not depend on the machine's speed).
    seed : int
        Seed of the shape search's samples.
    **plant_kwargs
        Passed to :func:`~certnet.plants.as_plant` (``n_states``, ``u_min``, …).

    Returns
    -------
    Certificate
        kind ``"stability"``, method ``"lyapunov-bnb"``: every trajectory of the real loop
        starting in {x : (x − x̂)ᵀP(x − x̂) ≤ 1} (``data["P"]``, ``data["x_eq"]`` = x̂) stays in
        it and converges to the equilibrium, and V decreases at least by ``value`` = ρ < 1 per
        step near it; ``data["roa_volume"]`` is its volume (area for n = 2). When nothing
        can be proved, ``certified`` is False and ``reason`` says why (unstable loop, no
        decrease found, …) and what was tried.

    Raises
    ------
    ValueError
        Bad arguments; no equilibrium near ``x_eq`` (:class:`EquilibriumError`, with the fixed
        point found if any); a network that does not fit the plant.
    TypeError
        A plant or network certnet cannot read; plant code certnet cannot bound (the
        operation is named).

    Examples
    --------
    >>> import torch, certnet as cn
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    >>> cert = cn.verify.closed_loop(cn.plants.InvertedPendulum(), net)   # doctest: +SKIP
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    max_cells = _positive_int(max_cells, "max_cells")
    t0 = time.perf_counter()
    loop = _loop(plant, net, observation, dt, parameters, input_gain, plant_kwargs)
    if method == "small-gain":
        return _small_gain(loop, net)
    n = loop.n
    half = _half_widths(region, n)
    if P is not None:
        P = np.asarray(P, dtype=np.float64)
        if P.shape != (n, n) or not np.all(np.isfinite(P)):
            raise ValueError(f"P must be a finite {n}×{n} matrix, got shape {P.shape}")
        try:
            np.linalg.cholesky((P + P.T) / 2)
        except np.linalg.LinAlgError:
            raise ValueError("P must be symmetric positive definite") from None
    x0, lo, hi, r_eq = _equilibrium(loop, x_eq)
    if half is None:
        p = loop.plant
        box = 0.5 * np.abs(np.asarray(p.reset_high) - np.asarray(p.reset_low))
        half0 = np.where(np.isfinite(box) & (box > 0), box, 1.0)
    else:
        half0 = half
    best, log = loop_stability.search(loop, x0, r_eq, half=half0, grow=half is None, P=P,
                                      max_cells=max_cells, seed=seed)
    elapsed = time.perf_counter() - t0
    common = dict(kind="stability", method="lyapunov-bnb", norm="P-ellipsoid",
                  fingerprint=loop.stack.fingerprint())
    data = {
        "x_eq": x0,
        "equilibrium_box": [lo, hi],
        "loop": _describe(loop, observation),
        "max_cells": max_cells,
        "search": log,
        "time": elapsed,
    }
    solver = {"name": "certnet interval branch and bound", "time": elapsed}
    if best is None:
        tried = f" (tried: {len(log['attempts'])} proposal(s))" if log.get("attempts") else ""
        return Certificate(value=math.inf, certified=False, reason=log["reason"] + tried
                           + ". What to do: check the loop is stable at its equilibrium, "
                           "give a smaller region, or raise max_cells", data=data,
                           solver=solver, **common)
    data.update({
        "P": best.P,
        "P_frame": best.P_frame,
        "radius": best.radius,
        "core_radius": best.core_radius,
        "r_in": best.r_in,
        "core_bound": best.core_bound,
        "roa_volume": best.volume,
        "probe": _probe(loop, x0, np.sqrt(np.diag(np.linalg.inv(best.P)))),
    })
    solver["cells"] = best.cells
    return Certificate(value=best.rho, certified=True, data=data, solver=solver, margin=0.0,
                       **common)


def _check_stability(cert: Certificate, stack, **context) -> float:
    loop = _loop_for_check(cert, stack, context)
    d = cert.data
    x0 = np.asarray(d["x_eq"], dtype=np.float64)
    rho = loop_stability.recheck(loop, x0, _r_eq(cert), d, int(d["max_cells"]))
    # the stored region must lie inside the proved one, and its volume must not exceed it
    proved = loop_stability.region_matrix(d, _r_eq(cert))
    gap = np.linalg.eigvalsh(np.asarray(d["P"], dtype=np.float64) - proved).min()
    if not gap >= -1e-12 * np.abs(proved).max():
        raise CertificateError("the stored region is larger than the proved one; the "
                               "certificate was tampered with")
    if float(d["roa_volume"]) > ellipsoid_volume(proved) * (1 + 1e-9):
        raise CertificateError(f"the stored region volume {d['roa_volume']:.9g} exceeds the "
                               "proved one")
    return rho


register_checker("stability", "lyapunov-bnb")(_check_stability)


# ------------------------------------------------------------------ small gain (LTI)
def _small_gain(loop: ClosedLoop, net) -> Certificate:
    import certnet.verify as verify
    from certnet.plants.lti import LTI

    p = loop.plant
    if not isinstance(p, LTI) or loop.parameters or loop.input_gain:
        raise ValueError(
            "method='small-gain' needs a linear plant (a control.StateSpace or certnet LTI) "
            "without parameter ranges; use method='lyapunov' for this plant"
        )
    t0 = time.perf_counter()
    A, B = np.asarray(p.Ad, float), np.asarray(p.Bd, float)
    n = A.shape[0]
    gamma, X = hinf_certificate(A, B, np.eye(n))
    lip = verify.lipschitz(net, method="auto")
    if not lip.certified:
        raise CertificateError(f"the network's Lipschitz bound is not certified: {lip.reason}")
    value = gamma * lip.value * (1 + 1e-12)
    common = dict(
        kind="stability", method="small-gain", value=value, norm="l2-incremental",
        data={"A": A, "B": B, "X": X, "hinf": gamma, "lipschitz": lip.to_dict()},
        solver={"name": "hamiltonian-bisection+DARE", "time": time.perf_counter() - t0},
        margin=1 - value, fingerprint=loop.stack.fingerprint(),
    )
    if value < 1:
        return Certificate(certified=True, **common)
    return Certificate(certified=False, reason=f"loop gain ‖G‖∞·Lip(π) = {gamma:.6g}·"
                       f"{lip.value:.6g} = {value:.6g} ≥ 1", **common)


def _check_small_gain(cert: Certificate, stack, **context) -> float:
    from certnet.verify.certificate import checker_for

    d = cert.data
    A, B = cert.array("A"), cert.array("B")
    plant = context.get("plant")
    if plant is not None:
        from certnet.plants.external import as_plant

        p = as_plant(plant)
        if not (np.allclose(p.Ad, A, rtol=0, atol=0) and np.allclose(p.Bd, B, rtol=0, atol=0)):
            raise CertificateError("this small-gain certificate was made for another plant")
    gamma = check_kyp(A, B, np.eye(len(A)), cert.array("X"), d["hinf"])
    lip = Certificate.from_dict(d["lipschitz"])
    lv = float(checker_for(lip.kind, lip.method)(lip, stack))
    if lv > lip.value:
        raise CertificateError("the embedded Lipschitz certificate does not re-verify")
    loop = gamma * lv
    if not loop < 1:
        raise CertificateError(f"the loop gain {loop:.9g} is not < 1")
    return loop


register_checker("stability", "small-gain")(_check_small_gain)


# ------------------------------------------------------------------ ℓ2 gain
def _channel(spec, name: str, default, shape, what: str) -> np.ndarray:
    if isinstance(spec, str):
        if spec != name:
            raise ValueError(f"{what} must be {name!r} or an array of shape {shape}, got {spec!r}")
        return default()
    a = np.asarray(spec, dtype=np.float64)
    if a.ndim != 2 or any(s is not None and a.shape[i] != s for i, s in enumerate(shape)) or \
            not np.all(np.isfinite(a)):
        raise ValueError(f"{what} must be a finite array of shape {shape}, got shape {a.shape}")
    return a


def _input_matrix(loop: ClosedLoop, x0: np.ndarray, half: np.ndarray) -> np.ndarray:
    """B with F(x, u + d) = F(x, u) + B d on the box x0 ± half and every input: the plant must
    be affine in its input there (checked on its jets)."""
    from certnet.verify.jet import Jet

    n, m = loop.n, loop.m
    lo, hi = loop.u_lo, loop.u_hi
    u_lo = np.where(np.isfinite(lo), lo, -1e6) - 1.0
    u_hi = np.where(np.isfinite(hi), hi, 1e6) + 1.0
    eye = np.eye(n + m)
    x = Jet((x0 - half)[None], (x0 + half)[None], eye[None, :n], eye[None, :n])
    u = Jet(u_lo[None], u_hi[None], eye[None, n:], eye[None, n:])
    out = loop.plant.update(x, u)
    dlo, dhi = out.dlo[0, :, n:], out.dhi[0, :, n:]
    scale = 1.0 + np.abs(dhi).max()
    if not np.all(np.isfinite(dlo)) or not np.all(dhi - dlo <= 1e-12 * scale):
        raise ValueError(
            "the plant is not affine in its input on the region (∂F/∂u varies there), so an "
            "input disturbance does not enter as B d; pass disturbance= a matrix B_d (n, q) "
            "for an additive state disturbance x⁺ = G(x) + B_d d"
        )
    return 0.5 * dlo + 0.5 * dhi


def l2_gain(
    plant: Any,
    net: Any,
    disturbance: Any = "input",
    performance: Any = "state",
    *,
    energy: float,
    x_eq: Any = None,
    observation: Any = "auto",
    dt: float | None = None,
    parameters: dict | None = None,
    input_gain: Any = None,
    max_cells: int = MAX_CELLS,
    **plant_kwargs: Any,
) -> Certificate:
    """Certify the ℓ2 gain γ from a disturbance d to a performance output y of the real loop.

    The loop is x⁺ = F(x, sat(π(h(x)))) + B_d d, y = C_y (x − x̄), started at its fixed point
    x̄; the certificate: Σ|y|² ≤ γ² Σ|d|² for every disturbance with Σ|d|² ≤ ``energy``.

    Parameters
    ----------
    plant, net, x_eq, observation, dt, parameters, input_gain, max_cells, **plant_kwargs
        As in :func:`closed_loop`.
    disturbance : "input" or array (n, q)
        B_d. ``"input"``: a disturbance added to the applied input, allowed when the plant is
        affine in its input on the region (B_d = ∂F/∂u, checked), else pass a matrix.
    performance : "state" or array (r, n)
        C_y (``"state"``: the identity).
    energy : float
        The bound e on Σ|d|² (d's units squared) the certificate covers.

    Returns
    -------
    Certificate
        kind ``"l2-gain"``, method ``"dissipation-bnb"``, ``value`` = γ.

    Raises
    ------
    ValueError
        Bad shapes or energy; an ``"input"`` disturbance on a plant not affine in its input;
        the errors of :func:`closed_loop`.
    """
    if not (isinstance(energy, (int, float)) and math.isfinite(energy) and energy > 0):
        raise ValueError(
            f"energy must be a positive number (the bound on Σ|d|²), got {energy!r}; the gain of "
            "a nonlinear loop is certified for disturbances of bounded energy"
        )
    max_cells = _positive_int(max_cells, "max_cells")
    t0 = time.perf_counter()
    loop = _loop(plant, net, observation, dt, parameters, input_gain, plant_kwargs)
    n = loop.n
    x0, lo, hi, r_eq = _equilibrium(loop, x_eq)
    p = loop.plant
    box = 0.5 * np.abs(np.asarray(p.reset_high) - np.asarray(p.reset_low))
    half = np.where(np.isfinite(box) & (box > 0), box, 1.0)
    Bd = _channel(disturbance, "input", lambda: _input_matrix(loop, x0, half), (n, None),
                  "disturbance")
    Cy = _channel(performance, "state", lambda: np.eye(n), (None, n), "performance")
    best, log = loop_gain.search(loop, x0, r_eq, Bd, Cy, float(energy), max_cells=max_cells)
    elapsed = time.perf_counter() - t0
    common = dict(kind="l2-gain", method="dissipation-bnb", norm="l2",
                  fingerprint=loop.stack.fingerprint())
    data = {"x_eq": x0, "equilibrium_box": [lo, hi], "loop": _describe(loop, observation),
            "max_cells": max_cells, "search": log, "time": elapsed, "energy": float(energy),
            "Bd": Bd, "Cy": Cy}
    solver = {"name": "certnet interval branch and bound", "time": elapsed}
    if best is None:
        return Certificate(value=math.inf, certified=False, reason=log["reason"] + ". What to "
                           "do: a smaller energy, or a controller with more margin", data=data,
                           solver=solver, **common)
    scale = np.sqrt(np.diag(np.linalg.inv(best["P"]))) * best["gamma"] * math.sqrt(energy)
    data.update({k: best[k] for k in ("gamma", "P", "radius", "core_radius", "r_in")})
    data["probe"] = _probe(loop, x0, scale)
    solver["cells"] = best["cells"]
    return Certificate(value=best["gamma"] * (1 + 1e-12), certified=True, data=data,
                       solver=solver, **common)


def _check_l2(cert: Certificate, stack, **context) -> float:
    loop = _loop_for_check(cert, stack, context)
    d = cert.data
    return loop_gain.recheck(loop, np.asarray(d["x_eq"], dtype=np.float64), _r_eq(cert), d,
                             int(d["max_cells"]))


register_checker("l2-gain", "dissipation-bnb")(_check_l2)
