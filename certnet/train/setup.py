"""What both trainers share: building the network, stepping the optimiser, the history, the
progress bar and checkpoint/resume bookkeeping."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from certnet.nn import NormalizedMLP
from certnet.optim.registry import build_optimizer, check_optimizer
from certnet.optim.stochastic import StochasticMM
from certnet.train.checkpoint import (
    load_checkpoint,
    refuse_existing_checkpoint,
    save_checkpoint,
)
from certnet.train.config import TrainConfig

__all__ = ["History", "build_network", "network_for", "Stepper", "Run"]


@dataclass
class History:
    """Per-iteration record of a training run.

    Attributes
    ----------
    loss : list of float
        Training loss after each iteration (imitation: MSE in action units²; policy
        optimisation: mean cost per step).
    lipschitz : list of float
        By-construction Lipschitz bound (NaN for an unconstrained network).
    time_s : list of float
        Wall time since the start of the run, in s (summed across resumes).
    extra : dict of str to list of float
        Trainer-specific series (e.g. ``"dataset_size"``, ``"horizon"``).
    """

    loss: list[float] = field(default_factory=list)
    lipschitz: list[float] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable, stored in checkpoints)."""
        return {
            "loss": list(self.loss),
            "lipschitz": list(self.lipschitz),
            "time_s": list(self.time_s),
            "extra": {k: list(v) for k, v in self.extra.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        """Inverse of :meth:`to_dict`."""
        return cls(list(d["loss"]), list(d["lipschitz"]), list(d["time_s"]), dict(d["extra"]))


def build_network(cfg: TrainConfig, n_obs: int, n_act: int, *, output_scale=1.0) -> nn.Module:
    """The default network of a config: ``NormalizedMLP`` with budget ``cfg.lipschitz``, or a
    plain ``nn.Sequential`` of the same widths (``network="plain"``), in float32.

    ``output_scale`` (action units) sets D_out of the ``NormalizedMLP``; the budget is kept.
    """
    widths = [n_obs, *cfg.hidden, n_act]
    if cfg.network == "normalized":
        return NormalizedMLP(
            widths,
            activation=cfg.activation,
            lipschitz=cfg.lipschitz,
            output_scale=output_scale,
            seed=cfg.seed,
        )
    from certnet.nn import make_activation

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if k < len(widths) - 2:
                layers.append(make_activation(cfg.activation))
        return nn.Sequential(*layers)


def network_for(cfg: TrainConfig, plant, net: nn.Module | None = None) -> nn.Module:
    """``net`` if given, else the config's default network sized for ``plant``: its observation
    and input counts, with D_out = max |u_max| so the budget is in action units."""
    if net is not None:
        return net
    n_obs = int(plant.observe(torch.zeros(1, plant.n_states)).shape[-1])
    scale = float(torch.as_tensor(plant.u_max, dtype=torch.float64).abs().max())
    return build_network(cfg, n_obs, plant.n_inputs, output_scale=scale)


def _lipschitz_of(net: nn.Module) -> float:
    return float(net.lipschitz_bound()) if isinstance(net, NormalizedMLP) else float("nan")


class Stepper:
    """The trainers' optimiser: ``step(loss_fn) -> loss before the step``.

    Built by :func:`certnet.optim.build_optimizer` from ``cfg.optimizer`` and ``cfg.lr``, so
    the trainers accept exactly the registry's names; every one of them follows the certnet
    closure contract (the closure returns the loss, the optimiser differentiates it).
    """

    def __init__(self, net: nn.Module, cfg: TrainConfig) -> None:
        self.net = net
        self.spec = check_optimizer(cfg.optimizer, cfg.lr)
        self.opt = build_optimizer(cfg.optimizer, net, lr=cfg.lr)

    def step(
        self,
        loss_fn: Callable[[], torch.Tensor],
        *,
        new_batch: bool = False,
        new_objective: bool = False,
    ) -> float:
        """One optimiser step on ``loss_fn``; the loss before the step.

        ``new_objective``: the data set changed (a new DAgger round, a new horizon), so the
        optimiser forgets what describes one objective (the L-BFGS curvature pairs;
        :meth:`certnet.optim.MM.restart`). ``new_batch``: ``loss_fn`` is a new mini-batch of
        the same data; that too restarts MM and AutoNewton, whose memory describes one
        objective, but not an optimiser built for a stream of batches
        (:attr:`~certnet.optim.OptimizerSpec.stream`, e.g. "smm").
        """
        if new_objective or (new_batch and not self.spec.stream):
            self.opt.restart()
        return float(self.opt.step(loss_fn))

    def resumed(self, previous: Callable[[], torch.Tensor]) -> None:
        """After a resume: give a stream optimiser the batch of the step before the
        checkpoint (:meth:`certnet.optim.StochasticMM.prime`), so that the resumed run takes
        the steps the uninterrupted run takes. The other optimisers need nothing."""
        if isinstance(self.opt, StochasticMM):
            self.opt.prime(previous)


class Run:
    """Bookkeeping of one training run: resume, progress, history, checkpoints, Ctrl-C."""

    def __init__(self, kind: str, cfg: TrainConfig, net: nn.Module, stepper: Stepper) -> None:
        self.kind, self.cfg, self.net, self.stepper = kind, cfg, net, stepper
        self.history = History()
        self.start = 0
        self.data: dict[str, Any] = {}
        self._t_offset = 0.0
        if not cfg.resume and not cfg.overwrite and cfg.checkpoint is not None:
            refuse_existing_checkpoint(cfg.checkpoint)
        if cfg.resume:
            st = load_checkpoint(cfg.checkpoint, kind=kind)
            arch = net.config() if isinstance(net, NormalizedMLP) else None
            if st["arch"] != arch:
                raise ValueError(
                    f"checkpoint {cfg.checkpoint} holds a network {st['arch']} but this run "
                    f"builds {arch}; resume with the config that wrote it"
                )
            written = st.get("optimizer_name", cfg.optimizer)  # older files do not say
            if written != cfg.optimizer:
                raise ValueError(
                    f"checkpoint {cfg.checkpoint} was written by optimizer {written!r} but this "
                    f"run uses {cfg.optimizer!r}; resume with the config that wrote it"
                )
            net.load_state_dict(st["net"])
            stepper.opt.load_state_dict(st["optimizer"])
            self.history = History.from_dict(st["history"])
            self.start = int(st["iteration"])
            self.data = st["data"]
            self._t_offset = self.history.time_s[-1] if self.history.time_s else 0.0

    def generator(self, iteration: int) -> torch.Generator:
        """The batch generator of ``iteration`` (same on a resumed run)."""
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + iteration)

    def _state(self, iteration: int) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "trainer": self.kind,
                "arch": self.net.config() if isinstance(self.net, NormalizedMLP) else None,
                "net": self.net.state_dict(),
                "optimizer": self.stepper.opt.state_dict(),
                "optimizer_name": self.cfg.optimizer,
                "history": self.history.to_dict(),
                "iteration": iteration,
                "data": dict(self.data),
            }
        )

    def save(self, iteration: int) -> None:
        if self.cfg.checkpoint is not None:
            save_checkpoint(self.cfg.checkpoint, self._state(iteration))

    def loop(self, total: int, body: Callable[[int], dict[str, float]], label: str) -> History:
        """Run ``body(it)`` for it = start … total−1; ``body`` returns {"loss": …, extras}."""
        t0 = time.perf_counter() - self._t_offset
        columns = (
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        it, snapshot = self.start, None
        with Progress(*columns, disable=not self.cfg.progress, transient=False) as bar:
            task = bar.add_task(label, total=total, completed=self.start, info="")
            try:
                for it in range(self.start, total):
                    # The state before this iteration, saved if Ctrl-C lands inside it (the
                    # optimiser may already have moved some weights).
                    snapshot = self._state(it) if self.cfg.checkpoint is not None else None
                    rec = body(it)
                    self.history.loss.append(float(rec.pop("loss")))
                    self.history.lipschitz.append(_lipschitz_of(self.net))
                    self.history.time_s.append(time.perf_counter() - t0)
                    for k, v in rec.items():
                        self.history.extra.setdefault(k, []).append(float(v))
                    bar.update(task, advance=1, info=f"loss {self.history.loss[-1]:.4g}")
                    if (it + 1) % self.cfg.checkpoint_every == 0:
                        self.save(it + 1)
                it = total
            except KeyboardInterrupt:
                if snapshot is not None:
                    save_checkpoint(self.cfg.checkpoint, snapshot)
                    bar.console.print(
                        f"interrupted at iteration {it}; checkpoint saved to "
                        f"{self.cfg.checkpoint} (resume = true continues from there)"
                    )
                raise
        self.save(total)
        return self.history
