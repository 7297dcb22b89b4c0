"""Training configurations as dataclasses, and the validator that builds them from a dict (TOML).

Both trainers share :class:`TrainConfig`; :class:`ImitationConfig` (behaviour cloning + DAgger)
and :class:`PolicyConfig` (policy optimisation through rollouts) add their own keys. A TOML table
maps key for key onto these fields; :func:`config_from_dict` rejects unknown keys by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from certnet.optim.registry import OPTIMIZERS, check_optimizer

__all__ = [
    "TrainConfig",
    "ImitationConfig",
    "PolicyConfig",
    "config_from_dict",
    "OPTIMIZERS",
    "NETWORKS",
]

NETWORKS = ("normalized", "plain")

C = TypeVar("C", bound="TrainConfig")


@dataclass(frozen=True)
class TrainConfig:
    """Keys shared by both trainers.

    Parameters
    ----------
    hidden : tuple of int
        Hidden widths of the network built when none is passed (default (64, 64)).
    activation : str
        Hidden activation (default "tanh").
    lipschitz : float
        Lipschitz budget of the built ``NormalizedMLP`` in physical units (action units per
        observation unit, e.g. N m per rad); ignored for ``network="plain"``.
    network : {"normalized", "plain"}
        ``NormalizedMLP`` (bound by construction) or an unconstrained ``nn.Sequential``.
    optimizer : {"mm", "smm", "autonewton", "rsgd", "adam"}
        A name of the optimiser registry ``certnet.optim.OPTIMIZERS`` (re-exported as
        ``certnet.train.OPTIMIZERS``): ``"mm"`` (default), ``"smm"`` (stochastic MM, for
        mini-batches: it keeps its curvature memory across them) and ``"autonewton"`` choose
        their own step size, ``"rsgd"`` (RiemannianSGD) and ``"adam"`` need ``lr``.
    lr : float, optional
        Learning rate of ``"rsgd"`` and ``"adam"``; must be left unset (``None``) for the
        learning-rate-free ``"mm"``, ``"smm"`` and ``"autonewton"``.
    seed : int
        Seed of the network initialisation and of every sampled batch.
    checkpoint : str, optional
        File the trainer writes every ``checkpoint_every`` iterations, at the end and on Ctrl-C.
    checkpoint_every : int
        Iterations between checkpoints.
    resume : bool
        Continue from ``checkpoint`` (which must exist) instead of starting afresh.
    overwrite : bool
        Start afresh even if ``checkpoint`` exists, replacing it. Without ``resume`` or
        ``overwrite`` an existing checkpoint stops the run before it starts (nothing is lost);
        ``certnet train --force`` sets it.
    progress : bool
        Show a rich progress bar.
    """

    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    lipschitz: float = 30.0
    network: str = "normalized"
    optimizer: str = "mm"
    lr: float | None = None
    seed: int = 0
    checkpoint: str | None = None
    checkpoint_every: int = 25
    resume: bool = False
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.hidden, (list, tuple)):
            raise ValueError(
                f"hidden must be a list of positive integers, e.g. [64, 64]; got {self.hidden!r}"
            )
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if not self.hidden or any(
            not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in self.hidden
        ):
            raise ValueError(
                f"hidden must be positive integers, e.g. [64, 64]; got {self.hidden!r}"
            )
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {self.network!r}")
        check_optimizer(self.optimizer, self.lr)
        _check_positive("lipschitz", self.lipschitz, "e.g. lipschitz = 30.0 (N m per rad)")
        _check_count("checkpoint_every", self.checkpoint_every)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer ≥ 0, e.g. seed = 0; got {self.seed!r}")
        if self.resume and self.checkpoint is None:
            raise ValueError("resume = true needs a checkpoint path, e.g. checkpoint = 'run.pt'")
        if self.resume and self.overwrite:
            raise ValueError(
                "resume = true continues the checkpoint and overwrite = true discards it; "
                "set one of them"
            )


@dataclass(frozen=True)
class ImitationConfig(TrainConfig):
    """Behaviour cloning + DAgger (see :func:`certnet.train.imitate`).

    Parameters
    ----------
    iterations : int
        DAgger rounds; round 0 rolls out the expert, later rounds the learner.
    episodes : int
        Rollouts per round (the batch of initial states).
    steps : int
        Time steps per rollout.
    epochs : int
        Optimiser steps on the aggregated data set per round.
    batch_size : int, optional
        Minibatch size (default: full batch).
    x0_low, x0_high : tuple of float, optional
        Box of initial states (plant state units); default: the plant's reset box.
    """

    iterations: int = 10
    episodes: int = 32
    steps: int = 200
    epochs: int = 50
    batch_size: int | None = None
    x0_low: tuple[float, ...] | None = None
    x0_high: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("iterations", "episodes", "steps", "epochs"):
            _check_count(name, getattr(self, name))
        if self.batch_size is not None:
            _check_count("batch_size", self.batch_size)
        _check_box(self)


@dataclass(frozen=True)
class PolicyConfig(TrainConfig):
    """Policy optimisation through differentiable rollouts (see :func:`optimize_policy`).

    Parameters
    ----------
    iterations : int
        Optimiser steps; each samples a fresh batch of initial states.
    batch : int
        Initial states per step.
    horizon : int
        Rollout length in steps (the Pendulum-v1 episode is 200).
    horizon_start : int, optional
        Curriculum: the horizon grows linearly from this value to ``horizon`` over the first
        half of the iterations (default: no curriculum).
    x0_low, x0_high : tuple of float, optional
        Box of initial states (plant state units); default: the plant's reset box.
    """

    iterations: int = 300
    batch: int = 256
    horizon: int = 200
    horizon_start: int | None = None
    x0_low: tuple[float, ...] | None = None
    x0_high: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("iterations", "batch", "horizon"):
            _check_count(name, getattr(self, name))
        if self.horizon_start is not None:
            _check_count("horizon_start", self.horizon_start)
            if self.horizon_start > self.horizon:
                raise ValueError(
                    f"horizon_start ({self.horizon_start}) must be ≤ horizon ({self.horizon})"
                )
        _check_box(self)


def _check_positive(name: str, value: Any, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}; {example}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}; {example}")


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_box(cfg: ImitationConfig | PolicyConfig) -> None:
    if (cfg.x0_low is None) != (cfg.x0_high is None):
        raise ValueError("give both x0_low and x0_high (the box of initial states) or neither")
    if cfg.x0_low is not None:
        low, high = tuple(map(float, cfg.x0_low)), tuple(map(float, cfg.x0_high))
        if len(low) != len(high) or any(a > b for a, b in zip(low, high, strict=True)):
            raise ValueError(
                f"x0_low {low} and x0_high {high} must have equal lengths and low ≤ high"
            )
        object.__setattr__(cfg, "x0_low", low)
        object.__setattr__(cfg, "x0_high", high)


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Validate a dict (e.g. a parsed TOML table) into the config dataclass ``cls``.

    Parameters
    ----------
    cls : type
        :class:`ImitationConfig` or :class:`PolicyConfig` (or :class:`TrainConfig`).
    data : dict
        Keys are field names; lists become tuples.

    Returns
    -------
    TrainConfig
        An instance of ``cls``.

    Raises
    ------
    TypeError
        ``data`` is not a dict, or holds a key that is not a field of ``cls`` (the message
        names the key and lists the valid ones).
    ValueError
        A value out of range (see the dataclass).

    Examples
    --------
    >>> cfg = config_from_dict(PolicyConfig, {"iterations": 5, "hidden": [16, 16]})
    >>> cfg.hidden
    (16, 16)
    """
    if not isinstance(data, dict):
        raise TypeError(f"a training config must be a table (dict), got {type(data).__name__}")
    valid = [f.name for f in fields(cls)]
    unknown = [k for k in data if k not in valid]
    if unknown:
        raise TypeError(
            f"unknown {cls.__name__} key {unknown[0]!r}; valid keys are: {', '.join(valid)}"
        )
    return cls(**data)
