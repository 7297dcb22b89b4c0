"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a ``torch.save`` file read back with ``weights_only=True`` (no pickle of code):
the network's tensors and architecture, the optimiser state, the iteration counter, the history
and any trainer data (e.g. DAgger's aggregated data set). Batches are drawn from generators
seeded by (seed, iteration), so a resumed run draws the same batches as an uninterrupted one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically (temporary file, then rename) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, *, kind: str) -> dict[str, Any]:
    """Read a checkpoint written by the trainer ``kind`` ("imitate" or "optimize_policy").

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a certnet checkpoint, or was written by the other trainer.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; start without resume (resume = false) to create one"
        )
    try:
        state = torch.load(path, weights_only=True)
    except Exception as exc:  # torch raises several types for a foreign or broken file
        raise ValueError(f"{path} is not a readable certnet checkpoint: {exc}") from None
    if not isinstance(state, dict) or state.get("trainer") != kind:
        found = state.get("trainer") if isinstance(state, dict) else None
        raise ValueError(
            f"{path} is not a {kind} checkpoint (found trainer={found!r}); resume with the "
            "trainer that wrote it"
        )
    return state
