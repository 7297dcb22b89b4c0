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
        return _small_gain(loop, net, observation)
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
    if method_name == "lyapunov-bnb":
        # the value stored is the one check() re-proves (the search's own passes may split
        # cells differently and prove a slightly smaller ρ than the re-check can)
        try:
            value = max(value, loop_stability.recheck(loop, x0, r_eq, data, max_cells))
        except CertificateError as e:
            data["time"] = time.perf_counter() - t0
            return Certificate(value=math.inf, certified=False, data=data,
                               reason=f"the region found does not re-verify ({e}); raise "
                               "max_cells or give a smaller region",
                               solver={"name": _SOLVERS[strategy], "time": data["time"]},
                               **common)
        if not value < 1:
            data["time"] = time.perf_counter() - t0
            return Certificate(value=math.inf, certified=False, data=data,
                               reason=f"the re-check proves only ρ = {value!r} ≥ 1; raise "
                               "max_cells or give a smaller region",
                               solver={"name": _SOLVERS[strategy], "time": data["time"]},
                               **common)
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
    region = best.P * _SHRINK
    fields.update({
        "P": region,
        "P_frame": best.P_frame,
        "radius": best.radius,
        "core_radius": best.core_radius,
        "r_in": best.r_in,
        "core_bound": best.core_bound,
        "core_lambda": best.core_lambda,
        "core_kind": best.core_kind,
        "core_eps": best.core_eps,
        "cover": best.cover,
        "roa_volume": ellipsoid_volume(region),
        "cells": best.cells,
    })
    return "lyapunov-bnb", best.rho, fields, ""


#: The region stored is the proved one shrunk by this factor on P (1e-9 relative), so that the
#: check "stored ⊂ proved" needs no tolerance in the unsafe direction: a region enlarged by
#: any amount, however small, is refused.
_SHRINK = 1 + 1e-9


def _check_strategy(d: dict, strategy: str) -> None:
    if d.get("strategy") != strategy:
        raise CertificateError(f"the certificate says strategy {d.get('strategy')!r}, but its "
                               f"method is proved by {strategy!r}; it was tampered with: re-run "
                               "certnet verify")


def _check_cells(cert: Certificate, stack, **context) -> float:
    d = cert.data
    _check_strategy(d, "cells")
    lc.positive_definite(d, "P_frame")
    loop = lc.loop_for_check(cert, stack, context)
    x0 = np.asarray(d["x_eq"], dtype=np.float64)
    rho = loop_stability.recheck(loop, x0, lc.stored_r_eq(cert), d, int(d["max_cells"]))
    proved = loop_stability.region_matrix(d, lc.stored_r_eq(cert))
    _check_region(d, proved)
    _check_extension(loop, x0, d)
    return rho


def _check_region(d: dict, proved: np.ndarray) -> None:
    """The stored region lies inside the proved one, and its volume does not exceed either.

    Both without tolerance in the unsafe direction: P − P_proved must be positive
    semidefinite with a margin above the eigenvalue solver's error (the maker stores P_proved
    × (1 + 1e-9)), and the stored volume must not exceed the proved region's."""
    P = np.asarray(d["P"], dtype=np.float64)
    if P.shape != proved.shape or not np.all(np.isfinite(P)) or not np.array_equal(P, P.T):
        raise CertificateError("the stored region matrix P is not a finite symmetric matrix of "
                               "the proved shape; the certificate was tampered with")
    err = 8 * len(P) * np.finfo(np.float64).eps * float(np.abs(proved).sum())
    gap = float(np.linalg.eigvalsh(P - proved).min())
    if not gap >= err:
        raise CertificateError("the stored region is larger than the proved one; the "
                               "certificate was tampered with: re-run certnet verify")
    if not float(d["roa_volume"]) <= min(ellipsoid_volume(proved), ellipsoid_volume(P)):
        raise CertificateError(f"the stored region volume {d['roa_volume']!r} exceeds the "
                               "volume of the stored or the proved region; the certificate was "
                               "tampered with")


def _check_extension(loop, x0: np.ndarray, d: dict) -> None:
    if "extension" not in d:
        return
    P = np.asarray(d["P"], dtype=np.float64)
    loop_reach.recheck(loop, x0, P, d["extension"])
    union = loop_reach.union_area(x0, P, d["extension"], float(d["roa_volume"]))
    if not float(d["union_volume"]) <= union:
        raise CertificateError("the stored union volume exceeds the proved one; the "
                               "certificate was tampered with")


register_checker("stability", "lyapunov-bnb", norm="P-ellipsoid")(_check_cells)


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
    region = _sdp_region(best["P"], x0, best["lo"], best["hi"], r_eq) * _SHRINK
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
    d = cert.data
    _check_strategy(d, "sdp")
    lc.positive_definite(d, "P_lmi")
    loop = lc.loop_for_check(cert, stack, context)
    x0 = np.asarray(d["x_eq"], dtype=np.float64)
    rate = linear_rate(loop.jacobian(x0))
    if not abs(float(d["spectral_radius"]) - rate) <= 1e-9 * (1 + rate):
        raise CertificateError(f"the stored spectral radius {d['spectral_radius']!r} is not the "
                               f"linearised loop's ({rate!r}); the certificate was tampered with")
    lo, hi = (np.asarray(v, dtype=np.float64) for v in d["box"])
    if not (np.all(lo <= np.asarray(d["equilibrium_box"][0])) and
            np.all(np.asarray(d["equilibrium_box"][1]) <= hi)):
        raise CertificateError("the equilibrium is not inside the certified box")
    rho = loop_sdp.verify(loop, x0, lo, hi, cert.array("P_lmi"), cert.array("lambda"))
    _check_region(d, _sdp_region(cert.array("P_lmi"), x0, lo, hi, lc.stored_r_eq(cert)))
    _check_extension(loop, x0, d)
    return rho


register_checker("stability", "contraction-sdp", norm="P-ellipsoid")(_check_sdp)


# ------------------------------------------------------------------ small gain (LTI)
def _observation_matrix(loop: ClosedLoop) -> np.ndarray:
    """C with h(x) = C x: what the network reads, for the small-gain channel x ↦ π(C x)."""
    from certnet.plants.base import Plant

    kind = loop.observation_kind
    if kind == "state" or (kind == "plant" and type(loop.plant).observe is Plant.observe):
        return np.eye(loop.n)
    if kind == "output":
        return np.asarray(loop.observation.C, dtype=np.float64)
    raise ValueError(
        "method='small-gain' needs a network reading the state or a linear output y = C x; "
        f"this one reads {kind!r} observations; use method='lyapunov' for this loop"
    )


def _small_gain(loop: ClosedLoop, net, observation: Any = "auto") -> Certificate:
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
    C = _observation_matrix(loop)
    gamma, X = hinf_certificate(A, B, C)
    lip = verify.lipschitz(net, method="auto")
    if not lip.certified:
        raise CertificateError(f"the network's Lipschitz bound is not certified: {lip.reason}")
    value = gamma * lip.value * (1 + 1e-12)
    common = dict(
        kind="stability", method="small-gain", value=value, norm="l2-incremental",
        data={"A": A, "B": B, "C": C, "X": X, "hinf": gamma, "lipschitz": lip.to_dict(),
              "loop": lc.describe(loop, observation)},
        solver={"name": "hamiltonian-bisection+DARE", "time": time.perf_counter() - t0},
        margin=1 - value, fingerprint=loop.stack.fingerprint(),
    )
    if value < 1:
        return Certificate(certified=True, **common)
    return Certificate(certified=False, reason=f"loop gain ‖G‖∞·Lip(π) = {gamma:.6g}·"
                       f"{lip.value:.6g} = {value:.6g} ≥ 1", **common)


def _check_small_gain(cert: Certificate, stack, **context) -> float:
    """Re-prove ‖C(zI − A)⁻¹B‖∞ · Lip(π) < 1 for the plant, observation and network given:
    A, B and C are recomputed from them (the stored ones must be those), the KYP matrix proves
    the H∞ bound, the embedded Lipschitz certificate is re-checked on the network, and the
    stored margin must not exceed 1 − the loop gain proved."""
    d = cert.data
    if stack is None or context.get("plant") is None:
        raise CertificateError("re-checking a small-gain certificate needs the network and the "
                               "plant it is about: cert.check(net, plant=plant)")
    stored = d["loop"]
    obs = context.get("observation", stored["observation"])
    loop = lc.make_loop(context["plant"], stack, obs, stored["dt"], None, None,
                        context.get("plant_kwargs", {}))
    lc.check_description(loop, stored, obs)
    from certnet.plants.lti import LTI

    if not isinstance(loop.plant, LTI):
        raise CertificateError("a small-gain certificate is about a linear plant; the plant "
                               "given is not one: pass the plant it was made for")
    A, B = np.asarray(loop.plant.Ad, float), np.asarray(loop.plant.Bd, float)
    C = _observation_matrix(loop)
    for name, want in (("A", A), ("B", B), ("C", C)):
        if not np.array_equal(cert.array(name), want):
            raise CertificateError(f"this small-gain certificate was made for another plant "
                                   f"or observation (its {name} differs from the one given); "
                                   "pass the plant it was made for, or re-run certnet verify")
    gamma = check_kyp(A, B, C, cert.array("X"), float(d["hinf"]))
    lip = Certificate.from_dict(d["lipschitz"])
    if lip.kind != "lipschitz":
        raise CertificateError(f"the embedded certificate is a {lip.kind!r} one, not a "
                               "Lipschitz bound; the certificate was tampered with")
    lv = lip.check(stack)  # its norm, fingerprint and proof, on the network given
    if lip.norm != "l2":
        raise CertificateError(f"the small-gain test needs an ℓ2 Lipschitz bound, the embedded "
                               f"one is in {lip.norm!r}; the certificate was tampered with")
    loop_gain = float(np.nextafter(gamma * lv, math.inf))  # the product rounded up
    if not loop_gain < 1:
        raise CertificateError(f"the loop gain {loop_gain:.9g} is not < 1")
    if not cert.margin <= 1 - loop_gain:
        raise CertificateError(f"the stored margin {cert.margin!r} exceeds 1 − the loop gain "
                               f"proved ({1 - loop_gain!r}); the certificate was tampered with")
    return loop_gain


register_checker("stability", "small-gain", norm="l2-incremental")(_check_small_gain)
