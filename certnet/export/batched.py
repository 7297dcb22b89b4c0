"""Batched episode runners behind :func:`certnet.export.evaluate`: the torch twin and
gymnasium's vector API, each giving the one-env loop's per-episode results."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from certnet.plants.base import Plant

__all__ = ["BatchedPolicy", "Episodes", "run_twin", "run_vector", "perturbed"]


class BatchedPolicy:
    """A policy called on a (B, n_obs) float32 batch, or row by row if it cannot take one.

    The first call decides: the batch call is kept if it succeeds, has B·m entries and agrees
    (to 1e-5) with row-by-row calls on the first four rows; otherwise every later call is row
    by row. ``batched`` says which (None before the first call).
    """

    def __init__(self, policy: Callable[[Any], Any], shape: tuple[int, ...], dtype: Any) -> None:
        self.policy, self.shape, self.dtype = policy, shape, dtype
        self.batched: bool | None = None

    def _row(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self.policy(obs), dtype=self.dtype).reshape(self.shape)

    def _rows(self, obs: np.ndarray) -> np.ndarray:
        return np.stack([self._row(o) for o in obs])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.batched is False:
            return self._rows(obs)
        if self.batched is None:
            try:
                a = np.asarray(self.policy(obs), dtype=self.dtype)
                ok = a.size == obs.shape[0] * int(np.prod(self.shape))
            except Exception:  # noqa: BLE001  (any failure: the policy takes one observation)
                ok = False
            if ok:
                a = a.reshape(obs.shape[0], *self.shape)
                k = min(4, obs.shape[0])
                ok = np.allclose(a[:k], self._rows(obs[:k]), rtol=1e-5, atol=1e-6)
            self.batched = bool(ok)
            return a if ok else self._rows(obs)
        return np.asarray(self.policy(obs), dtype=self.dtype).reshape(obs.shape[0], *self.shape)


@dataclass
class Episodes:
    """Per-episode accumulators (E,) shared by the runners."""

    returns: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    settled_since: np.ndarray
    effort: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Episodes:
        return cls(
            np.zeros(n),
            np.zeros(n, dtype=np.int64),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=np.int64),
            np.zeros(n),
        )


def perturbed(plant: Plant, values: dict[str, np.ndarray]) -> Plant:
    """A shallow copy of ``plant`` whose perturbable attributes hold (B,) float64 tensors."""
    p = copy.copy(plant)
    for name, v in values.items():
        setattr(p, name, torch.as_tensor(v, dtype=torch.float64))
    return p


def run_twin(
    policy: BatchedPolicy,
    plant: Plant,
    x0: np.ndarray,
    max_steps: int,
    *,
    values: dict[str, np.ndarray] | None = None,
    obs_noise: np.ndarray | None = None,
    action_delay: int = 0,
    rng: np.random.Generator | None = None,
) -> Episodes:
    """Every episode at once on the torch plant, as :class:`~certnet.plants.PlantEnv` steps.

    x0 (E, n) float64 initial states; finished episodes leave the batch. ``values``: per-episode
    parameters (E,) each; ``obs_noise``: std per observation entry (needs ``rng``);
    ``action_delay``: actions act k steps late (``plant.u_eq`` before).
    """
    e = x0.shape[0]
    out = Episodes.empty(e)
    idx = np.arange(e)
    x = torch.as_tensor(x0, dtype=torch.float64)
    m = plant.n_inputs
    queue = [
        torch.as_tensor(np.broadcast_to(plant.u_eq, (e, m)).astype(policy.dtype))
        for _ in range(action_delay)
    ]
    p = plant
    with torch.no_grad():
        for t in range(max_steps):
            if values:
                p = perturbed(plant, {k: v[idx] for k, v in values.items()})
            obs = p.observe(x).numpy().astype(np.float32)
            if obs_noise is not None:
                obs = obs + (rng.standard_normal(obs.shape) * obs_noise).astype(np.float32)
            a = policy(obs)
            u = torch.from_numpy(a.reshape(len(idx), m))
            if action_delay:
                queue.append(u)
                u = queue.pop(0)
            r = p.reward(x, u)
            x = p.step(x, u)
            done = p.terminated(x).numpy()
            out.returns[idx] += r.numpy()
            out.effort[idx] += np.sum(a.reshape(len(idx), m).astype(np.float64) ** 2, axis=1)
            out.lengths[idx] += 1
            out.settled_since[idx[~plant.is_settled(x).numpy()]] = t + 1
            if done.any():
                out.terminated[idx[done]] = True
                keep = ~done
                idx, x = idx[keep], x[torch.from_numpy(keep)]
                queue = [q[torch.from_numpy(keep)] for q in queue]
                if idx.size == 0:
                    break
    return out


def run_vector(policy: BatchedPolicy, envs: Any, seeds: list[int], plant: Plant | None) -> Episodes:
    """Episodes on a gymnasium ``SyncVectorEnv`` in ``AutoresetMode.DISABLED``.

    Each finished slot is reset with the next episode's own seed (so episode k starts as
    ``env.reset(seed=seeds[k])`` would), slots with no episode left are reset unseeded and
    ignored, and every episode's return is counted once, from its own steps.
    """
    e, n = len(seeds), envs.num_envs
    out = Episodes.empty(e)
    slot = np.arange(n)  # episode index of each slot, −1 when idle
    nxt = n
    obs, _ = envs.reset(seed=[int(s) for s in seeds[:n]])
    while (slot >= 0).any():
        a = policy(np.asarray(obs, dtype=np.float32))
        obs, r, term, trunc, _ = envs.step(a)
        live = slot >= 0
        ep = slot[live]
        out.returns[ep] += np.asarray(r, dtype=np.float64)[live]
        out.effort[ep] += np.sum(a.reshape(n, -1).astype(np.float64) ** 2, axis=1)[live]
        out.lengths[ep] += 1
        if plant is not None:
            x = torch.as_tensor(
                np.stack([sub.unwrapped.state for sub in envs.envs]), dtype=torch.float64
            )
            unsettled = live & ~plant.is_settled(x).numpy()
            out.settled_since[slot[unsettled]] = out.lengths[slot[unsettled]]
        done = term | trunc
        if not done.any():
            continue
        out.terminated[slot[live & term]] = True
        reset_seeds: list[int | None] = [None] * n
        for i in np.flatnonzero(done):
            if slot[i] >= 0 and nxt < e:
                slot[i], reset_seeds[i] = nxt, int(seeds[nxt])
                nxt += 1
            else:
                slot[i] = -1
        obs, _ = envs.reset(seed=reset_seeds, options={"reset_mask": np.asarray(done)})
    return out
