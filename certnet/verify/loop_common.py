"""What every closed-loop certificate shares: reading the loop, its fingerprint, its fixed point.

A certificate stores a description of the loop, the map G at a few probe states (so that
``check`` refuses another plant, observation or parameter range) and the Krawczyk box of the
fixed point; re-checking rebuilds the :class:`~certnet.verify.loop_model.ClosedLoop` from the
plant given to ``check`` and re-proves the box before anything else.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from certnet.errors import CertificateError
from certnet.verify.certificate import Certificate
from certnet.verify.loop_model import ClosedLoop

__all__ = [
    "positive_int",
    "half_widths",
    "state_box",
    "make_loop",
    "describe",
    "probe",
    "equilibrium",
    "loop_for_check",
    "check_description",
    "stored_r_eq",
    "positive_definite",
    "default_half",
]

_PROBE_RTOL = 1e-9


def positive_int(v: Any, what: str) -> int:
    """``v`` as a positive int, or ValueError naming ``what``."""
    if not (isinstance(v, (int, np.integer)) and v > 0):
        raise ValueError(f"{what} must be a positive integer, got {v!r}")
    return int(v)


def half_widths(region: Any, n: int) -> np.ndarray | None:
    """``region`` as n positive half-widths (or None)."""
    if region is None:
        return None
    h = np.broadcast_to(np.asarray(region, dtype=np.float64), (n,)).copy()
    if not (np.all(np.isfinite(h)) and np.all(h > 0)):
        raise ValueError(f"region must be {n} positive half-widths (state units) around the "
                         f"equilibrium, got {region!r}")
    return h


def state_box(extend: Any, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``extend`` as a finite box (lo, hi) of states (or None)."""
    if extend is None:
        return None
    try:
        lo, hi = (np.asarray(v, dtype=np.float64).reshape(n) for v in extend)
    except (TypeError, ValueError):
        raise ValueError(f"extend must be a box (lo, hi) of two arrays of {n} state values, "
                         f"got {extend!r}") from None
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
        raise ValueError(f"extend must be a finite box with lo < hi, got {extend!r}")
    return lo, hi


def make_loop(plant, net, observation, dt, parameters, input_gain, plant_kwargs) -> ClosedLoop:
    """The :class:`ClosedLoop` of the public functions' arguments."""
    return ClosedLoop(plant, net, observation=observation, dt=dt, parameters=parameters,
                      input_gain=input_gain, **plant_kwargs)


def describe(loop: ClosedLoop, observation: Any) -> dict:
    """What a certificate says about its loop (for people, and for ``check``)."""
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
        "observation_kind": loop.observation_kind,
        "sampling": "zero-order hold, exact flow" if loop.continuous else "discrete map",
        "parameters": loop.parameters,
        "input_gain": loop.input_gain,
    }


def probe(loop: ClosedLoop, x0: np.ndarray, scale: np.ndarray) -> dict:
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


def _plain(x: Any) -> Any:
    """``x`` as plain JSON values, with the certificate's spellings of non-finite numbers
    ("inf", "nan") and arrays, tuples and lists all read alike."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_plain(v) for v in x]
    if isinstance(x, (bool, np.bool_)) or x is None:
        return x if x is None else bool(x)
    if isinstance(x, (int, float, np.integer, np.floating)):
        return repr(float(x))
    if isinstance(x, str) and x in ("inf", "-inf", "nan"):
        return repr(float(x))
    return x


def _canonical(x: Any) -> str:
    return json.dumps(_plain(x), sort_keys=True)


def check_description(loop: ClosedLoop, stored: Any, observation: Any) -> None:
    """The stored loop description is the one of the loop rebuilt from the plant given: the
    plant, its period, states, inputs, saturation, observation, sampling, parameter ranges and
    input-gain range a certificate states must be those it was re-proved on."""
    got = describe(loop, observation)
    if not isinstance(stored, dict):
        raise CertificateError("the certificate's loop description is missing; re-run certnet "
                               "verify")
    wrong = sorted(k for k in set(got) | set(stored)
                   if _canonical(got.get(k)) != _canonical(stored.get(k)))
    if wrong:
        diff = "; ".join(f"{k}: stored {stored.get(k)!r}, this loop {got.get(k)!r}"
                         for k in wrong)
        raise CertificateError(
            f"the certificate describes another closed loop than the one re-proved ({diff}); "
            "pass the plant (and observation) it was made for, or re-run certnet verify if the "
            "file was edited"
        )


def equilibrium(loop: ClosedLoop, x_eq: Any, *, kink: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, str]:
    """(x̂, lo, hi, r_eq, proof): the fixed point's box, its radius and how it is proved —
    ``"krawczyk"`` (proved here) or, with ``kink`` and a network switching at x̂ that is
    positively homogeneous, ``"homogeneous"`` (the box x̂ ± R_EQ, proved by the region's core:
    :mod:`certnet.verify.loop_kink`)."""
    from certnet.verify import loop_kink
    from certnet.verify.loop_model import EquilibriumError

    try:
        x0, lo, hi = loop.equilibrium(x_eq)
        proof = "krawczyk"
    except EquilibriumError as e:
        x0 = getattr(e, "point", None)
        if not (kink and getattr(e, "kink", False)):
            raise
        why = loop_kink.not_homogeneous(loop, x0)
        if why:
            raise EquilibriumError(
                f"{e}; nor by positive homogeneity: {why}. What to do: a network whose "
                "neurons do not all switch at the equilibrium (biases, or a smooth "
                "activation), or a bias-free ReLU/leaky-ReLU/GroupSort network reading the "
                "state (or a linear function of it) at x = 0") from None
        lo, hi = loop_kink.fixed_point_box(x0)
        proof = "homogeneous"
    return x0, lo, hi, _radius(x0, lo, hi), proof


def loop_for_check(cert: Certificate, stack, context: dict) -> ClosedLoop:
    """The loop a certificate is about, from the plant in ``context`` (checked against the
    stored probe states and fixed-point box)."""
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
    loop = make_loop(plant, stack, obs, d["dt"], d["parameters"], d["input_gain"],
                     context.get("plant_kwargs", {}))
    check_description(loop, d, obs)
    _check_probe(loop, cert.data)
    x0, lo, hi = _stored_box(cert.data, loop.n)
    proof = cert.data["equilibrium_proof"]
    if proof == "homogeneous":
        _homogeneous_box(loop, cert, x0, lo, hi)
    elif proof == "krawczyk":
        loop.prove_fixed_point(x0, lo, hi)
    else:
        raise CertificateError(f"unknown equilibrium proof {proof!r} (expected 'krawczyk' or "
                               "'homogeneous'); the certificate was tampered with")
    return loop


def _stored_box(data: dict, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x̂ and the fixed point's box [lo, hi], each of shape (n,), finite, lo ≤ x̂ ≤ hi."""
    x0 = np.asarray(data["x_eq"], dtype=np.float64)
    box = data["equilibrium_box"]
    if len(box) != 2:
        raise CertificateError("the stored equilibrium box is not a pair (lo, hi); the "
                               "certificate was tampered with: re-run certnet verify")
    lo, hi = (np.asarray(v, dtype=np.float64) for v in box)
    if not (x0.shape == lo.shape == hi.shape == (n,) and np.all(np.isfinite(lo))
            and np.all(np.isfinite(hi)) and np.all(lo <= x0) and np.all(x0 <= hi)):
        raise CertificateError(
            f"the stored x_eq and equilibrium box must be {n} finite values with lo ≤ x_eq ≤ hi "
            f"(got shapes {x0.shape}, {lo.shape}, {hi.shape}); the certificate was tampered "
            "with: re-run certnet verify")
    return x0, lo, hi


def _homogeneous_box(loop: ClosedLoop, cert: Certificate, x0, lo, hi) -> None:
    """A box whose fixed point the region's homogeneous core proves: it must be the a priori
    box of a loop that is homogeneous at x̂, and the core must be the homogeneous one."""
    from certnet.verify import loop_kink

    why = loop_kink.not_homogeneous(loop, x0)
    want = loop_kink.fixed_point_box(x0)
    if why or cert.data.get("core_kind") != "homogeneous" or not (
            np.array_equal(lo, want[0]) and np.array_equal(hi, want[1])):
        raise CertificateError(
            "the certificate says its fixed point is proved by a homogeneous core, but "
            + (f"this loop is not homogeneous at x_eq ({why})" if why else
               "its core or equilibrium box is not that proof's") +
            "; it was made for another loop or tampered with")


def positive_definite(data: dict, key: str) -> np.ndarray:
    """``data[key]`` as a finite, exactly symmetric, positive definite matrix: the proofs read
    one triangle (Cholesky, eigvalsh) or the symmetric part, so a matrix whose triangles differ
    would be proved as one matrix and stated as another."""
    M = np.asarray(data[key], dtype=np.float64)
    ok = M.ndim == 2 and M.shape[0] == M.shape[1] and np.all(np.isfinite(M)) and np.array_equal(
        M, M.T)
    if ok:
        try:
            np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            ok = False
    if not ok:
        raise CertificateError(f"the stored {key} is not a finite symmetric positive definite "
                               f"matrix (shape {M.shape}); the certificate was tampered with: "
                               "re-run certnet verify")
    return M


def stored_r_eq(cert: Certificate) -> float:
    """The stored equilibrium box's radius |x̄ − x̂|₂ ≤ r_eq."""
    x0 = np.asarray(cert.data["x_eq"], dtype=np.float64)
    lo, hi = (np.asarray(v, dtype=np.float64) for v in cert.data["equilibrium_box"])
    return _radius(x0, lo, hi)


def _radius(x0: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    return float(np.sqrt((np.maximum(np.abs(lo - x0), np.abs(hi - x0)) ** 2).sum())) * (
        1 + 1e-12)


def default_half(loop: ClosedLoop) -> np.ndarray:
    """Half-widths of the plant's reset box (1 where it has none): where searches start."""
    p = loop.plant
    box = 0.5 * np.abs(np.asarray(p.reset_high) - np.asarray(p.reset_low))
    return np.where(np.isfinite(box) & (box > 0), box, 1.0)
