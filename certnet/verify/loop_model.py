"""The closed loop a certificate is about: x⁺ = G(x) = F(x, sat(π(h(x)))), read from real code.

:class:`ClosedLoop` joins

* a plant — a certnet :class:`~certnet.plants.Plant`, a ``control.StateSpace`` or
  ``control.NonlinearIOSystem`` (continuous ones sampled with a zero-order hold at ``dt``), or
  a torch function x⁺ = f(x, u) — through :func:`certnet.plants.as_plant`;
* its observation y = h(x) (``plant.observe``, the state, or a torch function of the user's);
* the network π as :func:`certnet.nn.extract_layers` reads it (the forward pass that runs,
  scalings included; unsupported layers are refused by name), evaluated in float64;
* the input saturation sat = clip(·, u_min, u_max) of the plant's declared limits.

It evaluates G at points (torch float64, for simulation, sampling and linearisation) and
encloses G and its Jacobian over boxes of states (:class:`~certnet.verify.jet.Jet`), by running
the same code — ``plant.update`` (discrete plants), or a validated enclosure of the exact
zero-order-hold flow of ``plant.vector_field`` (:mod:`certnet.verify.ode`, plants with
``integrator == "exact"``). Nothing is linearised and no plant is recognised by its class.

:meth:`ClosedLoop.equilibrium` finds the fixed point x̄ = G(x̄) near a guess by Newton's method
and *proves* it with the Krawczyk test: a box X ∋ x̂ with K(X) ⊂ X contains exactly one fixed
point, so a network whose π(x*) is off by round-off is certified about the true nearby fixed
point rather than refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from certnet.errors import EquilibriumError
from certnet.nn.extract import extract_layers
from certnet.plants.external import as_plant
from certnet.verify import interval as iv
from certnet.verify.jet import Jet, as_jet, maximum, minimum, unary
from certnet.verify.jet import elu as _elu
from certnet.verify.jet import gelu as _gelu
from certnet.verify.jet import leaky_relu as _leaky
from certnet.verify.jet import relu as _relu
from certnet.verify.jet import silu as _silu
from certnet.verify.jet import softplus as _softplus

__all__ = ["ClosedLoop", "EquilibriumError", "flush_subnormals"]


@contextlib.contextmanager
def flush_subnormals():
    """Context in which torch flushes subnormal floats to zero (restored afterwards)."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _groupsort(h: Jet, size: int) -> Jet:
    """Sort consecutive groups of ``size`` features ascending (odd–even transposition network
    of min/max, which is exactly what sorting does)."""
    g = h.reshape(*h.shape[:-1], h.shape[-1] // size, size)
    cols = [g[..., i] for i in range(size)]
    for rnd in range(size):
        for i in range(rnd % 2, size - 1, 2):
            a, b = cols[i], cols[i + 1]
            cols[i], cols[i + 1] = minimum(a, b), maximum(a, b)
    from certnet.verify.jet import stack

    return stack(cols, -1).reshape(h.shape)


_ACT = {
    "identity": lambda h, kw: h,
    "tanh": lambda h, kw: unary("tanh", h),
    "sigmoid": lambda h, kw: unary("sigmoid", h),
    "relu": lambda h, kw: _relu(h),
    "leaky_relu": lambda h, kw: _leaky(h, float(kw.get("negative_slope", 0.01))),
    "softplus": lambda h, kw: _softplus(h, float(kw.get("beta", 1.0)), float("inf")),  # no jump
    "elu": lambda h, kw: _elu(h, float(kw.get("alpha", 1.0))),
    "silu": lambda h, kw: _silu(h),
    "gelu": lambda h, kw: _gelu(h),
    "gelu_tanh": lambda h, kw: _gelu(h, "tanh"),
    "groupsort": lambda h, kw: _groupsort(h, int(kw.get("group_size", 2))),
}


def _relu_both(a, slopes: bool):
    lo, hi = np.maximum(a[0], 0.0), np.maximum(a[1], 0.0)
    if not slopes:
        return lo, hi, None, None
    return lo, hi, np.where(a[0] > 0, 1.0, 0.0), np.where(a[1] < 0, 0.0, 1.0)


def _identity_both(a, slopes: bool):
    one = np.ones_like(a[0]) if slopes else None
    return a[0], a[1], one, one


def _tanh_both(a, slopes: bool):
    """tanh's range (two ulps outward, as :data:`iv.FUNCTIONS`) and, from the same two
    evaluations, its slope range 1 − tanh² at the points nearest to and farthest from 0 (with
    the ±1e-15 of :data:`iv.DERIVATIVES`; tanh is odd)."""
    with np.errstate(over="ignore", invalid="ignore"):
        tl, th = np.tanh(a[0]), np.tanh(a[1])
    lo, hi = np.maximum(iv.down(tl, 2), -1.0), np.minimum(iv.up(th, 2), 1.0)
    if not slopes:
        return lo, hi, None, None
    al, ah = np.abs(tl), np.abs(th)
    t_near = np.where((a[0] <= 0) & (a[1] >= 0), 0.0, np.minimum(al, ah))
    t_far = np.maximum(al, ah)
    return (lo, hi, np.clip(1.0 - t_far * t_far - 1e-15, 0.0, 1.0),
            np.clip(1.0 - t_near * t_near + 1e-15, 0.0, 1.0))


def _lib_both(name: str):
    def both(a, slopes: bool):
        lo, hi = iv.FUNCTIONS[name](a)
        if not slopes:
            return lo, hi, None, None
        return (lo, hi, *iv.DERIVATIVES[name](a))

    return both


#: Activations the fused network path handles: name → (a, slopes?) ↦ range and slope range.
_MIDRAD = {
    "identity": _identity_both,
    "tanh": _tanh_both,
    "sigmoid": _lib_both("sigmoid"),
    "relu": _relu_both,
}


@dataclass(frozen=True)
class _Layer:
    """One affine layer's constants for :func:`_midrad_stack`."""

    wT: np.ndarray  # Wᵀ (in, out)
    awT: np.ndarray  # |W|ᵀ
    rows: np.ndarray  # Σ_j |W_ij| (out,)
    c1: float  # (1 + γ)(1 + 8u): the factor on |W| r
    c2: float  # γ (1 + 8u): the factor on the products' magnitudes
    b: np.ndarray
    cb: np.ndarray  # c2 |b| + 1e-300

    @classmethod
    def of(cls, w: np.ndarray, b: np.ndarray) -> _Layer:
        U = iv.U
        n = w.shape[1] + 2
        gam = n * U / (1 - n * U)
        c2 = gam * (1 + 8 * U) * (1 + 4 * U)  # (the constants' own rounding, generously)
        return cls(np.ascontiguousarray(w.T), np.ascontiguousarray(np.abs(w).T),
                   np.abs(w).sum(1), (1 + gam) * (1 + 8 * U) * (1 + 4 * U), c2, b,
                   c2 * np.abs(b) + 1e-300)


def _affine(L: _Layer, m, r, dm, dr):
    """v = W h + b on (m, r) and (dm, dr): m ↦ W m + b, r ↦ |W| r + γ (max|m| Σ_j|W_ij| + |b|
    + |W| r), inflated by 1 + 8u, plus 8u |W m| for the midpoint's rounding."""
    U8 = 8 * iv.U
    vm = m @ L.wT + L.b
    vr = r @ L.awT
    vr *= L.c1
    vr += np.abs(m).max(axis=-1, keepdims=True) * (L.c2 * L.rows)
    vr += L.cb
    vr += U8 * np.abs(vm)
    if dm is None:
        return vm, vr, None, None
    shape = dm.shape[:-1] + (L.wT.shape[1],)
    dvm = (dm.reshape(-1, L.wT.shape[0]) @ L.wT).reshape(shape)  # one GEMM, not B small ones
    dvr = (dr.reshape(-1, L.wT.shape[0]) @ L.awT).reshape(shape)
    dvr *= L.c1
    dvr += np.abs(dm).max(axis=-1, keepdims=True) * (L.c2 * L.rows)
    dvr += 1e-300
    dvr += U8 * np.abs(dvm)
    return vm, vr, dvm, dvr


def _midrad_stack(layers, acts, y: Jet) -> Jet:
    """The network on a jet in midpoint–radius form, fused per layer.

    Values (m, r) and derivatives (dm, dr) go through v = W h + b (:func:`_affine`), which
    bounds the round-off of both products; every radius is inflated by 1 + 8u and the
    midpoint's own rounding is added to it, so no separate outward rounding of each operation
    is needed. Activations take the exact range of their interval and the range of their slope
    (chain rule dh = s dv with s ∈ [s_lo, s_hi])."""
    U8 = 8 * iv.U
    m, r = iv.midrad((y.lo, y.hi))
    dm = dr = None
    if y.dlo is not None:  # derivatives as (…, k, n): one matrix product per layer
        dm, dr = (np.ascontiguousarray(np.swapaxes(v, -1, -2)) for v in iv.midrad((y.dlo,
                                                                                  y.dhi)))
    for k, L in enumerate(layers):
        m, r, dm, dr = _affine(L, m, r, dm, dr)
        if k == len(acts):
            break
        with np.errstate(invalid="ignore", over="ignore"):
            lo, hi, s_lo, s_hi = _MIDRAD[acts[k].name]((m - r, m + r), dm is not None)
            m, r = iv.midrad((lo, hi))
            if dm is not None:
                sm, sr = 0.5 * s_lo + 0.5 * s_hi, 0.5 * (s_hi - s_lo)
                dm_new = sm[..., None, :] * dm
                t = np.abs(dm)
                t += dr
                t *= sr[..., None, :]
                dr *= np.abs(sm)[..., None, :]
                dr += t
                dr *= 1 + U8
                dr += U8 * np.abs(dm_new)
                dr += 1e-300
                dm = dm_new
    lo, hi = iv.down(m - r), iv.up(m + r)
    if dm is None:
        return Jet(lo, hi)
    dlo, dhi = iv.down(dm - dr), iv.up(dm + dr)
    return Jet(lo, hi, np.swapaxes(dlo, -1, -2), np.swapaxes(dhi, -1, -2))


def _identity(x):
    return x


def _output_matrix(plant) -> np.ndarray | None:
    """C of a plant made from a ``control.StateSpace`` (y = C x); None for other plants.

    Raises
    ------
    ValueError
        D ≠ 0: the network's input would depend on its own output (an algebraic loop).
    """
    sys = getattr(plant, "sys", None)
    if sys is None or not all(hasattr(sys, a) for a in ("A", "B", "C", "D")):
        return None
    D = np.asarray(sys.D, dtype=np.float64)
    if np.any(D != 0):
        raise ValueError("the system's D ≠ 0: a network reading y = C x + D u would feed its "
                         "own output back without delay (an algebraic loop); pass "
                         "observation= a function of the state instead")
    return np.asarray(sys.C, dtype=np.float64)


class _LinearOutput:
    """y = C x, on tensors and jets alike (the network reads a StateSpace's output)."""

    def __init__(self, C: np.ndarray):
        self.C = C
        self._Ct = torch.as_tensor(np.ascontiguousarray(C.T))

    def __call__(self, x):
        return x @ (self._Ct if isinstance(x, torch.Tensor) else self.C.T)


def _clip(x, lo: np.ndarray, hi: np.ndarray):
    if np.all(np.isinf(lo)) and np.all(np.isinf(hi)):
        return x
    if isinstance(x, torch.Tensor):
        lo_t, hi_t = torch.as_tensor(lo, dtype=x.dtype), torch.as_tensor(hi, dtype=x.dtype)
        return torch.clamp(x, lo_t, hi_t)
    return minimum(maximum(x, lo), hi)


class ClosedLoop:
    """A plant in feedback with a network (see the module docstring).

    Parameters
    ----------
    plant : Plant, control.StateSpace, control.NonlinearIOSystem or callable
        The plant; anything :func:`certnet.plants.as_plant` accepts.
    net : NormalizedMLP, nn.Sequential or LayerStack
        The controller; it reads the observation and outputs the m plant inputs (before the
        saturation).
    observation : "auto", "state", "plant", "output" or callable
        What the network reads. ``"auto"``: ``plant.observe(x)`` when the network has as many
        inputs as the plant has observations, else the state when it has n inputs, else the
        output y = C x of a plant made from a ``control.StateSpace`` (D must be 0) when it has
        as many inputs as outputs (``"output"`` forces that).
        A callable maps states (B, n) to network inputs (B, d₀), in torch (it is also run on
        interval jets, so write it with torch functions).
    dt : float, optional
        Sampling period in s, for plants that need one (continuous python-control systems,
        functions).
    parameters : dict, optional
        {name: (low, high)}: plant parameters as ranges — attributes of a certnet plant that its
        ``update``/``vector_field`` reads, or keys of an nlsys's ``params``. Enclosures hold for
        every value in the ranges; point evaluations use the plant's own (nominal) values,
        which must lie in them.
    input_gain : (low, high), optional
        An uncertain actuator: the plant receives g ⊙ sat(π(h(x))), g ∈ [low, high] per input
        at every step; the range must contain 1 (the nominal, used by point evaluations).
    **plant_kwargs
        Passed to :func:`~certnet.plants.as_plant` (``x_eq``, ``u_min``, ``n_states``, …).

    Raises
    ------
    ValueError
        The network's input or output size fits neither the observation nor the inputs.
    TypeError
        A plant or network certnet cannot read (the message names it).
    """

    def __init__(self, plant: Any, net: Any, *, observation: Any = "auto",
                 dt: float | None = None, parameters: dict | None = None,
                 input_gain: Any = None, **plant_kwargs: Any) -> None:
        self.plant = as_plant(plant, dt, **plant_kwargs)
        self.stack = extract_layers(net)
        p = self.plant
        self.n, self.m = p.n_states, p.n_inputs
        d_in, d_out = self.stack.widths[0], self.stack.widths[-1]
        if d_out != self.m:
            raise ValueError(f"the network outputs {d_out} values but the plant has {self.m} "
                             f"inputs {list(p.input_names)}")
        self.observation = self._observation(observation, d_in)
        #: "state" when the network reads the state itself, else "plant" or "callable"
        self.observation_kind = (
            "callable" if callable(observation) else "state" if self.observation is _identity
            else "output" if isinstance(self.observation, _LinearOutput) else "plant")
        self.weights = [np.asarray(w) for w in self.stack.folded_weights()]
        self.biases = [np.asarray(b) for b in self.stack.folded_biases()]
        self._layers = [_Layer.of(w, b) for w, b in zip(self.weights, self.biases, strict=True)]
        self.u_lo, self.u_hi = np.asarray(p.u_min, float), np.asarray(p.u_max, float)
        self.continuous = p.integrator == "exact"
        self._torch_acts = [a.module().double() for a in self.stack.activations]
        self.parameters = self._parameters(parameters or {})
        self.input_gain = self._gain(input_gain)
        self.bounded_plant = self._interval_plant()

    def _parameters(self, parameters: dict) -> dict:
        p, out = self.plant, {}
        if not isinstance(parameters, dict):
            raise TypeError(f"parameters must be a dict {{name: (low, high)}}, got "
                            f"{type(parameters).__name__}")
        for name, rng in parameters.items():
            lo, hi = (float(v) for v in rng)
            held = getattr(p, "params", {})
            nominal = held[name] if name in held else getattr(p, name, None)
            if not isinstance(nominal, (int, float, np.floating)):
                raise ValueError(
                    f"{type(p).__name__} has no numeric parameter {name!r} (an attribute read "
                    "by its update/vector_field, or a key of an nlsys's params); a function "
                    "plant takes its uncertain constants from a closure — wrap them yourself"
                )
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= float(nominal) <= hi):
                raise ValueError(f"parameter {name!r}: the range [{lo}, {hi}] must be finite "
                                 f"and contain the plant's value {float(nominal)!r}")
            out[name] = (lo, hi)
        return out

    def _gain(self, gain: Any):
        if gain is None:
            return None
        lo, hi = (np.broadcast_to(np.asarray(v, dtype=np.float64), (self.m,)).copy()
                  for v in gain)
        if not (np.all(np.isfinite(lo) & np.isfinite(hi)) and np.all(lo <= 1) and
                np.all(hi >= 1) and np.all(lo >= 0)):
            raise ValueError(f"input_gain must be (low, high) with 0 ≤ low ≤ 1 ≤ high, got "
                             f"{gain!r}")
        return (lo, hi)

    def _interval_plant(self):
        """The plant with its uncertain parameters replaced by interval constants."""
        if not self.parameters:
            return self.plant
        import copy

        q = copy.copy(self.plant)
        if hasattr(q, "params"):
            q.params = dict(q.params)
        for name, (lo, hi) in self.parameters.items():
            j = Jet(np.float64(lo), np.float64(hi))
            if name in getattr(q, "params", {}):
                q.params[name] = j
            else:
                setattr(q, name, j)
        return q

    def _observation(self, observation: Any, d_in: int) -> Callable:
        p = self.plant
        if callable(observation):
            return observation
        if observation == "plant" or (observation == "auto" and d_in == p.n_obs):
            if d_in != p.n_obs:
                raise ValueError(f"the network reads {d_in} inputs but the plant observes "
                                 f"{p.n_obs} ({list(p.obs_names)})")
            return p.observe
        if observation == "state" or (observation == "auto" and d_in == self.n):
            if d_in != self.n:
                raise ValueError(f"the network reads {d_in} inputs but the plant has "
                                 f"{self.n} states")
            return _identity
        C = _output_matrix(p)
        if observation == "output" or (observation == "auto" and C is not None
                                       and d_in == len(C)):
            if C is None or d_in != len(C):
                raise ValueError(
                    f"the network reads {d_in} inputs; observation='output' needs a plant "
                    "made from a control.StateSpace with as many outputs y = C x"
                    + ("" if C is None else f" (this one has {len(C)})"))
            return _LinearOutput(C)
        if observation == "auto":
            raise ValueError(
                f"the network reads {d_in} inputs, but the plant has {self.n} states "
                f"{list(p.state_names)} and observes {p.n_obs} ({list(p.obs_names)}); pass "
                "observation= a torch function from the state (B, n) to the network's input "
                f"(B, {d_in})"
            )
        raise ValueError(f"observation must be 'auto', 'state', 'plant', 'output' or a "
                         f"callable, got {observation!r}")

    # ------------------------------------------------------------------ point evaluation
    @property
    def dt(self) -> float:
        """Sampling period in s."""
        return float(self.plant.dt)

    def network(self, y: torch.Tensor) -> torch.Tensor:
        """π(y) in float64 torch (the folded layer stack, differentiable)."""
        h = y
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ torch.as_tensor(w.T) + torch.as_tensor(b)
            if k < len(self._torch_acts):
                h = self._torch_acts[k](h)
        return h

    def control(self, x: torch.Tensor) -> torch.Tensor:
        """sat(π(h(x))), shape (B, m)."""
        return _clip(self.network(self.observation(x)), self.u_lo, self.u_hi)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """G(x) = F(x, sat(π(h(x)))) for states (B, n), float64 (the plant's own ``update``;
        for a continuous plant that is its RK4 approximation of the exact flow)."""
        return self.plant.update(x, self.control(x))

    def simulate(self, x0: np.ndarray, steps: int) -> np.ndarray:
        """States after ``steps`` steps from each row of x0 (B, n); diverging rows become inf.

        Subnormal numbers are flushed to zero while it runs (a converging loop reaches them,
        and on x86 each operation on them is ~100× slower); that moves states by < 1e-307.
        """
        x = torch.as_tensor(np.asarray(x0, dtype=np.float64))
        with torch.no_grad(), flush_subnormals():
            for _ in range(int(steps)):
                x = self.step(x)
                x = torch.where(torch.isfinite(x), x, torch.full_like(x, np.inf))
                x = torch.clamp(x, -1e12, 1e12)
        return x.numpy()

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """∂G/∂x at one state (n,): the midpoint of its jet enclosure at that point (the same
        code path as the proofs, so it works for numpy plants and exact flows alike)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        z = np.zeros((1, self.n))
        _, box = self.enclose(z, z, x, np.eye(self.n))
        return 0.5 * box.dlo[0] + 0.5 * box.dhi[0]

    # ------------------------------------------------------------------ enclosures
    def network_jet(self, y: Jet) -> Jet:
        """π over a box of network inputs (:func:`_midrad_stack` when every activation has a
        closed-form range, else operation by operation)."""
        if all(a.name in _MIDRAD for a in self.stack.activations):
            return _midrad_stack(self._layers, self.stack.activations, y)
        h = y
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.T + b
            if k < len(self.stack.activations):
                spec = self.stack.activations[k]
                h = _ACT[spec.name](h, spec.kwargs)
        return h

    def plant_jacobians(self, x_lo: np.ndarray, x_hi: np.ndarray, u_lo: np.ndarray,
                        u_hi: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Enclosures of ∂F/∂x (n, n) and ∂F/∂u (n, m) over the box X × U, x and u
        independent (the exact flow's for continuous plants; every parameter value)."""
        n, m = self.n, self.m
        eye = np.eye(n + m)
        X = Jet(x_lo[None], x_hi[None], eye[None, :n], eye[None, :n])
        U = Jet(u_lo[None], u_hi[None], eye[None, n:], eye[None, n:])
        if self.continuous:
            from certnet.verify.ode import flow_jacobian

            out = flow_jacobian(self, X, U)
        else:
            out = as_jet(self.bounded_plant.update(X, U))
        d = (out.dlo[0], out.dhi[0])
        return (d[0][:, :n], d[1][:, :n]), (d[0][:, n:], d[1][:, n:])

    def control_jet(self, x: Jet) -> Jet:
        """g ⊙ sat(π(h(x))) over a box of states (g the uncertain gain, or 1)."""
        u = _clip(self.network_jet(as_jet(self.observation(x))), self.u_lo, self.u_hi)
        if self.input_gain is not None:
            u = u * Jet(*self.input_gain)
        return u

    def enclose(self, lo: np.ndarray, hi: np.ndarray, x0: np.ndarray, M: np.ndarray
                ) -> tuple[Jet, Jet]:
        """Enclosures of G over cells x = x0 + M z, z ∈ [lo, hi] (B, n).

        Returns
        -------
        (Jet, Jet)
            G at the cells' centres (values only) and G over the cells with its derivatives
            with respect to z (shape (B, n, n)).
        """
        mid = 0.5 * lo + 0.5 * hi
        zc = Jet(mid, mid)
        zb = Jet.box(lo, hi)
        return self.advance(zc @ M.T + x0, zb @ M.T + x0, 0.5 * (hi - lo))

    def advance(self, xc: Jet, xb: Jet, rz: np.ndarray) -> tuple[Jet, Jet]:
        """One step of the loop on cells given as jets: ``xc`` the states their centres have
        reached (values), ``xb`` the states the cells have reached with their derivatives with
        respect to the cells' coordinates z, ``rz`` (B, k) the cells' half-widths in z.

        Returns the same pair one step later; the value of the second is tightened by the
        mean-value form around the first, xb⁺ ⊆ xc⁺ + (∂x⁺/∂z)(Z − z_c). Iterating it encloses
        G^k over cells (:mod:`certnet.verify.loop_reach`)."""
        if self.continuous:
            from certnet.verify.ode import flow

            return flow(self, xc, xb, rz)
        uc, ub = self.control_jet(xc), self.control_jet(xb)
        p = self.bounded_plant
        gc, gb = as_jet(p.update(xc, uc)), as_jet(p.update(xb, ub))
        spread = iv.up(np.einsum("bik,bk->bi", np.maximum(np.abs(gb.dlo), np.abs(gb.dhi)), rz))
        lo = np.maximum(gb.lo, iv.down(gc.lo - spread))
        hi = np.minimum(gb.hi, iv.up(gc.hi + spread))
        return gc, Jet(lo, hi, gb.dlo, gb.dhi)

    # ------------------------------------------------------------------ the equilibrium
    def equilibrium(self, x_guess: Any = None, *, tol: float = 1e-13) -> tuple[np.ndarray, ...]:
        """The closed-loop fixed point x̄ = G(x̄) near ``x_guess`` (default ``plant.x_eq``).

        Newton's method on G(x) − x from the guess (float64), then the Krawczyk test on a box
        X = x̂ ± r: with Y ≈ (J_G(x̂) − I)⁻¹, K(X) = x̂ − Y(G(x̂) − x̂) + (I − Y(J_G(X) − I))(X − x̂);
        K(X) ⊂ X proves that X holds exactly one fixed point (r grows ×10 from 1e-12 relative
        until it does, up to 1e-6). The fixed point must lie within 1 % (relative to
        1 + |x_guess|) of the guess: a network whose π(h(x*)) is slightly off moves the
        equilibrium a little, and that nearby point is the one certified.

        Returns
        -------
        (x̂, lo, hi)
            The Newton point and the proved box [lo, hi] ∋ x̄ (all shape (n,)).

        Raises
        ------
        BoundError
            The loop map has no finite bound at the point (a singularity; the operation is
            named).
        EquilibriumError
            Newton does not converge near the guess (the message gives the residual there and
            the point it reached), the guess is far from the fixed point found, or the
            Krawczyk test fails (a non-isolated equilibrium: G'(x̄) has an eigenvalue 1).
        """
        p = self.plant
        x = np.asarray(p.x_eq if x_guess is None else x_guess, dtype=np.float64).reshape(-1)
        if x.shape != (self.n,) or not np.all(np.isfinite(x)):
            raise ValueError(f"x_eq must be {self.n} finite numbers {list(p.state_names)}, "
                             f"got {x_guess!r}")
        guess = x.copy()
        with torch.no_grad():
            r0 = self.step(torch.as_tensor(x)[None])[0].numpy() - x
        if not np.all(np.isfinite(r0)):
            self._bounded_at(x)  # names the singular operation
        scale = 1.0 + float(np.abs(x).max())
        for _ in range(60):
            with torch.no_grad():
                r = self.step(torch.as_tensor(x)[None])[0].numpy() - x
            if not np.all(np.isfinite(r)):
                break
            if np.abs(r).max() <= tol * scale:
                break
            J = self.jacobian(x) - np.eye(self.n)
            try:
                x = x - np.linalg.solve(J, r)
            except np.linalg.LinAlgError:
                break
        else:
            r = np.full(self.n, np.inf)
        far = np.abs(x - guess).max() > 1e-2 * scale
        if not np.all(np.isfinite(x)) or not np.abs(r).max() <= 1e-9 * scale or far:
            raise EquilibriumError(
                f"x_eq = {guess.tolist()} is not a closed-loop equilibrium: G(x_eq) − x_eq = "
                f"{r0.tolist()} (G(x) = F(x, sat(π(h(x))))), and Newton's method "
                + ("did not converge near it" if not np.abs(r).max() <= 1e-9 * scale
                   else f"reached {x.tolist()}, far from it")
                + ". Pass the loop's equilibrium as x_eq, or a network with π(h(x_eq)) = u_eq"
            )
        self._bounded_at(x)
        return self._krawczyk(x)

    def _bounded_at(self, x: np.ndarray) -> None:
        """Raise BoundError naming the operation when G has no finite enclosure near x."""
        from certnet.errors import BoundError

        iv.unbounded(clear=True)
        n = self.n
        rad = 1e-9 * (1.0 + np.abs(x))
        _, box = self.enclose(-rad[None], rad[None], x, np.eye(n))
        if not (np.all(np.isfinite(box.lo)) and np.all(np.isfinite(box.hi))
                and np.all(np.isfinite(box.dlo)) and np.all(np.isfinite(box.dhi))):
            why = "; ".join(iv.unbounded(clear=True)) or "an overflow"
            raise BoundError(
                f"the loop map has no finite bound at the equilibrium {x.tolist()} ({why}): the "
                "plant or observation is singular there; certnet can only certify a loop that "
                "is bounded and differentiable around its equilibrium"
            )

    def _krawczyk(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        for rel in (1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6):
            rad = rel * (1.0 + np.abs(x))
            lo, hi = iv.down(x - rad), iv.up(x + rad)
            if self._krawczyk_holds(x, lo, hi):
                return x, lo, hi
        box = self._banach(x)
        if box is not None:
            return (x, *box)
        uncertain = bool(self.parameters) or self.input_gain is not None
        _, box = self.enclose(np.zeros((1, self.n)), np.zeros((1, self.n)), x, np.eye(self.n))
        kink = bool(np.any(box.dhi - box.dlo > 1e-9 * (1 + np.abs(box.dhi))))
        if uncertain:
            why = ("the fixed point moves with the parameter ranges or the uncertain input gain "
                   "(a gain g on a nonzero equilibrium input u* shifts it), or the loop does "
                   "not contract for every plant of the set there; narrow the ranges, or "
                   "certify the nominal loop")
        elif kink:
            why = ("the loop map has a kink at that point (e.g. a ReLU network without biases, "
                   "every neuron switching there) and does not contract for every slope of "
                   "the kink")
        else:
            why = ("the linearised loop has an eigenvalue at or near 1 there, so it is not "
                   "asymptotically stable at that point")
        err = EquilibriumError(
            f"the closed-loop fixed point near {x.tolist()} could not be proved isolated (the "
            f"Krawczyk test failed up to a 1e-6 box, and so did a contraction proof): "
            f"{why}; certnet cannot certify a region around it this way"
        )
        err.point, err.kink = x, kink  # for callers with another proof (loop_kink)
        raise err

    def _banach(self, x: np.ndarray):
        """The contraction-LMI proof of the fixed point (:func:`loop_sdp.fixed_point_box`),
        for loops with a kink at it (ReLU networks without biases)."""
        from certnet.verify import loop_sdp

        try:
            return loop_sdp.fixed_point_box(self, x)
        except (TypeError, ValueError):  # GroupSort, or an LMI too large for the SDP route
            return None

    def prove_fixed_point(self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Re-prove that the box [lo, hi] ∋ x holds exactly one fixed point of G (for every
        parameter value) — by the Krawczyk test, or else by a contraction proof of a box inside
        it; raises CertificateError otherwise."""
        from certnet.errors import CertificateError

        proved = bool(np.all(lo <= x) and np.all(x <= hi))
        if proved and not self._krawczyk_holds(x, lo, hi):
            box = self._banach(x)
            proved = box is not None and bool(np.all(lo <= box[0]) and np.all(box[1] <= hi))
        if not proved:
            raise CertificateError(
                "the stored equilibrium box does not prove a fixed point of this loop (Krawczyk "
                "test fails); the certificate was made for another loop or tampered with"
            )

    def _krawczyk_holds(self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
        """K(X) ⊂ int X for X = [lo, hi] (see :meth:`equilibrium`)."""
        n = self.n
        eye = np.eye(n)
        try:
            Y = np.linalg.inv(self.jacobian(x) - eye)
        except np.linalg.LinAlgError:
            return False
        gc, _ = self.enclose(np.zeros((1, n)), np.zeros((1, n)), x, eye)  # G(x̂)
        _, gbox = self.enclose((lo - x)[None], (hi - x)[None], x, eye)
        if gbox.dlo is None or not np.all(np.isfinite(gbox.dlo)) or not np.all(
                np.isfinite(gbox.dhi)):
            return False
        res = (iv.down(gc.lo[0] - x), iv.up(gc.hi[0] - x))  # G(x̂) − x̂
        jr = (gbox.dlo[0] - eye, gbox.dhi[0] - eye)  # J_G(X) − I (exact: I is 0/1)
        a = iv.matmul_const(res, -Y)  # −Y [res]
        c_lo, c_hi = iv.matmul_const((jr[0].T, jr[1].T), Y)  # (Y [jr])ᵀ
        c = (iv.down(eye - c_hi.T), iv.up(eye - c_lo.T))  # I − Y [jr]
        dx = (np.broadcast_to(lo - x, (n, n)), np.broadcast_to(hi - x, (n, n)))
        prod = iv.mul(c, dx)
        b = (iv.down(prod[0].sum(1) - 4 * n * iv.U * np.abs(prod[0]).sum(1)),
             iv.up(prod[1].sum(1) + 4 * n * iv.U * np.abs(prod[1]).sum(1)))
        k_lo, k_hi = iv.add(a, b)
        return bool(np.all(x + k_lo > lo) and np.all(x + k_hi < hi))
