"""Networks as policies (obs → action, scaled and clipped), and seeded evaluation on gymnasium."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from certnet.nn.extract import extract_layers
from certnet.plants.base import Plant
from certnet.plants.policy import apply_policy

__all__ = ["NetworkPolicy", "to_policy", "Evaluation", "evaluate"]


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
    """

    returns: np.ndarray
    lengths: np.ndarray
    success: np.ndarray
    settling_time: np.ndarray
    effort: np.ndarray

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success))

    def summary(self) -> str:
        """One line: return mean ± std, success rate, settling time and effort (mean ± std)."""
        st = self.settling_time[np.isfinite(self.settling_time)]
        st_txt = f"{st.mean():.2f} ± {st.std():.2f} s" if st.size else "n/a"
        return (
            f"return {self.mean_return:.2f} ± {self.std_return:.2f} over {len(self.returns)} "
            f"episodes; success {self.success_rate:.0%}; settling {st_txt}; "
            f"effort {self.effort.mean():.3g} ± {self.effort.std():.3g}"
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


def evaluate(policy: Any, env: Any, episodes: int = 10, seed: int = 0) -> Evaluation:
    """Run ``episodes`` seeded episodes (reset seeds ``seed``, ``seed+1``, …) of a policy.

    Parameters
    ----------
    policy : callable
        numpy observation → action (e.g. :func:`to_policy`, an expert).
    env : str or gymnasium.Env
        A registered id (``"Pendulum-v1"``, ``"certnet/ContinuousCartPole-v0"``, …) or an env.
    episodes : int
        Number of episodes E ≥ 1.
    seed : int
        Seed of the first episode (≥ 0).

    Returns
    -------
    Evaluation

    Notes
    -----
    Success: goal plants (MountainCar) succeed when the goal is reached; other plants when the
    episode is not terminated (e.g. the cart-pole did not fall) and the state is in the settle
    band (``plant.settle_tolerance`` around ``x_eq``) at the end. Known plants are those of
    certnet environments and of ``Pendulum-v1``/``MountainCarContinuous-v0`` (their twins).

    Raises
    ------
    ValueError
        Unknown id, episodes < 1, or a negative seed.
    TypeError
        ``env`` is neither a string nor a gymnasium Env.
    """
    if not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer ≥ 0, got {seed!r}")
    env = _make(env)
    plant = _twin(env)
    goal = plant is not None and plant.goal_reached_terminates
    dt = plant.dt if plant is not None else float("nan")
    rets, lens, succ, settle, effort = [], [], [], [], []
    for ep in range(int(episodes)):
        obs, _ = env.reset(seed=int(seed) + ep)
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
        rets.append(total)
        lens.append(steps)
        effort.append(eff)
        if plant is None:
            succ.append(np.nan)
            settle.append(np.nan)
        elif goal:
            succ.append(float(term))
            settle.append(steps * dt if term else np.nan)
        else:
            ok = (not term) and settled_since < steps
            succ.append(float(ok))
            settle.append(settled_since * dt if ok else np.nan)
    return Evaluation(np.array(rets), np.array(lens), np.array(succ), np.array(settle),
                      np.array(effort))
