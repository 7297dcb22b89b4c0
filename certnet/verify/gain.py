"""The local ℓ2 gain of a real plant in feedback with a network.

:func:`l2_gain` bounds Σ|y|² ≤ γ² Σ|d|² for the loop x⁺ = F(x, sat(π(h(x)))) + B_d d,
y = C_y(x − x̄), started at its fixed point, for every disturbance of energy Σ|d|² ≤ e. The loop is
read as for :func:`~certnet.verify.closed_loop` (real plant code on interval jets), and the proof
is a dissipation inequality with a quadratic storage: over cells (n ≤ 2,
:mod:`certnet.verify.loop_gain`) or by one structured LMI per box (n ≥ 3,
:mod:`certnet.verify.loop_sdp`).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from certnet.errors import CertificateError
from certnet.verify import loop_common as lc
from certnet.verify import loop_gain, loop_sdp
from certnet.verify.certificate import Certificate, register_checker
from certnet.verify.loop_bnb import MAX_CELLS
from certnet.verify.loop_model import ClosedLoop

__all__ = ["l2_gain"]


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
    be affine in its input there, for every parameter value (checked on its jets; for a
    continuous plant on its exact flow, which is affine in u only for a linear plant)."""
    lo, hi = loop.u_lo, loop.u_hi
    u_lo = np.where(np.isfinite(lo), lo, -1e6) - 1.0
    u_hi = np.where(np.isfinite(hi), hi, 1e6) + 1.0
    _, (dlo, dhi) = loop.plant_jacobians(x0 - half, x0 + half, u_lo, u_hi)
    scale = 1.0 + np.abs(dhi).max()
    # an exact flow's ∂φ/∂u encloses to ~1e-12 relative even for a linear plant
    if not np.all(np.isfinite(dlo)) or not np.all(dhi - dlo <= 1e-9 * scale):
        raise ValueError(
            "the plant is not affine in its input on the region (∂F/∂u varies there, or with "
            "the parameter ranges), so an input disturbance does not enter as B d; pass "
            "disturbance= a matrix B_d (n, q) "
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
    strategy: str = "auto",
    max_cells: int = MAX_CELLS,
    solver: str = "CVXOPT",
    **plant_kwargs: Any,
) -> Certificate:
    """Certify the ℓ2 gain γ from a disturbance d to a performance output y of the real loop.

    The loop is x⁺ = F(x, sat(π(h(x)))) + B_d d, y = C_y (x − x̄), started at its fixed point
    x̄; the certificate: Σ|y|² ≤ γ² Σ|d|² for every disturbance with Σ|d|² ≤ ``energy``.

    Parameters
    ----------
    plant, net, x_eq, observation, dt, parameters, input_gain, strategy, max_cells, solver
        As in :func:`~certnet.verify.closed_loop`.
    **plant_kwargs
        As in :func:`~certnet.verify.closed_loop`.
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
        kind ``"l2-gain"``, method ``"dissipation-bnb"`` (cells) or ``"dissipation-sdp"``,
        ``value`` = γ.

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
    if strategy not in ("auto", "cells", "sdp"):
        raise ValueError(f"strategy must be one of ('auto', 'cells', 'sdp'), got {strategy!r}")
    max_cells = lc.positive_int(max_cells, "max_cells")
    t0 = time.perf_counter()
    loop = lc.make_loop(plant, net, observation, dt, parameters, input_gain, plant_kwargs)
    n = loop.n
    x0, lo, hi, r_eq, proof = lc.equilibrium(loop, x_eq)
    half = lc.default_half(loop)
    Bd = _channel(disturbance, "input", lambda: _input_matrix(loop, x0, half), (n, None),
                  "disturbance")
    Cy = _channel(performance, "state", lambda: np.eye(n), (None, n), "performance")
    if strategy == "auto":
        strategy = "cells" if n <= 2 else "sdp"
    data = {"x_eq": x0, "equilibrium_box": [lo, hi], "equilibrium_proof": proof,
            "loop": lc.describe(loop, observation),
            "energy": float(energy), "Bd": Bd, "Cy": Cy, "strategy": strategy,
            "disturbance": "input" if isinstance(disturbance, str) else "matrix"}
    if strategy == "cells":
        best, log = loop_gain.search(loop, x0, r_eq, Bd, Cy, float(energy), max_cells=max_cells)
        method = "dissipation-bnb"
        data["max_cells"] = max_cells
    else:
        best, log = _by_sdp(loop, x0, r_eq, Bd, Cy, float(energy), solver)
        method = "dissipation-sdp"
    data["search"] = log
    data["time"] = elapsed = time.perf_counter() - t0
    common = dict(kind="l2-gain", method=method, norm="l2", fingerprint=loop.stack.fingerprint())
    solver_info = {"name": method, "time": elapsed}
    if best is None:
        reason = log["reason"] if isinstance(log, dict) else "; ".join(
            f"box scale {e['scale']:g}: {e['status']}" for e in log)
        return Certificate(value=math.inf, certified=False, reason=reason + ". What to do: a "
                           "smaller energy, or a controller with more margin", data=data,
                           solver=solver_info, **common)
    scale = np.sqrt(np.diag(np.linalg.inv(best["P"]))) * best["gamma"] * math.sqrt(energy)
    keys = ("gamma", "P", "radius", "core_radius", "r_in") if method == "dissipation-bnb" else (
        "gamma", "P", "lam", "h")
    data.update({k: best[k] for k in keys})
    if method == "dissipation-sdp":
        data["box"] = [best["lo"], best["hi"]]
    if data["disturbance"] == "input":
        try:
            _check_input_channel(loop, data, x0)
        except CertificateError as e:
            return Certificate(value=math.inf, certified=False, reason=str(e), data=data,
                               solver=solver_info, **common)
    data["probe"] = lc.probe(loop, x0, scale)
    return Certificate(value=best["gamma"] * (1 + 1e-12), certified=True, data=data,
                       solver=solver_info, **common)


def _by_sdp(loop: ClosedLoop, x0, r_eq, Bd, Cy, energy, solver):
    """Boxes of two shapes, each scaled by :func:`loop_sdp.gain_search`: the level set
    {V ≤ γ_lin² e} of the linearised loop's storage (its bounded-real Riccati solution at 1.2
    γ_lin with the performance weight raised as in :mod:`loop_gain`, so that weakly observed
    states do not stretch the box), and the shape of a region of attraction proposed on
    samples (:class:`~certnet.verify.loop_shape.ShapeSearch`). The smaller γ wins."""
    import scipy.linalg as sla

    from certnet.verify.loop_shape import ShapeSearch
    from certnet.verify.loop_small_gain import hinf_certificate

    A = loop.jacobian(x0)
    try:
        g_lin, _ = hinf_certificate(A, Bd, Cy)
    except (ValueError, CertificateError) as e:
        return None, {"reason": f"the linearised loop has no finite ℓ2 gain ({e})"}
    n, q = Bd.shape
    CC = Cy.T @ Cy
    Q = (1 + loop_gain.MARGIN) * CC + loop_gain.MARGIN * max(np.trace(CC) / n, 1e-12) * np.eye(n)
    shapes = []
    try:
        X = sla.solve_discrete_are(A, Bd, Q, -((1.2 * g_lin) ** 2) * np.eye(q))
        shapes.append(np.sqrt(np.diag(np.linalg.inv((X + X.T) / 2)) * g_lin**2 * energy))
    except (np.linalg.LinAlgError, ValueError):
        pass
    proposal = ShapeSearch(loop, x0, A, lc.default_half(loop)).propose(refine=False)
    if proposal is not None:
        shapes.append(np.sqrt(np.diag(np.linalg.inv(proposal.P))))
    best, log = None, []
    for shape in shapes:
        got, part = loop_sdp.gain_search(loop, x0, shape, Bd, Cy, energy, solver=solver,
                                         r_eq=r_eq)
        log += [{**e, "shape": np.round(shape, 6).tolist()} for e in part]
        if got is not None and (best is None or got["gamma"] < best["gamma"]):
            best = got
    return best, log


def _check_input_channel(loop: ClosedLoop, d: dict, x0: np.ndarray) -> None:
    """An input disturbance enters as the stored B_d on every state the proof covers (the
    box of {V ≤ γ²e}, or the SDP's box): F is affine in u there with that ∂F/∂u."""
    if "box" in d:
        lo, hi = (np.asarray(v, dtype=np.float64) for v in d["box"])
        half = np.maximum(np.abs(lo - x0), np.abs(hi - x0))
    else:
        P = np.asarray(d["P"], dtype=np.float64)
        half = np.sqrt(np.diag(np.linalg.inv(P))) * float(d["gamma"]) * math.sqrt(
            float(d["energy"])) * (1 + 1e-6)
    try:
        B = _input_matrix(loop, x0, half)
    except ValueError as e:
        raise CertificateError(f"on the states the gain proof covers, {e}") from None
    Bd = np.asarray(d["Bd"], dtype=np.float64).reshape(B.shape)
    if not np.all(np.abs(B - Bd) <= 1e-9 * (1.0 + np.abs(B).max())):
        raise CertificateError("the stored B_d is not the plant's input matrix ∂F/∂u; the "
                               "certificate was tampered with or made for another plant")


_STRATEGY = {"dissipation-bnb": "cells", "dissipation-sdp": "sdp"}


def _check_l2(cert: Certificate, stack, **context) -> float:
    """Re-prove the gain on the loop rebuilt from the plant given: an ``"input"`` disturbance
    must enter as the stored B_d (∂F/∂u, recomputed), a ``"matrix"`` one is the stored B_d
    itself; the gain is then re-proved for the stored B_d, C_y and energy."""
    d = cert.data
    if d.get("strategy") != _STRATEGY[cert.method]:
        raise CertificateError(f"the certificate says strategy {d.get('strategy')!r}, but "
                               f"{cert.method!r} is proved by {_STRATEGY[cert.method]!r}; it was "
                               "tampered with: re-run certnet verify")
    energy = float(d["energy"])
    if not (math.isfinite(energy) and energy > 0):
        raise CertificateError(f"the stored energy {d['energy']!r} is not a positive number; "
                               "the certificate was tampered with")
    if d["disturbance"] not in ("input", "matrix"):
        raise CertificateError(f"the stored disturbance kind {d['disturbance']!r} is neither "
                               "'input' nor 'matrix'; the certificate was tampered with")
    stated = float(d["gamma"])  # the gain the data states (and the dissipation-bnb proof uses)
    if not (math.isfinite(stated) and stated > 0):
        raise CertificateError(f"the stored gain γ = {d['gamma']!r} is not a positive number; "
                               "the certificate was tampered with: re-run certnet verify")
    lc.positive_definite(d, "P")
    loop = lc.loop_for_check(cert, stack, context)
    x0 = np.asarray(d["x_eq"], dtype=np.float64)
    if d["disturbance"] == "input":
        _check_input_channel(loop, d, x0)
    if cert.method == "dissipation-sdp":
        lo, hi = (np.asarray(v, dtype=np.float64) for v in d["box"])
        proved = loop_sdp.verify_gain(loop, x0, lo, hi, cert.array("P"), cert.array("lam"),
                                      float(d["h"]), cert.array("Bd").reshape(len(x0), -1),
                                      cert.array("Cy").reshape(-1, len(x0)), energy,
                                      r_eq=lc.stored_r_eq(cert))
    else:
        proved = loop_gain.recheck(loop, x0, lc.stored_r_eq(cert), d, int(d["max_cells"]))
    if not proved <= stated:
        raise CertificateError(f"the stored gain data['gamma'] = {stated!r} is below the gain "
                               f"proved ({proved!r}); the certificate was tampered with")
    return proved


register_checker("l2-gain", "dissipation-bnb", norm="l2")(_check_l2)
register_checker("l2-gain", "dissipation-sdp", norm="l2")(_check_l2)
