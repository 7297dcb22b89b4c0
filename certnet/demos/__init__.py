"""End-to-end demos: train → certify → simulate → report (``certnet demo NAME``).

Each demo writes into its output folder ``controller.safetensors`` (loadable with
:func:`certnet.load`, certificate JSON in its metadata), ``certificate.json``, ``report.md``,
``metrics.json`` and PNG plots.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from certnet.demos.report import DemoResult

__all__ = ["NAMES", "DemoResult", "run"]

#: The demos, in the order the docs present them.
NAMES: tuple[str, ...] = ("pendulum", "cartpole", "vehicle", "mountaincar")


def run(name: str, out: Path | str, quick: bool = False, seed: int = 0) -> DemoResult:
    """Run the demo ``name`` and write its report into ``out``.

    Parameters
    ----------
    name : str
        One of :data:`NAMES`.
    out : str or Path
        Output folder (created).
    quick : bool
        Reduced budget for smoke tests (well under a minute).
    seed : int
        Seed of training and evaluation.

    Returns
    -------
    DemoResult

    Raises
    ------
    ValueError
        Unknown demo name (the message lists the valid ones).
    """
    if name not in NAMES:
        raise ValueError(f"unknown demo {name!r}; choose one of: {', '.join(NAMES)}")
    module = importlib.import_module(f"certnet.demos.{name}")
    return module.run(out, quick=quick, seed=seed)
