"""What every demo report is made of: certificates of the trained network by several methods,
the saved controller, plots, ``report.md``, and the pieces extra sections hand back
(:class:`Section`, :class:`Region`).

The pipeline that uses them is :mod:`certnet.demos.pipeline`; the closed-loop section is
:mod:`certnet.demos.loop`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import certnet as cn  # noqa: E402
from certnet.train import History  # noqa: E402

__all__ = [
    "DemoResult",
    "Region",
    "Section",
    "certify",
    "save_controller",
    "plot_training",
    "plot_bounds",
    "sampled_lipschitz",
    "write_report",
]


@dataclass
class DemoResult:
    """What a demo produced.

    Attributes
    ----------
    name : str
        Demo name.
    out : Path
        Output folder.
    report_path : Path
        ``out / "report.md"``.
    metrics : dict
        Returns, bounds, timings (JSON-serialisable).
    certificate : Certificate
        The tightest certified Lipschitz bound (also in ``certificate.json``).
    net : nn.Module
        The trained controller.
    history : History
        Its training history.
    files : list of Path
        Every file written.
    """

    name: str
    out: Path
    report_path: Path
    metrics: dict[str, Any]
    certificate: Any
    net: nn.Module
    history: History
    files: list[Path] = field(default_factory=list)


def certify(net: nn.Module, methods: tuple[str, ...]) -> tuple[Any, list[dict[str, Any]]]:
    """Lipschitz certificates of ``net`` by each method; returns the tightest certified one
    (re-checked in float64 with ``check``) and one table row per method. No method runs under
    a time cap, so the certified values do not depend on the machine's load."""
    rows, best = [], None
    for method in methods:
        t0 = time.perf_counter()
        try:
            cert = cn.verify.lipschitz(net, method=method)
            proved = cert.check(net) if cert.certified else math.nan
            status = "certified" if cert.certified else f"not certified: {cert.reason}"
        except Exception as exc:  # a method that cannot run is reported, not fatal
            rows.append(
                {
                    "method": method,
                    "value": math.nan,
                    "status": f"not available: {exc}",
                    "seconds": time.perf_counter() - t0,
                }
            )
            continue
        rows.append(
            {
                "method": method,
                "value": float(cert.value),
                "checked": float(proved),
                "status": status,
                "seconds": time.perf_counter() - t0,
            }
        )
        if cert.certified and (best is None or cert.value < best.value):
            best = cert
    if best is None:
        raise RuntimeError(f"no Lipschitz method certified the controller: {rows}")
    return best, rows


def save_controller(net: nn.Module, out: Path, cert: Any) -> list[Path]:
    """Write ``controller.safetensors`` (certificate JSON in its metadata) and
    ``certificate.json``."""
    model = cn.save(net, out / "controller.safetensors", metadata={"certificate": cert.to_json()})
    return [model, cert.save(out / "certificate.json")]


def plot_training(history: History, path: Path, ylabel: str) -> Path:
    """Training curve: loss per iteration (log scale when positive)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(history.loss) + 1), history.loss, marker="o", ms=3)
    if min(history.loss) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title("training curve")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_bounds(rows: list[dict[str, Any]], path: Path, sampled: float) -> Path:
    """Bar chart of the Lipschitz bound per method, with the sampled lower bound."""
    ok = [r for r in rows if math.isfinite(r["value"])]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([r["method"] for r in ok], [r["value"] for r in ok], color="tab:blue")
    ax.axhline(sampled, color="tab:red", ls="--", label=f"sampled lower bound {sampled:.3g}")
    ax.set_ylabel("Lipschitz bound (action units / obs unit)")
    ax.set_title("certified Lipschitz bounds by method")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    out: Path,
    title: str,
    intro: str,
    rows: list[dict[str, Any]],
    metrics: dict[str, Any],
    images: list[tuple[str, str]],
    extra: str = "",
) -> Path:
    """``report.md``: certificate table, metrics, plots."""
    lines = [
        f"# {title}",
        "",
        intro,
        "",
        "## Lipschitz certificates",
        "",
        "| method | bound | re-checked (float64) | status | time (s) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['value']:.6g} | {r.get('checked', math.nan):.6g} | "
            f"{r['status']} | {r['seconds']:.2f} |"
        )
    lines += ["", "## Results", "", "| metric | value |", "|---|---|"]
    for k, v in metrics.items():
        lines.append(f"| {k} | {_number(v)} |" if isinstance(v, float) else f"| {k} | {v} |")
    if extra:
        lines += ["", extra]
    lines += ["", "## Plots", ""]
    for caption, name in images:
        lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    lines += [
        "## Files",
        "",
        "- `controller.safetensors` — load with `certnet.load`; the "
        "certificate JSON is in its metadata (`certnet.read_metadata(path)['certificate']`)",
        "- `certificate.json` — the tightest certificate; `Certificate.load(p).check(net)` "
        "re-proves it",
        "- `metrics.json` — the numbers above",
    ]
    if (out / "closed_loop_certificate.json").is_file():
        lines.append(
            "- `closed_loop_certificate.json` — the closed-loop certificate; "
            "`Certificate.load(p).check(net, plant=plant)` re-proves it on the controller and "
            "the plant it is about (or `certnet verify controller.safetensors --check "
            "closed_loop_certificate.json`)"
        )
    lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    return path


def _number(v: float) -> str:
    """Six significant digits, more when rounding would carry a value below 1 (a contraction
    rate ρ) up to 1."""
    text = f"{v:.6g}"
    return f"{v:.12g}" if v < 1 <= float(text) else text


def sampled_lipschitz(net: nn.Module, obs: Any) -> float:
    """Largest Jacobian spectral norm ‖∂net/∂obs‖₂ over the sample ``obs`` (N, n_obs): a lower
    bound on Lip(net) that every certified bound must exceed."""
    x = torch.as_tensor(obs, dtype=next(net.parameters()).dtype).clone().requires_grad_(True)
    jac = torch.func.vmap(torch.func.jacrev(lambda v: net(v[None])[0]))(x)
    return float(torch.linalg.matrix_norm(jac.detach().double(), ord=2).max())


@dataclass(frozen=True)
class Region:
    """A certified ellipse in a phase plane, {z : (z − center)ᵀ P (z − center) ≤ 1}.

    Attributes
    ----------
    center : ndarray, shape (2,)
        In the plotted states' units.
    P : ndarray, shape (2, 2)
        Positive definite, in (state unit)⁻².
    label : str
        Legend text (say what is certified, e.g. "certified ROA (linearised loop)").
    """

    center: np.ndarray
    P: np.ndarray
    label: str


@dataclass
class Section:
    """An extra part of a demo report (e.g. a closed-loop certificate).

    Attributes
    ----------
    text : str
        Markdown, placed after the results table.
    metrics : dict
        Added to the report's metrics.
    images : list of (caption, file name)
        PNGs the section wrote into the output folder.
    files : list of Path
        Other files it wrote.
    regions : list of Region
        Certified regions to draw in the demo's phase portrait.
    """

    text: str
    metrics: dict[str, Any] = field(default_factory=dict)
    images: list[tuple[str, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
