"""Plants: one definition → batched differentiable torch dynamics, a python-control ``nlsys``
and a gymnasium ``Env``; exact linearisation by autodiff.

>>> import torch, certnet as cn
>>> p = cn.plants.Pendulum()
>>> x0 = torch.tensor([[0.1, 0.0]], dtype=torch.float64)
>>> ro = p.rollout(lambda obs: torch.zeros(obs.shape[0], 1), x0, steps=10)
>>> tuple(ro.states.shape), tuple(ro.actions.shape), tuple(ro.rewards.shape)
((1, 11, 2), (1, 10, 1), (1, 10))
"""

from certnet.plants.base import INTEGRATORS, Plant, Rollout, Saturation, wrap_angle
from certnet.plants.cartpole import CartPole
from certnet.plants.env import ENV_IDS, RENDER_MODES, PlantEnv, PlantVectorEnv, register_envs
from certnet.plants.external import FunctionPlant, IOSystemPlant, as_plant
from certnet.plants.linearize import linearize
from certnet.plants.lti import LTI, VehicleLateral
from certnet.plants.mountain_car import MountainCar
from certnet.plants.pendulum import InvertedPendulum, Pendulum

__all__ = [
    "INTEGRATORS",
    "Plant",
    "Rollout",
    "Saturation",
    "wrap_angle",
    "Pendulum",
    "InvertedPendulum",
    "CartPole",
    "MountainCar",
    "LTI",
    "VehicleLateral",
    "linearize",
    "as_plant",
    "IOSystemPlant",
    "FunctionPlant",
    "PlantEnv",
    "PlantVectorEnv",
    "register_envs",
    "ENV_IDS",
    "RENDER_MODES",
]

register_envs()
