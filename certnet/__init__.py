"""certnet: certified neural-network controllers.

Frobenius-normalised networks (Lipschitz-bounded by construction), learning-rate-free optimisers
on products of spheres, float64-re-checked Lipschitz / ℓ2-gain certificates, and closed loops
with python-control and gymnasium.

>>> import certnet as cn
>>> net = cn.nn.NormalizedMLP([3, 64, 64, 1], activation="tanh", lipschitz=25.0)
>>> net.lipschitz_bound() <= 25.0
True
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from certnet import errors, geometry, nn  # noqa: E402  (light, always loaded)
from certnet.io import load, read_metadata, save  # noqa: E402

# Heavier subpackages (cvxpy, control, gymnasium) load on first attribute access.
_LAZY = ("verify", "optim", "plants", "experts", "export", "train", "demos")

__all__ = ["__version__", "errors", "geometry", "nn", "save", "load", "read_metadata", *_LAZY]


# ``import certnet`` registers the gymnasium ids ``certnet/…`` (stable-baselines3 and
# gymnasium.make find them by id); the plants are light once torch is loaded (about 40 ms).
from certnet.plants.env import register_envs as _register_envs  # noqa: E402

_register_envs()


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"certnet.{name}")
    raise AttributeError(f"module 'certnet' has no attribute {name!r}")
