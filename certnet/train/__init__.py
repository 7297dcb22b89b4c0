"""Training learned controllers: behaviour cloning + DAgger (:func:`imitate`) and policy
optimisation through differentiable rollouts (:func:`optimize_policy`).

Both default to a ``NormalizedMLP`` (Lipschitz budget in physical units, kept at every step)
trained by the learning-rate-free ``certnet.optim.MM``, show a rich progress bar, checkpoint and
resume exactly, and return a :class:`TrainResult` (network + :class:`History`). Their settings
are dataclasses (:class:`ImitationConfig`, :class:`PolicyConfig`) that
:func:`config_from_dict` builds from a TOML table.
"""

from certnet.train.checkpoint import (
    checkpoint_iterations,
    load_checkpoint,
    refuse_existing_checkpoint,
    save_checkpoint,
)
from certnet.train.config import (
    NETWORKS,
    OPTIMIZERS,
    ImitationConfig,
    PolicyConfig,
    TrainConfig,
    config_from_dict,
)
from certnet.train.imitate import expert_labels, imitate
from certnet.train.policy import TrainResult, optimize_policy
from certnet.train.setup import History, build_network

__all__ = [
    "imitate",
    "optimize_policy",
    "expert_labels",
    "TrainResult",
    "History",
    "build_network",
    "TrainConfig",
    "ImitationConfig",
    "PolicyConfig",
    "config_from_dict",
    "OPTIMIZERS",
    "NETWORKS",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_iterations",
    "refuse_existing_checkpoint",
]
