"""Regions of attraction of a real plant in feedback with a network.

:func:`closed_loop` answers "from which states does x⁺ = F(x, sat(π(h(x)))) converge to its
equilibrium?" with a region {δxᵀPδx ≤ 1} proved on the plant's own code — anything
:func:`certnet.plants.as_plant` reads: a certnet Plant, a python-control ``StateSpace`` or
``NonlinearIOSystem`` (continuous ones sampled with a zero-order hold at the controller's period,
their exact flow enclosed by :mod:`certnet.verify.ode`), a torch function — and the network as
:func:`certnet.nn.extract_layers` reads it. The loop is evaluated by running that code on
interval jets (:class:`~certnet.verify.loop_model.ClosedLoop`): nothing is linearised, and what
cannot be bounded is refused by name. Plant parameters may be ranges (``parameters``) and the
actuator an uncertain gain (``input_gain``); the certificate then holds for every plant in the set.

Two strategies prove the region (``strategy="auto"`` picks by the number of states):

* ``"cells"`` (n ≤ 2): a quadratic Lyapunov function shaped on samples and proved to decrease by
  branch and bound over cells (:mod:`certnet.verify.loop_stability`), optionally extended by
  cells of a box that provably reach it (:mod:`certnet.verify.loop_reach`);
* ``"sdp"`` (n ≥ 3, where cells grow too many): contraction on a box proved by one structured
  matrix inequality per box tried (:mod:`certnet.verify.loop_sdp`).

For a linear plant, ``method="small-gain"`` gives the global ‖G‖∞ · Lip(π) < 1 test instead.
The ℓ2 gain is :func:`certnet.verify.l2_gain` (:mod:`certnet.verify.gain`).

``check(net, plant=plant)`` re-proves a certificate: it rebuilds the loop from the plant given,
compares the loop map with the one certified at stored probe states, re-proves the fixed point
(Krawczyk) and re-runs every cell test or rebuilds the matrix inequality, in float64 interval
arithmetic.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from certnet.errors import CertificateError
from certnet.verify import loop_common as lc
from certnet.verify import loop_reach, loop_sdp, loop_stability
from certnet.verify.certificate import Certificate, register_checker
from certnet.verify.loop_bnb import MAX_CELLS, ellipsoid_volume
from certnet.verify.loop_model import ClosedLoop
from certnet.verify.loop_shape import ShapeSearch, linear_rate
from certnet.verify.loop_small_gain import check_kyp, hinf_certificate

__all__ = ["closed_loop", "STRATEGIES"]

_METHODS = ("lyapunov", "small-gain")
#: How a region is proved: by the number of states, by cells, or by the contraction SDP.
STRATEGIES = ("auto", "cells", "sdp")
_CELLS_UP_TO = 2  # "auto" uses cells up to this many states


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
    strategy: str = "auto",
    max_cells: int = MAX_CELLS,
    extend: Any = None,
    max_cell_steps: int = 2_000_000,
    solver: str = "CVXOPT",
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
        found near it is proved (Krawczyk; for a bias-free ReLU-type network switching at
        x = 0, by positive homogeneity with the region's core: ``data["equilibrium_proof"]``).
    observation : "auto", "state", "plant", "output" or callable
        What the network reads (see :class:`~certnet.verify.loop_model.ClosedLoop`).
    dt : float, optional
        Sampling period in s for plants that need one (continuous python-control systems and
        functions).
    region : float or array_like (n,), optional
        Half-widths (state units) of the box around the equilibrium the region is searched in.
        Default: the plant's reset box (or ±1), doubled up to 3 times while the region
        touches it.
    P : array_like (n, n), optional
        A Lyapunov matrix to start the search from (e.g. from an SDP of your own).
    parameters : dict, optional
        Plant parameters as ranges, {name: (low, high)} (attributes of a certnet plant read by
        its ``update``/``vector_field``, or keys of an nlsys's params); the certificate holds
        for every value in the ranges.
    input_gain : (low, high), optional
        An uncertain actuator gain: the plant receives g ⊙ sat(π) with g_k ∈ [low, high] at
        every step (memoryless, possibly time-varying); it must contain 1.
    strategy : {"auto", "cells", "sdp"}
        How the region is proved (module docstring); ``"auto"``: cells for n ≤ 2, the SDP
        above.
    max_cells : int
        Budget of cell evaluations of the branch and bound (an iteration count, so the result
        does not depend on the machine's speed).
    extend : (lo, hi), optional
        A box of states (two arrays (n,), state units): also certify the cells of it whose
        trajectories provably reach the region (or cells proved before them). The region is
        then the union, stored in ``data["extension"]``, with a lower bound of its volume in
        ``data["union_volume"]``.
    max_cell_steps : int
        Budget of the extension: cell-steps advanced.
    solver : {"CVXOPT", "SCS"}
        SDP solver of the ``"sdp"`` strategy (named: cvxpy's default needs too much memory).
    seed : int
        Seed of the shape search's samples.
    **plant_kwargs
        Passed to :func:`~certnet.plants.as_plant` (``n_states``, ``u_min``, …).

    Returns
    -------
    Certificate
        kind ``"stability"``, method ``"lyapunov-bnb"`` (cells) or ``"contraction-sdp"``:
        every trajectory of the real loop starting in {x : (x − x̂)ᵀP(x − x̂) ≤ 1}
        (``data["P"]``, ``data["x_eq"]`` = x̂) stays in it and converges to the equilibrium,
        and V decreases at least by ``value`` = ρ < 1 per step (for the SDP, |x − x̄|_P
        contracts by ρ); ``data["roa_volume"]`` is its volume (area for n = 2); with
        ``extend``, the states of ``data["extension"]``'s cells reach it. When nothing can be
        proved, ``certified`` is False and ``reason`` says why and what was tried.

    Raises
    ------
    ValueError
        Bad arguments; no equilibrium near ``x_eq`` (:class:`~certnet.errors.EquilibriumError`,
        with the fixed point found if any); a network that does not fit the plant.
    TypeError
        A plant or network certnet cannot read; plant code certnet cannot bound (the
        operation is named).
    BoundError
        The loop has no finite bound at its equilibrium (a singularity; named).

    Examples
    --------
    >>> import torch, certnet as cn
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    >>> cert = cn.verify.closed_loop(cn.plants.InvertedPendulum(), net)   # doctest: +SKIP
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if solver not in ("CVXOPT", "SCS"):
        raise ValueError(f"solver must be 'CVXOPT' or 'SCS', got {solver!r}")
    max_cells = lc.positive_int(max_cells, "max_cells")
    max_cell_steps = lc.positive_int(max_cell_steps, "max_cell_steps")
    t0 = time.perf_counter()
    loop = lc.make_loop(plant, net, observation, dt, parameters, input_gain, plant_kwargs)
    if method == "small-gain":
        return _small_gain(loop, net)
    n = loop.n
    half = lc.half_widths(region, n)
    ext_box = lc.state_box(extend, n)
    P = _matrix(P, n)
    if strategy == "auto":
        strategy = "cells" if n <= _CELLS_UP_TO else "sdp"
    x0, lo, hi, r_eq, proof = lc.equilibrium(loop, x_eq, kink=strategy == "cells")
    data = {"x_eq": x0, "equilibrium_box": [lo, hi], "equilibrium_proof": proof,
            "loop": lc.describe(loop, observation), "strategy": strategy}
    if strategy == "cells":
        found = _by_cells(loop, x0, r_eq, half, P, max_cells, seed, proof == "homogeneous")
    else:
        found = _by_sdp(loop, x0, r_eq, half, P, seed, solver)
    method_name, value, fields, reason = found
    data.update(fields)
    common = dict(kind="stability", method=method_name, norm="P-ellipsoid",
                  fingerprint=loop.stack.fingerprint())
    if value is None:
        data["time"] = time.perf_counter() - t0
        return Certificate(value=math.inf, certified=False, reason=reason + ". What to do: "
                           "check that the loop is stable at its equilibrium, give a smaller "
                           "region, or raise max_cells", data=data,
                           solver={"name": _SOLVERS[strategy], "time": data["time"]}, **common)
    Pr = np.asarray(data["P"])
    data["probe"] = lc.probe(loop, x0, np.sqrt(np.diag(np.linalg.inv(Pr))))
    solver_info = {"name": _SOLVERS[strategy], "cells": data.get("cells", 0)}
    if ext_box is not None:
        ext = loop_reach.extend(loop, x0, Pr, *ext_box, max_cell_steps=max_cell_steps)
        data["extension"] = ext
        data["union_volume"] = loop_reach.union_area(x0, Pr, ext, data["roa_volume"])
        solver_info["cell_steps"] = ext["spent"]
    data["time"] = solver_info["time"] = time.perf_counter() - t0
    return Certificate(value=value, certified=True, data=data, solver=solver_info, margin=0.0,
                       **common)


_SOLVERS = {"cells": "certnet interval branch and bound",
            "sdp": "structured contraction LMI (cvxpy) + interval slope ranges"}


def _matrix(P: Any, n: int) -> np.ndarray | None:
    if P is None:
        return None
    P = np.asarray(P, dtype=np.float64)
    if P.shape != (n, n) or not np.all(np.isfinite(P)):
        raise ValueError(f"P must be a finite {n}×{n} matrix, got shape {P.shape}")
    try:
        np.linalg.cholesky((P + P.T) / 2)
    except np.linalg.LinAlgError:
        raise ValueError("P must be symmetric positive definite") from None
    return (P + P.T) / 2


def _search_start(loop: ClosedLoop, half: np.ndarray | None) -> np.ndarray:
    return lc.default_half(loop) if half is None else half


# ------------------------------------------------------------------ by cells
def _by_cells(loop, x0, r_eq, half, P, max_cells, seed, kink=False):
    best, log = loop_stability.search(loop, x0, r_eq, half=_search_start(loop, half),
                                      grow=half is None, P=P, max_cells=max_cells, seed=seed,
                                      kink=kink)
    fields = {"search": log, "max_cells": max_cells}
    if best is None:
        tried = f" (tried: {len(log['attempts'])} proposal(s))" if log.get("attempts") else ""
        return "lyapunov-bnb", None, fields, log["reason"] + tried
    fields.update({
        "P": best.P,
        "P_frame": best.P_frame,
        "radius": best.radius,
        "core_radius": best.core_radius,
        "r_in": best.r_in,
        "core_bound": best.core_bound,
        "core_lambda": best.core_lambda,
        "core_kind": best.core_kind,
        "core_eps": best.core_eps,
        "cover": best.cover,
        "roa_volume": best.volume,
        "cells": best.cells,
    })
    return "lyapunov-bnb", best.rho, fields, ""


def _check_cells(cert: Certificate, stack, **context) -> float:
    loop = lc.loop_for_check(cert, stack, context)
    d = cert.data
    x0 = np.asarray(d["x_eq"], dtype=np.float64)
    rho = loop_stability.recheck(loop, x0, lc.stored_r_eq(cert), d, int(d["max_cells"]))
    proved = loop_stability.region_matrix(d, lc.stored_r_eq(cert))
    _check_region(d, proved)
    _check_extension(loop, x0, d)
    return rho


def _check_region(d: dict, proved: np.ndarray) -> None:
    """The stored region lies inside the proved one, and its volume does not exceed it."""
    gap = np.linalg.eigvalsh(np.asarray(d["P"], dtype=np.float64) - proved).min()
    if not gap >= -1e-12 * np.abs(proved).max():
        raise CertificateError("the stored region is larger than the proved one; the "
                               "certificate was tampered with")
    if float(d["roa_volume"]) > ellipsoid_volume(proved) * (1 + 1e-9):
        raise CertificateError(f"the stored region volume {d['roa_volume']:.9g} exceeds the "
                               "proved one")


def _check_extension(loop, x0: np.ndarray, d: dict) -> None:
    if "extension" not in d:
        return
    P = np.asarray(d["P"], dtype=np.float64)
    loop_reach.recheck(loop, x0, P, d["extension"])
    union = loop_reach.union_area(x0, P, d["extension"], float(d["roa_volume"]))
    if float(d["union_volume"]) > union * (1 + 1e-9):
        raise CertificateError("the stored union volume exceeds the proved one")


register_checker("stability", "lyapunov-bnb")(_check_cells)


# ------------------------------------------------------------------ by the contraction SDP
def _by_sdp(loop, x0, r_eq, half, P, seed, solver):
    A = loop.jacobian(x0)
    rate = linear_rate(A)
    fields: dict = {"spectral_radius": rate}
    if not rate < 1:
        return "contraction-sdp", None, fields, (
            f"the linearised loop at the equilibrium has spectral radius {rate:.9g} ≥ 1: it is "
            "not asymptotically stable, so no region of attraction exists to certify")
    if P is None:
        shapes = ShapeSearch(loop, x0, A, _search_start(loop, half), seed=seed)
        proposal = shapes.propose(grow=half is None, refine=False)
        P = proposal.P if proposal is not None else np.linalg.inv(np.diag(
            _search_start(loop, half) ** 2))
    shape = np.sqrt(np.diag(np.linalg.inv(P)))
    if half is not None:
        shape = np.minimum(shape, half)
    best, log = loop_sdp.search(loop, x0, shape, solver=solver)
    fields["search"] = log
    if best is None:
        return "contraction-sdp", None, fields, (
            "the contraction LMI is infeasible on every box tried "
            f"(x̂ ± s·{np.round(shape, 4).tolist()}, s = 1 … {log[-1]['scale']:g}): the loop "
            "does not contract in any quadratic norm there")
    region = _sdp_region(best["P"], x0, best["lo"], best["hi"], r_eq)
    fields.update({"box": [best["lo"], best["hi"]], "P_lmi": best["P"], "lambda": best["lam"],
                   "P": region, "roa_volume": ellipsoid_volume(region)})
    return "contraction-sdp", best["rho"] * (1 + 1e-12), fields, ""


def _sdp_region(P: np.ndarray, x0, lo, hi, r_eq: float) -> np.ndarray:
    """{|x − x̂|_P ≤ r − 2δ}: inside the box, and inside {|x − x̄|_P ≤ r − δ} for any fixed
    point x̄ within r_eq of x̂ (δ = ‖P^½‖ r_eq)."""
    r = loop_sdp.region_radius(P, x0, lo, hi)
    delta = float(np.linalg.norm(np.linalg.cholesky(P), 2)) * r_eq * (1 + 1e-12)
    if not r > 4 * delta:
        raise CertificateError("the contraction region is no larger than the equilibrium's "
                               "uncertainty")
    return P / (r - 2 * delta) ** 2


def _check_sdp(cert: Certificate, stack, **context) -> float:
    loop = lc.loop_for_check(cert, stack, context)
    d = cert.data
    x0 = np.asarray(d["x_eq"], dtype=np.float64)
    lo, hi = (np.asarray(v, dtype=np.float64) for v in d["box"])
    if not (np.all(lo <= np.asarray(d["equilibrium_box"][0])) and
            np.all(np.asarray(d["equilibrium_box"][1]) <= hi)):
        raise CertificateError("the equilibrium is not inside the certified box")
    rho = loop_sdp.verify(loop, x0, lo, hi, cert.array("P_lmi"), cert.array("lambda"))
    _check_region(d, _sdp_region(cert.array("P_lmi"), x0, lo, hi, lc.stored_r_eq(cert)))
    _check_extension(loop, x0, d)
    return rho


register_checker("stability", "contraction-sdp")(_check_sdp)


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
