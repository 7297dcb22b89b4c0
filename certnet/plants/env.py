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

Importing :mod:`certnet.plants` registers them; ``gymnasium.make("certnet/Pendulum-v1")`` then
works, and ``plant.env()`` makes the environment of one configured plant instance.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from certnet.plants.base import Plant

__all__ = ["PlantEnv", "register_envs", "ENV_IDS"]

ENV_IDS = {
    "certnet/Pendulum-v1": "Pendulum",
    "certnet/InvertedPendulum-v0": "InvertedPendulum",
    "certnet/ContinuousCartPole-v0": "CartPole",
    "certnet/MountainCarContinuous-v0": "MountainCar",
    "certnet/VehicleLateral-v0": "VehicleLateral",
    "certnet/LTI-v0": "LTI",
}
"""Registered id → plant class name in :mod:`certnet.plants`."""


def _plant_class(name: str) -> type[Plant]:
    import certnet.plants as plants

    cls = getattr(plants, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Plant)):
        raise ValueError(f"unknown plant {name!r}; choose one of {sorted(ENV_IDS.values())}")
    return cls


class PlantEnv(gymnasium.Env):
    """A :class:`~certnet.plants.Plant` as a gymnasium ``Env`` (float64 state, float32 spaces).

    Action space ``Box(u_min, u_max)``; observation space ``Box(obs_low, obs_high)``; reward
    ``plant.reward``; ``terminated`` from ``plant.terminated``; truncation by the ``TimeLimit``
    wrapper that ``gymnasium.make`` adds. Out-of-range actions are handled by the plant's
    ``input_saturation`` (clipped, or refused with ``ValueError``).

    Parameters
    ----------
    plant : Plant or str
        A plant instance, or the name of a plant class built with its defaults.
    render_mode : None
        Rendering is not supported.

    Notes
    -----
    ``reset(seed=…)`` draws x₀ uniformly from [plant.reset_low, plant.reset_high] with
    ``self.np_random``, in the same order as gymnasium's classic-control environments, so a
    twin and its gymnasium original start from the same state for the same seed.
    ``options={"state": x0}`` starts from an exact state instead.
    """

    metadata = {"render_modes": []}

    def __init__(self, plant: Plant | str | None = None, render_mode: str | None = None) -> None:
        if plant is None:
            raise ValueError(
                "PlantEnv needs a plant: use plant.env(), or "
                "gymnasium.make('certnet/LTI-v0', plant=cn.plants.LTI(sys))"
            )
        if isinstance(plant, str):
            plant = _plant_class(plant)()
        if not isinstance(plant, Plant):
            raise TypeError(f"plant must be a certnet Plant or its class name, got {plant!r}")
        if render_mode is not None:
            raise ValueError(f"render_mode {render_mode!r} is not supported; use None")
        self.plant = plant
        self.render_mode = None
        self.action_space = spaces.Box(
            plant.u_min.astype(np.float32), plant.u_max.astype(np.float32), dtype=np.float32
        )
        self.observation_space = spaces.Box(
            plant.obs_low.astype(np.float32), plant.obs_high.astype(np.float32), dtype=np.float32
        )
        self.state = np.zeros(plant.n_states)

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
        return self._obs(), reward, terminated, False, {}


def register_envs() -> None:
    """Register every id of :data:`ENV_IDS` with gymnasium (idempotent)."""
    for env_id, cls_name in ENV_IDS.items():
        if env_id in gymnasium.registry:
            continue
        steps = _plant_class(cls_name).max_episode_steps
        kwargs = {} if cls_name == "LTI" else {"plant": cls_name}
        gymnasium.register(
            env_id,
            entry_point="certnet.plants.env:PlantEnv",
            max_episode_steps=steps,
            reward_threshold=90.0 if cls_name == "MountainCar" else None,
            kwargs=kwargs,
        )
