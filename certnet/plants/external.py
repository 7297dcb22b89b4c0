"""Plants users bring: a python-control system or a torch function, as a certnet :class:`Plant`.

:func:`as_plant` turns

* a ``control.StateSpace`` into an :class:`~certnet.plants.LTI` (continuous ones sampled
  exactly with a zero-order hold at ``dt``);
* a ``control.NonlinearIOSystem`` into an :class:`IOSystemPlant`: a discrete system is its
  update map; a continuous one (``sys.dt == 0``) is sampled with a zero-order hold at the
  controller's period ``dt``: x⁺ is the exact solution of ẋ = f(x, u) after ``dt`` s with u
  held (integrator ``"exact"``). :meth:`Plant.update` approximates that flow by classical RK4
  with ``substeps`` steps (for simulation and training); certificates bound the exact flow
  (:mod:`certnet.verify.ode`);
* a torch function ``f(x, u)`` (batched: (B, n), (B, m) → (B, n)) into a :class:`FunctionPlant`
  — a discrete map x⁺ = f(x, u), or with ``continuous=True`` the vector field ẋ = f(x, u).

Each keeps the system's own signal names, and the observation the controller reads is the
system's output (``outfcn`` of an nlsys; ``C x`` of a StateSpace; the state for a function, or
``observation=`` a torch function).

The callbacks of a python-control system are numpy code ``updfcn(t, x, u, params)`` written for
one state x of shape (n,). They are called with *columns*: x of shape (n, B), so that
``x[0]``, ``np.sin(x[0])``, ``A @ x`` act on B states at once; at construction the result is
compared with one-state calls, and a callback that does not vectorise this way is called state
by state instead. The same column call lets certnet's verifier run the callback on interval
jets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from certnet.plants.base import Plant

__all__ = ["as_plant", "IOSystemPlant", "FunctionPlant"]

#: RK4 steps per sampling period used by :meth:`Plant.update` for continuous systems.
SUBSTEPS = 20


def _vec(v: Any, n: int, what: str, default: float = 0.0) -> np.ndarray:
    a = np.broadcast_to(np.asarray(default if v is None else v, dtype=np.float64), (n,)).copy()
    if not np.all(np.isfinite(a) | np.isinf(a)) or np.any(np.isnan(a)):
        raise ValueError(f"{what} must be {n} numbers, got {v!r}")
    return a


def _rk4(f: Callable, x, u, dt: float, substeps: int):
    """x after dt s of ẋ = f(x, u) with u held, by ``substeps`` classical RK4 steps."""
    h = dt / substeps
    for _ in range(substeps):
        k1 = f(x, u)
        k2 = f(x + 0.5 * h * k1, u)
        k3 = f(x + 0.5 * h * k2, u)
        k4 = f(x + h * k3, u)
        x = x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


class _Sampled(Plant):
    """Shared part of the wrappers: sizes, limits, equilibrium and the sampled update."""

    max_episode_steps = 500
    env_id = "certnet/LTI-v0"  # the generic environment id: build it with plant.env()
    substeps = SUBSTEPS

    def _setup(self, n: int, m: int, p: int, names, dt, x_eq, u_eq, u_min, u_max, reset):
        self.state_names, self.input_names, self.obs_names = (tuple(v) for v in names)
        self.state_units, self.input_units = ("",) * n, ("",) * m
        self.dt = float(dt)
        x_eq = _vec(x_eq, n, "x_eq")
        r = np.abs(x_eq) + 1.0 if reset is None else _vec(reset, n, "reset_bound")
        super().__init__(
            u_min=_vec(u_min, m, "u_min", -np.inf),
            u_max=_vec(u_max, m, "u_max", np.inf),
            x_eq=x_eq,
            u_eq=_vec(u_eq, m, "u_eq"),
            obs_low=-np.inf,
            obs_high=np.inf,
            reset_low=x_eq - r,
            reset_high=x_eq + r,
            settle_tolerance=0.02 * r,
        )

    def update(self, x, u):
        """x⁺: the map itself (discrete), or ``substeps`` RK4 steps of the vector field over
        ``dt`` with u held (continuous; certificates bound the exact flow instead)."""
        if self.integrator == "discrete":
            return self._map(x, u)
        return _rk4(self.vector_field, x, u, self.dt, self.substeps)

    def reward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """−(|x − x_eq|² + |u − u_eq|²), shape (B,)."""
        dx = x - torch.as_tensor(self.x_eq, dtype=x.dtype)
        du = u.to(x.dtype) - torch.as_tensor(self.u_eq, dtype=x.dtype)
        return -((dx**2).sum(-1) + (du**2).sum(-1))


class IOSystemPlant(_Sampled):
    """A python-control ``NonlinearIOSystem`` as a plant (see the module docstring).

    Parameters
    ----------
    sys : control.NonlinearIOSystem
        The system; ``sys.params`` are passed to its callbacks.
    dt : float, optional
        Sampling period in s of the controller: required for a continuous system (ZOH
        sampling), must equal ``sys.dt`` (or be omitted) for a discrete one.
    x_eq, u_eq : array_like, optional
        Operating point (default 0): the equilibrium certificates and experts start from.
    u_min, u_max : float or array_like, optional
        Input limits (default unlimited), clipped before the input acts.
    reset_bound : float or array_like, optional
        Half-width of the box episodes start in, around x_eq (default |x_eq| + 1).

    Raises
    ------
    TypeError
        ``sys`` is not a NonlinearIOSystem.
    ValueError
        A missing or inconsistent ``dt``; callbacks whose outputs have the wrong size or depend
        on the input (direct feedthrough: the controller would form an algebraic loop).
    """

    def __init__(self, sys: Any, dt: float | None = None, *, x_eq: Any = None, u_eq: Any = None,
                 u_min: Any = None, u_max: Any = None, reset_bound: Any = None) -> None:
        import control

        if not isinstance(sys, control.NonlinearIOSystem):
            raise TypeError(f"sys must be a control.NonlinearIOSystem, got {type(sys).__name__}")
        if sys.dt == 0:
            if dt is None or not dt > 0:
                raise ValueError(
                    "sys is continuous-time; pass the controller's sampling period, e.g. "
                    f"as_plant(sys, dt=0.05) (zero-order hold), got dt={dt!r}"
                )
            self.integrator = "exact"
        else:
            if sys.dt is True or sys.dt is None:
                raise ValueError("sys is discrete-time with an unspecified sampling period; "
                                 "build it with a numeric dt")
            if dt is not None and not np.isclose(dt, sys.dt):
                raise ValueError(f"dt={dt} differs from the discrete system's dt={sys.dt}")
            self.integrator = "discrete"
            dt = float(sys.dt)
        self.sys = sys
        self.params = dict(sys.params)
        n, m = sys.nstates, sys.ninputs
        p = n if sys.outfcn is None else sys.noutputs
        outs = list(sys.state_labels) if sys.outfcn is None else list(sys.output_labels)
        self._setup(n, m, p, (sys.state_labels, sys.input_labels, outs), dt, x_eq, u_eq,
                    u_min, u_max, reset_bound)
        self._columns = {fn: self._vectorises(fn) for fn in (sys.updfcn, sys.outfcn) if fn}
        self._check_output()

    # ------------------------------------------------------------------ calling numpy code
    def _probe(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(0)
        x = self.x_eq + rng.uniform(-1, 1, (3, self.n_states))
        u = self.u_eq + rng.uniform(-1, 1, (3, self.n_inputs))
        return x, u

    def _vectorises(self, fn: Callable) -> bool:
        """Whether ``fn`` evaluated on columns (n, B) equals its one-state calls."""
        x, u = self._probe()
        rows = np.stack([np.asarray(fn(0.0, a, b, self.params), dtype=float).reshape(-1)
                         for a, b in zip(x, u, strict=True)])
        try:
            cols = np.asarray(fn(0.0, x.T, u.T, self.params), dtype=float)
        except Exception:  # noqa: BLE001  (a callback written for one state only)
            return False
        return cols.shape == rows.T.shape and np.allclose(cols.T, rows, rtol=1e-12, atol=1e-12)

    def _call(self, fn: Callable, x, u):
        """fn on a batch: torch (B, n), (B, m) → torch (B, ·); other arrays (e.g. interval jets)
        are passed as columns and come back as rows."""
        if isinstance(x, torch.Tensor):
            xn = x.detach().to("cpu", torch.float64).numpy()
            un = u.detach().to("cpu", torch.float64).numpy()
            if self._columns[fn]:
                out = np.asarray(fn(0.0, xn.T, un.T, self.params), dtype=float).T
            else:
                out = np.stack([np.asarray(fn(0.0, a, b, self.params), dtype=float).reshape(-1)
                                for a, b in zip(xn, un, strict=True)])
            return torch.as_tensor(out.reshape(xn.shape[0], -1), dtype=x.dtype)
        if not self._columns[fn]:
            raise TypeError(
                f"{getattr(fn, '__name__', fn)!r} works on one state at a time only (called with "
                "columns x of shape (n, B) it differs from one-state calls); certnet needs it "
                "elementwise in x[0], x[1], …, e.g. np.array([x[1], -np.sin(x[0]) + u[0]])"
            )
        out = fn(0.0, x.T, u.T, self.params)
        if isinstance(out, np.ndarray) and out.dtype == object:
            out = np.stack(list(out))  # a list of jets built with np.array([...])
        return out.T

    def _check_output(self) -> None:
        if self.sys.outfcn is None:
            return
        x, u = self._probe()
        y1 = self._call(self.sys.outfcn, torch.as_tensor(x), torch.as_tensor(u))
        y2 = self._call(self.sys.outfcn, torch.as_tensor(x), torch.as_tensor(u + 1.0))
        if y1.shape[1] != self.n_obs:
            raise ValueError(f"outfcn returns {y1.shape[1]} outputs, the system declares "
                             f"{self.n_obs}")
        if not torch.allclose(y1, y2, rtol=1e-12, atol=1e-12):
            raise ValueError(
                "the system's output depends on its input (direct feedthrough); a controller "
                "reading it would close an algebraic loop. Give the system an output that "
                "depends on the state only"
            )

    # ------------------------------------------------------------------ the plant contract
    def _map(self, x, u):
        return self._call(self.sys.updfcn, x, u)

    def vector_field(self, x, u):
        """ẋ = f(x, u) of a continuous system (its ``updfcn``)."""
        if self.integrator == "discrete":
            return super().vector_field(x, u)
        return self._call(self.sys.updfcn, x, u)

    def observe(self, x):
        """The system's output y = h(x) (its ``outfcn`` at u = u_eq), or the state."""
        if self.sys.outfcn is None:
            return x
        u = torch.as_tensor(self.u_eq, dtype=torch.float64).expand(x.shape[0], -1)
        return self._call(self.sys.outfcn, x, u if isinstance(x, torch.Tensor) else u.numpy())


class FunctionPlant(_Sampled):
    """A torch function as a plant (see :func:`as_plant`).

    Parameters
    ----------
    fn : callable
        Batched torch function (B, n), (B, m) → (B, n): x⁺ = fn(x, u), or ẋ = fn(x, u) with
        ``continuous=True``.
    n_states, n_inputs : int
        Sizes n and m.
    dt : float
        Sampling period in s.
    continuous : bool
        ``fn`` is a vector field, sampled with a zero-order hold at ``dt``.
    observation : callable, optional
        Batched torch function x (B, n) → y (B, p) the controller reads (default: the state).
    x_eq, u_eq, u_min, u_max, reset_bound
        As in :class:`IOSystemPlant`.
    names : (states, inputs, outputs), optional
        Signal names (default ``x[i]``, ``u[i]``, ``y[i]``).
    """

    def __init__(self, fn: Callable, n_states: int, n_inputs: int, dt: float, *,
                 continuous: bool = False, observation: Callable | None = None,
                 x_eq: Any = None, u_eq: Any = None, u_min: Any = None, u_max: Any = None,
                 reset_bound: Any = None, names: tuple | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be a callable f(x, u), got {type(fn).__name__}")
        if not (isinstance(dt, (int, float)) and dt > 0 and np.isfinite(dt)):
            raise ValueError(f"dt must be a positive sampling period in s, got {dt!r}")
        n, m = int(n_states), int(n_inputs)
        self.fn, self._obs = fn, observation
        self.integrator = "exact" if continuous else "discrete"
        x0 = torch.as_tensor(_vec(x_eq, n, "x_eq"))[None]
        p = n if observation is None else int(observation(x0).shape[1])
        names = names or ([f"x[{i}]" for i in range(n)], [f"u[{i}]" for i in range(m)],
                          [f"y[{i}]" for i in range(p)])
        self._setup(n, m, p, names, dt, x_eq, u_eq, u_min, u_max, reset_bound)
        out = fn(x0, torch.as_tensor(self.u_eq)[None])
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, n):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"fn(x, u) must return a tensor of shape (B, {n}) for x of shape "
                             f"(B, {n}) and u of shape (B, {m}); got {got} for B = 1")

    def _map(self, x, u):
        return self.fn(x, u)

    def vector_field(self, x, u):
        """ẋ = fn(x, u) (``continuous=True`` only)."""
        if self.integrator == "discrete":
            return super().vector_field(x, u)
        return self.fn(x, u)

    def observe(self, x):
        """``observation(x)``, or the state."""
        return x if self._obs is None else self._obs(x)


def as_plant(system: Any, dt: float | None = None, **kwargs: Any) -> Plant:
    """A certnet :class:`Plant` for a plant, a python-control system or a torch function.

    Parameters
    ----------
    system : Plant, control.StateSpace, control.NonlinearIOSystem or callable
        A Plant is returned as it is. Callables need ``n_states=`` and ``n_inputs=``.
    dt : float, optional
        Sampling period in s (required for continuous systems and callables).
    **kwargs
        Passed to :class:`~certnet.plants.LTI`, :class:`IOSystemPlant` or
        :class:`FunctionPlant` (``x_eq``, ``u_eq``, ``u_min``, ``u_max``, …).

    Returns
    -------
    Plant

    Raises
    ------
    TypeError
        An object that is none of these.

    Examples
    --------
    >>> import numpy as np, control, certnet as cn
    >>> def f(t, x, u, params):
    ...     return np.array([x[1], 10 * np.sin(x[0]) - 0.1 * x[1] + u[0]])
    >>> plant = cn.plants.as_plant(control.nlsys(f, None, states=2, inputs=1), dt=0.05)
    >>> plant.integrator, plant.dt
    ('exact', 0.05)
    """
    import control

    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if isinstance(system, Plant):
        if dt is not None and not np.isclose(dt, system.dt):
            raise ValueError(f"the plant samples at dt={system.dt}, not {dt}; build it with "
                             f"dt={dt}")
        if kwargs:
            raise TypeError(
                f"a {type(system).__name__} carries its own settings, so {sorted(kwargs)} "
                f"would be ignored; build the plant with them (e.g. "
                f"{type(system).__name__}(..., {next(iter(kwargs))}=...)) instead")
        return system
    if isinstance(system, control.StateSpace):
        from certnet.plants.lti import LTI

        known = ("u_min", "u_max", "Q", "R", "reset_bound", "input_saturation")
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise TypeError(f"a control.StateSpace plant takes {list(known)}, not {unknown} "
                            "(its equilibrium is the origin)")
        return LTI(system, dt, **kwargs)
    if isinstance(system, control.NonlinearIOSystem):
        return IOSystemPlant(system, dt, **kwargs)
    if callable(system):
        if dt is None:
            raise ValueError("a plant given as a function needs its sampling period: "
                             "as_plant(f, dt=0.05, n_states=2, n_inputs=1)")
        return FunctionPlant(system, dt=dt, **kwargs)
    raise TypeError(
        f"cannot use a {type(system).__name__} as a plant; pass a certnet Plant, a "
        "control.StateSpace, a control.NonlinearIOSystem, or a torch function f(x, u)"
    )
