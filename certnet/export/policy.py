"""Networks as policies (obs → action, scaled and clipped), and seeded evaluation on gymnasium."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from certnet.export.batched import BatchedPolicy, Episodes, run_twin, run_vector
from certnet.nn.extract import extract_layers
from certnet.plants.base import Plant
from certnet.plants.policy import apply_policy

__all__ = ["NetworkPolicy", "to_policy", "Evaluation", "evaluate", "BACKENDS"]

BACKENDS = ("auto", "twin", "vector", "gym")
"""Values of ``evaluate(..., backend=…)``."""


class NetworkPolicy:
    """a = clip(s_a ⊙ net(s_o ⊙ (obs − c_o)) + c_a, low, high), callable on numpy or torch.

    Torch in → torch out (differentiable, for training); numpy in → numpy out with the
    observation's float dtype. ``predict(obs)`` returns ``(action, None)`` like a
    stable-baselines3 model.

    Attributes
    ----------
    net : nn.Module
    low, high : ndarray or None
        Action limits (None: no clipping).
    """

    def __init__(self, net: nn.Module, n_obs: int, low, high, obs_offset, obs_scale,
                 action_offset, action_scale) -> None:
        self.net, self.n_obs = net, n_obs
        self.low, self.high = low, high
        self._affine = (obs_offset, obs_scale, action_offset, action_scale)
        self.dtype = next(net.parameters()).dtype

    def _act(self, obs: torch.Tensor) -> torch.Tensor:
        co, so, ca, sa = (torch.as_tensor(v, dtype=self.dtype) for v in self._affine)
        a = self.net((obs.to(self.dtype) - co) * so) * sa + ca
        if self.low is not None:
            a = torch.maximum(torch.minimum(a, torch.as_tensor(self.high, dtype=a.dtype)),
                              torch.as_tensor(self.low, dtype=a.dtype))
        return a

    def __call__(self, obs: Any) -> Any:
        if isinstance(obs, torch.Tensor):
            return apply_policy(self._act, obs, self.n_obs)
        with torch.no_grad():
            return apply_policy(self._act, obs, self.n_obs, dtype=self.dtype)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, None]:
        """stable-baselines3-style ``(action, state)``; the policy is deterministic."""
        return self(obs), None


def to_policy(
    net: nn.Module,
    *,
    plant: Plant | None = None,
    env: Any = None,
    low: Any = None,
    high: Any = None,
    obs_offset: Any = 0.0,
    obs_scale: Any = 1.0,
    action_offset: Any = 0.0,
    action_scale: Any = 1.0,
) -> NetworkPolicy:
    """A network as a policy: obs → action, with optional affine scaling and action clipping.

    Parameters
    ----------
    net : NormalizedMLP or nn.Sequential
        The network (a NormalizedMLP already carries its own scalings).
    plant, env : Plant or gymnasium Env, optional
        Where the action limits come from (``plant.u_min/u_max`` or ``env.action_space``).
    low, high : array_like, optional
        Explicit action limits (override ``plant``/``env``).
    obs_offset, obs_scale, action_offset, action_scale : float or array_like
        Extra scalings around the network (default identity).

    Returns
    -------
    NetworkPolicy

    Raises
    ------
    TypeError
        ``net`` is not a supported network (see :func:`certnet.nn.extract_layers`).
    ValueError
        Only one of ``low``/``high``, or ``low > high``.
    """
    stack = extract_layers(net)  # validates the network and gives its sizes
    if plant is not None and low is None and high is None:
        low, high = plant.u_min, plant.u_max
    if env is not None and low is None and high is None:
        low, high = env.action_space.low, env.action_space.high
    if (low is None) != (high is None):
        raise ValueError("give both low and high action limits, or neither")
    if low is not None:
        m = stack.widths[-1]
        low = np.broadcast_to(np.asarray(low, dtype=np.float64), (m,)).copy()
        high = np.broadcast_to(np.asarray(high, dtype=np.float64), (m,)).copy()
        if np.any(low > high):
            raise ValueError(f"action low {low} exceeds high {high}")
    return NetworkPolicy(net, stack.widths[0], low, high, obs_offset, obs_scale,
                         action_offset, action_scale)


@dataclass(frozen=True)
class Evaluation:
    """Per-episode results of :func:`evaluate` and their summaries.

    Attributes
    ----------
    returns : ndarray, shape (E,)
        Undiscounted episode returns.
    lengths : ndarray of int, shape (E,)
    success : ndarray of float, shape (E,)
        1.0/0.0; NaN when the environment has no known plant (no success criterion).
    settling_time : ndarray, shape (E,)
        In s: when the state entered the plant's settle band for good (goal plants: when the
        goal was reached); NaN if never.
    effort : ndarray, shape (E,)
        Σ_t ‖u_t‖² of the commanded actions.
    backend : {"twin", "vector", "gym"}
        Which path ran: the batched torch twin, gymnasium's ``SyncVectorEnv``, or the one-env
        loop.
    policy_batched : bool
        Whether the policy was called on batches of observations (False: row by row, because
        it could not take a batch; always False on the one-env loop).
    parameters : dict of str → ndarray, shape (E,)
        The plant parameters drawn for each episode (empty without ``parameters=``).
    """

    returns: np.ndarray
    lengths: np.ndarray
    success: np.ndarray
    settling_time: np.ndarray
    effort: np.ndarray
    backend: str = "gym"
    policy_batched: bool = False
    parameters: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))

    @property
    def worst_return(self) -> float:
        """The smallest episode return (the worst case over the episodes run)."""
        return float(np.min(self.returns))

    @property
    def quantiles(self) -> dict[float, float]:
        """5 %, 50 % and 95 % quantiles of the return (linear interpolation)."""
        qs = (0.05, 0.5, 0.95)
        return dict(zip(qs, (float(v) for v in np.quantile(self.returns, qs)), strict=True))

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success))

    def summary(self) -> str:
        """One line: return mean ± std, worst and quantiles, success, settling, effort, backend."""
        st = self.settling_time[np.isfinite(self.settling_time)]
        st_txt = f"{st.mean():.2f} ± {st.std():.2f} s" if st.size else "n/a"
        q = self.quantiles
        return (
            f"return {self.mean_return:.2f} ± {self.std_return:.2f} over {len(self.returns)} "
            f"episodes (worst {self.worst_return:.2f}; 5/50/95 % {q[0.05]:.2f}/{q[0.5]:.2f}/"
            f"{q[0.95]:.2f}); success {self.success_rate:.0%}; settling {st_txt}; "
            f"effort {self.effort.mean():.3g} ± {self.effort.std():.3g}; backend {self.backend}"
        )


def _twin(env: Any) -> Plant | None:
    from certnet.plants import MountainCar, Pendulum, PlantEnv

    raw = env.unwrapped
    if isinstance(raw, PlantEnv):
        return raw.plant
    spec_id = getattr(env.spec, "id", None)
    if spec_id == "Pendulum-v1":
        return Pendulum(g=raw.g)
    if spec_id == "MountainCarContinuous-v0":
        return MountainCar(goal_velocity=raw.goal_velocity)
    return None


def _make(env: Any):
    import gymnasium

    import certnet.plants  # noqa: F401  (registers the certnet/… ids)

    if not isinstance(env, str):
        if not isinstance(env, gymnasium.Env):
            raise TypeError(f"env must be a gymnasium Env or an id string, got {env!r}")
        return env
    if env not in gymnasium.registry:
        close = difflib.get_close_matches(env, list(gymnasium.registry), n=3)
        raise ValueError(
            f"unknown environment id {env!r}; did you mean {close}? certnet registers "
            f"{sorted(certnet.plants.ENV_IDS)} when certnet.plants is imported"
        )
    return gymnasium.make(env)


_STANDARD_WRAPPERS = ("TimeLimit", "OrderEnforcing", "PassiveEnvChecker")


def _wrappers(env: Any) -> tuple[list[str], int | None]:
    """Names of the wrappers around ``env`` and its ``TimeLimit`` (None without one)."""
    import gymnasium

    names, limit = [], None
    while isinstance(env, gymnasium.Wrapper):
        names.append(type(env).__name__)
        if isinstance(env, gymnasium.wrappers.TimeLimit):
            limit = int(env._max_episode_steps)
        env = env.env
    return names, limit


def _ranges(plant: Plant, parameters: Any) -> dict[str, tuple[float, float]]:
    """Validate ``parameters`` against ``plant.perturbable`` and the plant's constructor."""
    if not hasattr(parameters, "items"):
        raise TypeError(
            f"parameters must map names to (low, high) ranges, e.g. {{'mass': (0.8, 1.2)}}, "
            f"got {parameters!r}"
        )
    cls, valid = type(plant), list(type(plant).perturbable)
    out = {}
    for name, rng in parameters.items():
        if name not in valid:
            raise ValueError(
                f"{name!r} is not a perturbable parameter of {cls.__name__}; valid names: "
                f"{valid or 'none (its parameters are baked in at construction)'}"
            )
        try:
            lo, hi = (float(v) for v in rng)
        except (TypeError, ValueError):
            raise ValueError(
                f"range of {name!r} must be two numbers (low, high), got {rng!r}; valid names: "
                f"{valid}"
            ) from None
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
            raise ValueError(
                f"range of {name!r} must be finite with low ≤ high, got ({lo}, {hi}); valid "
                f"names: {valid}"
            )
        for v in (lo, hi):
            try:
                cls(**{name: v})  # the constructor's own checks (e.g. mass > 0)
            except ValueError as e:
                raise ValueError(f"range of {name!r} = ({lo}, {hi}): {e}") from None
        out[name] = (lo, hi)
    return out


def _run_gym(policy: Any, env: Any, seeds: list[int], plant: Plant | None) -> Episodes:
    out = Episodes.empty(len(seeds))
    for ep, s in enumerate(seeds):
        obs, _ = env.reset(seed=s)
        total, eff, steps, settled_since, term = 0.0, 0.0, 0, 0, False
        while True:
            a = np.asarray(policy(obs), dtype=env.action_space.dtype).reshape(
                env.action_space.shape)
            obs, r, term, trunc, _ = env.step(a)
            total += float(r)
            eff += float(np.sum(np.asarray(a, dtype=np.float64) ** 2))
            steps += 1
            if plant is not None:
                x = torch.as_tensor(np.asarray(env.unwrapped.state, dtype=np.float64))[None]
                if not bool(plant.is_settled(x)[0]):
                    settled_since = steps
            if term or trunc:
                break
        out.returns[ep], out.effort[ep], out.lengths[ep] = total, eff, steps
        out.settled_since[ep], out.terminated[ep] = settled_since, term
    return out


def _count(name: str, v: Any) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def evaluate(
    policy: Any,
    env: Any,
    episodes: int | None = None,
    seed: int = 0,
    *,
    backend: str = "auto",
    num_envs: int = 32,
    parameters: dict[str, tuple[float, float]] | None = None,
    samples: int | None = None,
    obs_noise: Any = 0.0,
    action_delay: int = 0,
) -> Evaluation:
    """Run seeded episodes (reset seeds ``seed``, ``seed+1``, …) of a policy, batched if possible.

    Parameters
    ----------
    policy : callable
        numpy observation → action (e.g. :func:`to_policy`, an expert). The batched backends
        first try it on a (B, n_obs) float32 batch and fall back to one observation at a time
        if it cannot take one (``Evaluation.policy_batched`` says which).
    env : str or gymnasium.Env
        A registered id (``"Pendulum-v1"``, ``"certnet/ContinuousCartPole-v0"``, …) or an env.
    episodes : int, optional
        Number of episodes E ≥ 1 (default 10, or ``samples``).
    seed : int
        Seed of the first episode (≥ 0); also seeds the parameter draws and the noise.
    backend : {"auto", "twin", "vector", "gym"}
        ``"twin"``: every episode at once on the batched torch plant of a known plant, from the
        initial states of ``env.reset(seed=…)``, so the returns are the one-env loop's (to
        float round-off). ``"vector"``: gymnasium's ``SyncVectorEnv`` of the env's spec, each
        episode reset with its own seed. ``"gym"``: the one-env loop. ``"auto"``: twin for a
        known plant whose env carries only gymnasium's standard wrappers, else vector when the
        env has a spec, else gym.
    num_envs : int
        Sub-environments of the vector backend (≥ 1; at most E are made).
    parameters : dict of str → (float, float), optional
        Perturbed plants (twin backend): each episode draws every named parameter uniformly
        in [low, high] (SI units of the plant's constructor argument, e.g. ``{"mass": (0.8,
        1.2)}`` in kg). Names are the plant's :attr:`~certnet.plants.Plant.perturbable`.
    samples : int, optional
        Number of perturbed episodes (one draw each); an alias of ``episodes``.
    obs_noise : float or array_like, shape (n_obs,)
        Standard deviation of Gaussian sensor noise added to every observation, in
        observation units (twin backend).
    action_delay : int
        Actions act this many steps after they are computed (``plant.u_eq`` before; twin
        backend).

    Returns
    -------
    Evaluation

    Notes
    -----
    Success: goal plants (MountainCar) succeed when the goal is reached; other plants when the
    episode is not terminated (e.g. the cart-pole did not fall) and the state is in the settle
    band (``plant.settle_tolerance`` around ``x_eq``) at the end. Known plants are those of
    certnet environments and of ``Pendulum-v1``/``MountainCarContinuous-v0`` (their twins).
    The vector backend counts each episode's return once, from its own steps (the env runs
    in ``AutoresetMode.DISABLED`` and finished slots are reset with the next episode's seed).

    Raises
    ------
    ValueError
        Unknown id, episodes/samples < 1 or both given and different, a negative seed, an
        unknown backend, a backend the env cannot run, or bad ``parameters`` (unknown name —
        the message lists the valid ones —, a range that is not finite or has low > high,
        or a value the plant's constructor refuses), negative noise or delay.
    TypeError
        ``env`` is neither a string nor a gymnasium Env, or ``parameters`` is not a mapping.
    """
    if episodes is not None and samples is not None and episodes != samples:
        raise ValueError(
            f"give episodes or samples, not both ({episodes} ≠ {samples}); samples is the "
            "number of perturbed episodes"
        )
    n_ep = _count("samples" if samples is not None else "episodes",
                  samples if samples is not None else (10 if episodes is None else episodes))
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer ≥ 0, got {seed!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    num_envs = _count("num_envs", num_envs)
    delay = action_delay
    if not isinstance(delay, (int, np.integer)) or isinstance(delay, bool) or delay < 0:
        raise ValueError(f"action_delay must be an integer number of steps ≥ 0, got {delay!r}")
    env = _make(env)
    plant = _twin(env)
    names, limit = _wrappers(env)
    extra = [w for w in names if w not in _STANDARD_WRAPPERS]
    why_not_twin = (
        "it is not a certnet plant, Pendulum-v1 or MountainCarContinuous-v0" if plant is None
        else f"it carries wrappers {extra} the twin does not model" if extra
        else "it has no TimeLimit (max_episode_steps)" if limit is None else None
    )
    noise = None
    if plant is not None:
        noise = np.broadcast_to(np.asarray(obs_noise, dtype=np.float64), (plant.n_obs,))
        if not (np.isfinite(noise).all() and (noise >= 0).all()):
            raise ValueError(f"obs_noise must be finite standard deviations ≥ 0, got {obs_noise!r}")
        noise = noise if noise.any() else None
    elif np.any(np.asarray(obs_noise) != 0):
        noise = obs_noise
    robust = bool(parameters) or noise is not None or delay > 0
    if backend == "auto":
        backend = ("twin" if why_not_twin is None else "vector"
                   if env.spec is not None and not extra else "gym")
    if (backend == "twin" or robust) and why_not_twin is not None:
        what = "parameters, obs_noise and action_delay need" if robust else "backend 'twin' needs"
        raise ValueError(f"{what} the batched twin, but {env.spec and env.spec.id or env} "
                         f"cannot run on it: {why_not_twin}")
    if robust and backend != "twin":
        raise ValueError(f"parameters, obs_noise and action_delay run on backend 'twin', not "
                         f"{backend!r}; use backend='auto' or 'twin'")
    if backend == "vector" and (env.spec is None or env is env.unwrapped):
        # an unwrapped env may carry its spec, but gym.make_vec(spec) would rebuild it with the
        # registered wrappers (time limit included): another env than the one passed
        raise ValueError("backend 'vector' needs an env made from a registered id (env.spec is "
                         "None or the env is unwrapped); pass the id string, or use "
                         "backend='gym'")
    seeds = [int(seed) + k for k in range(n_ep)]
    act = env.action_space
    batched = BatchedPolicy(policy, act.shape, act.dtype)
    values: dict[str, np.ndarray] = {}
    if backend == "twin":
        draw_rng, noise_rng = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(int(seed)).spawn(2))
        for name, (lo, hi) in _ranges(plant, parameters or {}).items():
            values[name] = draw_rng.uniform(lo, hi, size=n_ep)
        x0 = np.empty((n_ep, plant.n_states))
        for k, s in enumerate(seeds):
            env.reset(seed=s)
            x0[k] = np.asarray(env.unwrapped.state, dtype=np.float64)
        eps = run_twin(batched, plant, x0, limit, values=values, obs_noise=noise,
                       action_delay=int(delay), rng=noise_rng)
    elif backend == "vector":
        import gymnasium
        from gymnasium.vector import AutoresetMode

        envs = gymnasium.make_vec(
            env.spec, num_envs=min(num_envs, n_ep), vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED},
        )
        try:
            eps = run_vector(batched, envs, seeds, plant)
        finally:
            envs.close()
    else:
        eps = _run_gym(policy, env, seeds, plant)
    return _evaluation(eps, plant, backend, bool(batched.batched), values)


def _evaluation(eps: Episodes, plant: Plant | None, backend: str, batched: bool,
                values: dict[str, np.ndarray]) -> Evaluation:
    n = len(eps.returns)
    if plant is None:
        succ, settle = np.full(n, np.nan), np.full(n, np.nan)
    elif plant.goal_reached_terminates:
        succ = eps.terminated.astype(np.float64)
        settle = np.where(eps.terminated, eps.lengths * plant.dt, np.nan)
    else:
        ok = ~eps.terminated & (eps.settled_since < eps.lengths)
        succ = ok.astype(np.float64)
        settle = np.where(ok, eps.settled_since * plant.dt, np.nan)
    return Evaluation(eps.returns, eps.lengths, succ, settle, eps.effort, backend, batched,
                      values)
