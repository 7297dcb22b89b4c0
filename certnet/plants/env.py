"""Every plant as a gymnasium environment, and the registered ids.

==================================  ====================  ==================
id                                  plant                 max_episode_steps
==================================  ====================  ==================
``certnet/Pendulum-v1``             :class:`Pendulum`     200
``certnet/InvertedPendulum-v0``     InvertedPendulum      250
``certnet/ContinuousCartPole-v0``   CartPole              500
``certnet/MountainCarContinuous-v0`` MountainCar          999
``certnet/VehicleLateral-v0``       VehicleLateral        500
``certnet/LTI-v0``                  LTI (pass ``plant=``) 200
==================================  ====================  ==================

The table is derived from the plant classes, not kept by name: a class of
:mod:`certnet.plants` that defines its own ``env_id`` registers it, with its
``max_episode_steps`` and ``reward_threshold``. A class whose constructor needs arguments (LTI)
registers a *generic* id, made with ``gymnasium.make(id, plant=instance)``; any other id builds
its class, and keyword arguments of ``gymnasium.make`` are the plant's parameters::

    gymnasium.make("certnet/InvertedPendulum-v0", mass=0.2, max_torque=2.0)

``import certnet`` registers the ids (so does ``import certnet.plants``), and so does the
gymnasium module prefix ``gymnasium.make("certnet:certnet/Pendulum-v1")`` in a fresh process
(e.g. a ``SubprocVecEnv`` worker). ``plant.env()`` makes the environment of one configured
plant instance.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from certnet.plants.base import Plant

__all__ = ["PlantEnv", "PlantVectorEnv", "register_envs", "ENV_IDS", "RENDER_MODES"]

ENV_IDS: dict[str, str] = {}
"""Registered id → name of the plant class in :mod:`certnet.plants` that defines it (filled by
:func:`register_envs`, which ``import certnet.plants`` runs)."""

RENDER_MODES = ("rgb_array",)
"""Render modes of every certnet environment ("human" is refused: show the frames yourself,
e.g. ``plt.imshow(env.render())``)."""

_CLASSES: dict[str, type[Plant]] = {}  # class name → class, for ids and PlantEnv("Name")
_GENERIC: set[str] = set()  # ids whose plant must be passed as plant=…

_FRAME = 256  # rendered frames are _FRAME × _FRAME RGB


def _needs_arguments(cls: type[Plant]) -> bool:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return any(
        p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for p in params
    )


def _scan() -> None:
    """Fill ``_CLASSES``, ``ENV_IDS`` and ``_GENERIC`` from the plant classes."""
    import certnet.plants as plants

    owners: dict[str, list[type[Plant]]] = {}
    for obj in vars(plants).values():
        if isinstance(obj, type) and issubclass(obj, Plant) and obj is not Plant:
            _CLASSES[obj.__name__] = obj
            if vars(obj).get("env_id"):  # defines its id itself (not inherited)
                owners.setdefault(obj.env_id, []).append(obj)
    for env_id, classes in owners.items():
        buildable = [c for c in classes if not _needs_arguments(c)]
        if len(buildable) > 1:
            raise RuntimeError(
                f"plant classes {[c.__name__ for c in buildable]} all claim {env_id!r}; give "
                "each a distinct env_id"
            )
        if buildable:
            ENV_IDS[env_id] = buildable[0].__name__
        else:
            ENV_IDS[env_id] = sorted(c.__name__ for c in classes)[0]
            _GENERIC.add(env_id)


def _plant_class(name: str) -> type[Plant]:
    if not _CLASSES:
        _scan()
    cls = _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"unknown plant {name!r}; choose one of {sorted(_CLASSES)}")
    return cls


def _build(cls: type[Plant], kwargs: dict[str, Any]) -> Plant:
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as e:
        params = [p for p in inspect.signature(cls).parameters if p not in ("self",)]
        raise TypeError(
            f"{cls.__name__} does not take {sorted(kwargs)} ({e}); its parameters are {params}"
        ) from None
    return cls(**kwargs)


def _resolve(plant: Any, plant_kwargs: dict[str, Any], who: str) -> Plant:
    """The plant instance of an environment's ``plant`` argument (instance, class or name)."""
    if plant is None:
        raise ValueError(
            f"{who} needs a plant: use plant.env(), or "
            "gymnasium.make('certnet/LTI-v0', plant=cn.plants.LTI(sys))"
        )
    if isinstance(plant, str):
        plant = _plant_class(plant)
    if isinstance(plant, type) and issubclass(plant, Plant):
        plant = _build(plant, plant_kwargs)
    elif plant_kwargs:
        raise TypeError(
            f"plant parameters {sorted(plant_kwargs)} cannot be applied to a plant instance; "
            "configure the instance (e.g. InvertedPendulum(mass=0.2).env()) or pass its "
            "class name with the parameters"
        )
    if not isinstance(plant, Plant):
        raise TypeError(f"plant must be a certnet Plant or its class name, got {plant!r}")
    return plant


class PlantEnv(gymnasium.Env):
    """A :class:`~certnet.plants.Plant` as a gymnasium ``Env`` (float64 state, float32 spaces).

    Action space ``Box(u_min, u_max)``; observation space ``Box(obs_low, obs_high)``; reward
    ``plant.reward``; ``terminated`` from ``plant.terminated``; truncation by the ``TimeLimit``
    wrapper that ``gymnasium.make`` adds. Out-of-range actions are handled by the plant's
    ``input_saturation`` (clipped, or refused with ``ValueError``).

    Parameters
    ----------
    plant : Plant, Plant subclass or str
        A plant instance, or a plant class (or its name in :mod:`certnet.plants`) built with
        ``**plant_kwargs``.
    render_mode : {None, "rgb_array"}
        ``"rgb_array"``: :meth:`render` returns a (256, 256, 3) uint8 frame drawn with numpy
        (no display, no matplotlib backend touched). ``"human"`` is refused.
    **plant_kwargs
        Parameters of the plant class, e.g. ``mass=0.2``; what ``gymnasium.make(id, **kwargs)``
        forwards. Not allowed with a plant instance.

    Raises
    ------
    ValueError
        No plant, an unknown plant name, or an unsupported render mode.
    TypeError
        Not a plant; plant parameters the class does not take (the message lists its
        parameters); plant parameters together with a plant instance.

    Notes
    -----
    ``reset(seed=…)`` draws x₀ uniformly from [plant.reset_low, plant.reset_high] with
    ``self.np_random``, in the same order as gymnasium's classic-control environments, so a
    twin and its gymnasium original start from the same state for the same seed.
    ``options={"state": x0}`` starts from an exact state instead.

    stable-baselines3 needs finite action bounds (its ``check_env`` refuses an unbounded Box,
    and SAC/TD3 rescale actions into it): a plant with unlimited inputs (``InvertedPendulum``
    by default, an ``LTI`` without ``u_min``/``u_max``) is made RL-ready by giving it a
    saturation, e.g. ``gymnasium.make("certnet/InvertedPendulum-v0", max_torque=2.0)``; the
    saturation is then part of the plant, so the closed-loop verifier sees it.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 50}

    def __init__(
        self,
        plant: Plant | type[Plant] | str | None = None,
        render_mode: str | None = None,
        **plant_kwargs: Any,
    ) -> None:
        plant = _resolve(plant, plant_kwargs, "PlantEnv")
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(
                f"render_mode {render_mode!r} is not supported; use None or 'rgb_array' (show "
                "the frames yourself, e.g. plt.imshow(env.render()))"
            )
        self.plant = plant
        self.render_mode = render_mode
        # a unit-step map (dt ≥ 1, e.g. MountainCar) plays at gymnasium's classic 30 frames/s
        fps = 30 if plant.dt >= 1 else int(min(60, max(1, round(1.0 / plant.dt))))
        self.metadata = {**type(self).metadata, "render_fps": fps}
        self.action_space = spaces.Box(
            plant.u_min.astype(np.float32), plant.u_max.astype(np.float32), dtype=np.float32
        )
        self.observation_space = spaces.Box(
            plant.obs_low.astype(np.float32), plant.obs_high.astype(np.float32), dtype=np.float32
        )
        self.state = np.zeros(plant.n_states)
        self._last_u = np.zeros(plant.n_inputs)

    def _obs(self) -> np.ndarray:
        with torch.no_grad():
            obs = self.plant.observe(torch.as_tensor(self.state)[None])[0].numpy()
        return obs.astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "state" in options:
            x0 = np.asarray(options["state"], dtype=np.float64).reshape(-1)
            if x0.shape != (self.plant.n_states,) or not np.isfinite(x0).all():
                raise ValueError(
                    f"options['state'] must be {self.plant.n_states} finite numbers "
                    f"{list(self.plant.state_names)}, got {options['state']!r}"
                )
            self.state = x0
        else:
            self.state = self.np_random.uniform(low=self.plant.reset_low,
                                                high=self.plant.reset_high)
        self._last_u = np.zeros(self.plant.n_inputs)
        return self._obs(), {}

    def step(self, action: Any):
        u = np.asarray(action)
        # keep a float32 action float32: the twins reproduce gymnasium's float32 arithmetic
        u = (u if u.dtype.kind == "f" else u.astype(np.float64)).reshape(-1)
        if u.shape != (self.plant.n_inputs,):
            raise ValueError(
                f"action must have {self.plant.n_inputs} entries {list(self.plant.input_names)}, "
                f"got shape {np.shape(action)}"
            )
        with torch.no_grad():
            x = torch.as_tensor(self.state)[None]
            ut = torch.as_tensor(u)[None]
            reward = float(self.plant.reward(x, ut)[0])
            x = self.plant.step(x, ut)
            terminated = bool(self.plant.terminated(x)[0])
        self.state = x[0].numpy()
        self._last_u = u.astype(np.float64)
        return self._obs(), reward, terminated, False, {}

    def render(self) -> np.ndarray | None:
        """The current frame, (256, 256, 3) uint8, or None when ``render_mode`` is None.

        A schematic, the same for every plant: one rod per angle state (0 pointing up,
        positive counter-clockwise) in the upper half; below, one bar per state (grey; its
        length is tanh of the state over its reset range, so the bar stays in the frame) and
        one per input (red; the last action over its limit, or tanh where unlimited).
        """
        if self.render_mode is None:
            return None
        return _draw(self.plant, self.state, self._last_u)


class PlantVectorEnv(VectorEnv):
    """``num_envs`` copies of a plant's environment stepped as one batched torch plant.

    The ``vector_entry_point`` of every certnet id:
    ``gymnasium.make_vec(id, num_envs=64, vectorization_mode="vector_entry_point")``. Each
    sub-environment is the :class:`PlantEnv` of the same plant with a ``TimeLimit`` of
    ``max_episode_steps``: reset seeds, initial states, observations, rewards, terminations and
    truncations are those of a ``SyncVectorEnv`` of ``gymnasium.make(id)`` on the same seeds.

    Spaces are batched: ``action_space`` is ``Box`` of shape (num_envs, m), float32;
    ``observation_space`` (num_envs, n_obs), float32; ``single_*`` are the per-env spaces.
    Autoreset is gymnasium's default ``AutoresetMode.NEXT_STEP``: the step after a
    sub-environment terminated or truncated resets it (its action is ignored, reward 0, neither
    flag set).

    Parameters
    ----------
    num_envs : int
        Number of sub-environments (≥ 1).
    plant : Plant, Plant subclass or str
        As for :class:`PlantEnv`.
    max_episode_steps : int, optional
        Truncation horizon in steps (default ``plant.max_episode_steps``; ``make_vec`` passes
        the id's).
    render_mode : None
        The batched env draws nothing; render sub-environments of a sync vector env instead.
    **plant_kwargs
        Parameters of the plant class (``make_vec(id, num_envs, ..., mass=0.2)``).

    Raises
    ------
    ValueError
        ``num_envs`` < 1, ``max_episode_steps`` < 1, a render mode, or a bad plant.
    TypeError
        As for :class:`PlantEnv`.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        plant: Plant | type[Plant] | str | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        **plant_kwargs: Any,
    ) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if render_mode is not None:
            raise ValueError(
                f"PlantVectorEnv does not render (render_mode={render_mode!r}); use "
                "gymnasium.make_vec(id, num_envs, vectorization_mode='sync', "
                "render_mode='rgb_array') to render the sub-environments"
            )
        plant = _resolve(plant, plant_kwargs, "PlantVectorEnv")
        steps = plant.max_episode_steps if max_episode_steps is None else max_episode_steps
        if not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"max_episode_steps must be a positive integer, got {steps!r}")
        self.plant, self.num_envs, self.max_episode_steps = plant, int(num_envs), int(steps)
        self.render_mode = None
        self.single_action_space = spaces.Box(
            plant.u_min.astype(np.float32), plant.u_max.astype(np.float32), dtype=np.float32
        )
        self.single_observation_space = spaces.Box(
            plant.obs_low.astype(np.float32), plant.obs_high.astype(np.float32), dtype=np.float32
        )
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._x = np.zeros((self.num_envs, plant.n_states))
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)

    def _draw(self, i: int) -> np.ndarray:
        if self._rngs[i] is None:  # gymnasium.Env.np_random: unseeded on first use
            self._rngs[i], _ = seeding.np_random()
        return self._rngs[i].uniform(low=self.plant.reset_low, high=self.plant.reset_high)

    def _obs(self) -> np.ndarray:
        with torch.no_grad():
            return self.plant.observe(torch.as_tensor(self._x)).numpy().astype(np.float32)

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None):
        """Reset every sub-environment; ``seed`` int → seeds ``seed, seed+1, …`` (as sync)."""
        # the base class seeds its own generator from an int only (a list is per sub-env)
        super().reset(seed=int(seed) if isinstance(seed, (int, np.integer)) else None)
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(
                    f"a list of seeds must have num_envs={self.num_envs} entries, got {len(seeds)}"
                )
        for i, s in enumerate(seeds):
            if s is not None:
                self._rngs[i], _ = seeding.np_random(int(s))
            self._x[i] = self._draw(i)
        self._elapsed[:] = 0
        self._autoreset[:] = False
        return self._obs(), {}

    def step(self, actions: Any):
        """Step every sub-environment (autoresetting those that ended at the previous step)."""
        u = np.asarray(actions)
        u = u if u.dtype.kind == "f" else u.astype(np.float64)
        m = self.plant.n_inputs
        if u.size != self.num_envs * m:
            raise ValueError(
                f"actions must have shape ({self.num_envs}, {m}), got {np.shape(actions)}"
            )
        u = u.reshape(self.num_envs, m)
        live = ~self._autoreset
        rewards = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        if live.any():
            with torch.no_grad():
                x = torch.as_tensor(self._x[live])
                ut = torch.as_tensor(u[live])
                rewards[live] = self.plant.reward(x, ut).numpy()
                x = self.plant.step(x, ut)
                terminated[live] = self.plant.terminated(x).numpy()
            self._x[live] = x.numpy()
            self._elapsed[live] += 1
        for i in np.flatnonzero(self._autoreset):
            self._x[i] = self._draw(i)
            self._elapsed[i] = 0
        truncated = live & (self._elapsed >= self.max_episode_steps)
        self._autoreset = terminated | truncated
        return self._obs(), rewards, terminated, truncated, {}

    def render(self) -> None:
        """Nothing to draw (``render_mode`` is None)."""
        return None


def _draw(plant: Plant, x: np.ndarray, u: np.ndarray) -> np.ndarray:
    n = _FRAME
    img = np.full((n, n, 3), 255, dtype=np.uint8)
    yy, xx = np.mgrid[0:n, 0:n]
    angles = list(plant.angle_states)
    if angles:
        cy, half = n * 0.3, n * 0.25
        for j, k in enumerate(angles[:3]):
            cx = n * (j + 1) / (min(len(angles), 3) + 1)
            th = float(x[k])
            ex, ey = cx - half * math.sin(th), cy - half * math.cos(th)
            # distance of every pixel to the segment (cx, cy)–(ex, ey)
            dx, dy = ex - cx, ey - cy
            t = np.clip(((xx - cx) * dx + (yy - cy) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
            d = np.hypot(xx - (cx + t * dx), yy - (cy + t * dy))
            img[d <= 3.0] = (40, 70, 160)
            img[np.hypot(xx - cx, yy - cy) <= 5.0] = (0, 0, 0)
    spread = np.maximum(np.abs(plant.reset_high - plant.reset_low) / 2, 1e-9)
    lim = np.where(np.isfinite(plant.u_max), np.maximum(np.abs(plant.u_max), 1e-9), np.inf)
    bars = [(math.tanh(float(v) / s), (110, 110, 110)) for v, s in zip(x, spread, strict=True)]
    for v, m in zip(u, lim, strict=True):
        frac = float(np.clip(v / m, -1, 1)) if np.isfinite(m) else math.tanh(float(v))
        bars.append((frac, (200, 40, 40)))
    top, height = int(n * 0.6), int(n * 0.4)
    step = max(1, height // max(1, len(bars)))
    mid = n // 2
    for i, (frac, colour) in enumerate(bars[: height // 2]):
        y0 = top + i * step
        y1 = y0 + max(1, step - 2)
        end = int(round(mid + frac * (n * 0.45)))
        lo, hi = sorted((mid, end))
        img[y0:y1, lo : hi + 1] = colour
    img[top:, mid] = (0, 0, 0)
    return img


def register_envs() -> None:
    """Register the id of every plant class that defines one (idempotent).

    Ids already in ``gymnasium.registry`` are left as they are. See the module docstring for
    how the table is derived.
    """
    if not ENV_IDS:
        _scan()
    for env_id, cls_name in ENV_IDS.items():
        if env_id in gymnasium.registry:
            continue
        cls = _CLASSES[cls_name]
        gymnasium.register(
            env_id,
            entry_point="certnet.plants.env:PlantEnv",
            vector_entry_point="certnet.plants.env:PlantVectorEnv",
            max_episode_steps=cls.max_episode_steps,
            reward_threshold=getattr(cls, "reward_threshold", None),
            kwargs={} if env_id in _GENERIC else {"plant": cls_name},
        )
