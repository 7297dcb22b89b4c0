"""Evaluation at scale: 10⁴ seeded Pendulum-v1 episodes, three paths, same run.

Paths of ``cn.export.evaluate``: the batched torch twin (``backend="twin"``), gymnasium's
``SyncVectorEnv`` (``backend="vector"``, num_envs 16 and 64) and the one-env loop
(``backend="gym"``, measured on fewer episodes and extrapolated linearly). Checks that the three
give the same returns on a common subset of seeds, and writes docs/bench/scale.md.

    python benchmarks/scale.py            # 10⁴ episodes (loop on 200, vector on 2000)
    python benchmarks/scale.py --quick    # smoke run: 200 episodes (loop on 20)
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import certnet as cn

OUT = Path(__file__).resolve().parents[1] / "docs" / "bench" / "scale.md"
TARGET_LOOP, TARGET_VECTOR = 50.0, 5.0


def controller() -> tuple[torch.nn.Module, str]:
    """A cached demo pendulum controller if one is at hand, else a fixed random [3, 64, 64, 1]."""
    for path in sorted(glob.glob("/tmp/cl_cache/*pendulum*.safetensors")):
        with warnings.catch_warnings():  # older cached files warn about missing digests
            warnings.simplefilter("ignore")
            net = cn.load(path)
        if getattr(net, "widths", None) == [3, 64, 64, 1]:
            return net, f"demo controller {Path(path).name}"
    net = cn.nn.NormalizedMLP([3, 64, 64, 1], lipschitz=20.0, seed=0)
    return net, "fixed random NormalizedMLP [3, 64, 64, 1] (seed 0, Lipschitz 20)"


def timed(policy, episodes: int, backend: str, **kw) -> tuple[cn.export.Evaluation, float]:
    t0 = time.perf_counter()
    ev = cn.export.evaluate(policy, "Pendulum-v1", episodes=episodes, seed=0, backend=backend, **kw)
    return ev, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (fewer episodes)")
    ap.add_argument("--episodes", type=int, default=None, help="twin episodes (default 10⁴)")
    args = ap.parse_args()
    n_twin = args.episodes or (200 if args.quick else 10_000)
    n_loop = 20 if args.quick else 200
    n_vec = 200 if args.quick else 2000
    torch.set_num_threads(1)
    net, what = controller()
    policy = cn.export.to_policy(net, env=gym.make("Pendulum-v1"))
    load0 = os.getloadavg()
    rows = []
    twin, t_twin = timed(policy, n_twin, "twin")
    rows.append(("twin (batched torch)", n_twin, t_twin, "measured"))
    vec = {}
    for k in (16, 64):
        vec[k], t = timed(policy, n_vec, "vector", num_envs=k)
        rows.append((f"SyncVectorEnv, num_envs {k}", n_vec, t, "measured"))
    loop, t_loop = timed(policy, n_loop, "gym")
    rows.append(("one-env loop", n_loop, t_loop, "measured"))
    load1 = os.getloadavg()
    rate = {name: n / t for name, n, t, _ in rows}
    r_twin = rate["twin (batched torch)"]
    r_vec = max(rate["SyncVectorEnv, num_envs 16"], rate["SyncVectorEnv, num_envs 64"])
    r_loop = rate["one-env loop"]
    common = n_loop
    gaps = {
        "twin vs loop": np.abs(twin.returns[:common] - loop.returns).max(),
        "vector 16 vs loop": np.abs(vec[16].returns[:common] - loop.returns).max(),
        "vector 64 vs loop": np.abs(vec[64].returns[:common] - loop.returns).max(),
        "twin vs vector 64": np.abs(twin.returns[:n_vec] - vec[64].returns).max(),
    }
    same = all(g <= 1e-6 * np.abs(loop.returns).max() for g in gaps.values())
    cmd = "python benchmarks/scale.py" + (" --quick" if args.quick else "")
    lines = [
        "# Evaluation at scale: 10⁴ Pendulum-v1 episodes",
        "",
        f"Command: `{cmd}`. Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, gymnasium {gym.__version__}, "
        f"one torch thread; load average (1, 5, 15 min) {tuple(round(v, 2) for v in load0)} "
        f"before, {tuple(round(v, 2) for v in load1)} after. Controller: {what}; "
        f"policy batched on the twin: {twin.policy_batched}.",
        "",
        "| path | episodes run | wall s | episodes/s | 10⁴ episodes, s |",
        "|---|---|---|---|---|",
    ]
    for name, n, t, _ in rows:
        est = "" if n == 10_000 else " (extrapolated linearly)"
        lines.append(f"| {name} | {n} | {t:.2f} | {n / t:.0f} | {1e4 / (n / t):.1f}{est} |")
    lines += [
        "",
        f"Twin ÷ one-env loop: **{r_twin / r_loop:.0f}×** (target ≥ {TARGET_LOOP:.0f}×); "
        f"twin ÷ best SyncVectorEnv: **{r_twin / r_vec:.1f}×** (target ≥ {TARGET_VECTOR:.0f}×); "
        f"best SyncVectorEnv ÷ loop: {r_vec / r_loop:.1f}×.",
        "",
        f"Same returns on the common seeds 0–{common - 1} (twin and vector also on 0–"
        f"{n_vec - 1}): {'yes' if same else 'NO'}; largest differences "
        + ", ".join(f"{k} {v:.2g}" for k, v in gaps.items())
        + f" (returns are ~{np.abs(loop.returns).mean():.0f} in size: float round-off of "
        "batched vs one-row matrix products).",
        "",
        f"Mean return over {n_twin} episodes {twin.mean_return:.2f}, worst "
        f"{twin.worst_return:.2f}, 5/50/95 % "
        + "/".join(f"{v:.2f}" for v in twin.quantiles.values())
        + ".",
        "",
        "The one-env loop and the vector env run on fewer episodes than the twin; their 10⁴ "
        "figures assume a constant rate per episode (every Pendulum-v1 episode is 200 steps). "
        "The twin's time includes the 10⁴ `env.reset(seed=…)` calls that give its initial "
        "states.",
    ]
    text = "\n".join(lines) + "\n"
    if not args.quick:
        OUT.write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
