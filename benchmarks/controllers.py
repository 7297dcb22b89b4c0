"""Learned controllers on gymnasium tasks: certnet's pipeline against Adam and an unconstrained
network, in the same run.

    python benchmarks/controllers.py [--quick]

Pendulum-v1: DAgger imitation of the energy-shaping + LQR expert of ``certnet.demos.pendulum``
with four trainings of the same 3-64-64-1 tanh network (same data schedule and seed):

* NormalizedMLP (budget 300) + MM (certnet's default optimiser, no learning rate);
* NormalizedMLP (budget 300) + Adam at its default lr 1e-3;
* NormalizedMLP (budget 300) + Adam lr 3e-3 (the demo's setting);
* unconstrained nn.Sequential + Adam lr 1e-3.

Each is evaluated on 100 seeded episodes of the real ``Pendulum-v1`` and certified by the
"product" and "fast" Lipschitz methods (float64 re-checked). Writes docs/bench/controllers.md and
docs/bench/img/ctrl_*.png.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import certnet as cn  # noqa: E402
from certnet.demos import pendulum  # noqa: E402
from certnet.demos.report import certify  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bench" / "controllers.md"
IMG = ROOT / "docs" / "bench" / "img"

VARIANTS = (
    ("NormalizedMLP + MM", dict(optimizer="mm")),
    ("NormalizedMLP + Adam lr 1e-3", dict(optimizer="adam", lr=1e-3)),
    ("NormalizedMLP + Adam lr 3e-3 (demo)", dict(optimizer="adam", lr=3e-3)),
    ("unconstrained MLP + Adam lr 1e-3", dict(optimizer="adam", lr=1e-3, network="plain")),
)


def pendulum_rows(quick: bool, episodes: int) -> tuple[list[dict], dict]:
    plant = cn.plants.Pendulum()
    rows, curves = [], {}
    for label, kw in VARIANTS:
        cfg = pendulum.config(quick, 0, progress=False, **kw)
        res, seconds = pendulum.train(cfg)
        cert, _ = certify(res.net, ("product", "fast"), time_budget=20.0)
        ev = cn.export.evaluate(
            cn.export.to_policy(res.net, plant=plant), pendulum.ENV_ID, episodes, 0
        )
        rows.append(
            {
                "variant": label,
                "return": float(np.mean(ev.returns)),
                "std": float(np.std(ev.returns)),
                "lip": float(cert.value),
                "method": cert.method,
                "train_s": seconds,
                "mse": res.history.loss[-1],
            }
        )
        curves[label] = res.history.loss
        Console().print(
            f"{label}: return {rows[-1]['return']:.1f}, L {cert.value:.4g}, {seconds:.0f} s"
        )
    expert = cn.export.evaluate(pendulum.SwingUpExpert(plant), pendulum.ENV_ID, episodes, 0)
    return rows, {"curves": curves, "expert": float(np.mean(expert.returns))}


def plot(curves: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, loss in curves.items():
        ax.plot(np.arange(1, len(loss) + 1), loss, marker="o", ms=3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("DAgger round")
    ax.set_ylabel("imitation MSE on aggregated data (N m)²")
    ax.set_title("Pendulum-v1: training curves")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny budget (smoke run, not a result)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    episodes = 10 if args.quick else 100
    t0 = time.perf_counter()
    rows, info = pendulum_rows(args.quick, episodes)
    plot(info["curves"], IMG / "ctrl_pendulum_training.png")
    wall = time.perf_counter() - t0

    table = Table(title=f"Pendulum-v1, {episodes} episodes")
    for col in ("variant", "return", "vs certnet", "certified L", "train s"):
        table.add_column(col)
    ref = rows[0]
    for r in rows:
        table.add_row(
            r["variant"],
            f"{r['return']:.1f}",
            f"{r['return'] / ref['return']:.2f}",
            f"{r['lip']:.4g}",
            f"{r['train_s']:.0f}",
        )
    Console().print(table)
    if args.quick:
        print("--quick: not writing docs/bench/controllers.md")
        return

    demo = rows[2]
    lines = [
        "# Learned controllers: certnet against Adam and an unconstrained network",
        "",
        "Reproduce: `python benchmarks/controllers.py` (about "
        f"{wall / 60:.0f} min here; `--quick` for a smoke run).",
        "",
        f"Machine: {platform.processor() or platform.machine()}, 2 cores shared with other jobs "
        f"(timings are noisy), torch {torch.__version__}, Python {sys.version.split()[0]}, "
        "2 torch threads.",
        "",
        "## Pendulum-v1 (real gymnasium environment, 100 seeded episodes, reset seeds 0…99)",
        "",
        "Same 3-64-64-1 tanh network, same DAgger schedule (6 rounds × 64 episodes × 200 steps, "
        "200 optimiser steps per round on minibatches of 2048) imitating the energy-shaping + "
        f"LQR expert (expert return {info['expert']:.1f}). NormalizedMLP budget 300 N m per "
        "observation unit (Frobenius product bound); the certified bound is the tightest of "
        "the `product` and `fast` methods, re-checked in float64.",
        "",
        "| variant | mean return ± std | return ratio vs MM | certified Lipschitz bound "
        "(method) | final imitation MSE | training time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['return']:.1f} ± {r['std']:.1f} | "
            f"{r['return'] / ref['return']:.2f} | {r['lip']:.4g} ({r['method']}) | "
            f"{r['mse']:.3g} | {r['train_s']:.0f} |"
        )
    met = demo["return"] >= -150
    lines += [
        "",
        "![training curves](img/ctrl_pendulum_training.png)",
        "",
        "## Targets",
        "",
        f"- Pendulum-v1 mean return ≥ −150 with a certified bound: **{'met' if met else 'missed'}"
        f"** by the demo setting ({demo['return']:.1f}, certified L = {demo['lip']:.4g}, "
        f"training {demo['train_s']:.0f} s < 300 s). certnet's default MM optimiser "
        f"{'also meets' if ref['return'] >= -150 else 'misses'} it ({ref['return']:.1f}): "
        "its monotone majorisation steps are too cautious for this imitation problem within "
        "the same budget, so the demo trains the NormalizedMLP with Adam (the Lipschitz bound "
        "holds for any optimiser, because it is built into the parametrisation).",
        "- Same run comparison with Adam at default lr and an unconstrained network: the table.",
        "- MountainCarContinuous-v0 ≥ 93: measured by `python demos/mountaincar.py` "
        "(`out/mountaincar/metrics.json`, `mean_return`).",
        "- `certnet demo pendulum` end to end < 5 min: measured separately, see "
        "the demo's `metrics.json` (`total_seconds`).",
        "",
    ]
    DOC.write_text("\n".join(lines))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
