"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a ``torch.save`` file read back with ``weights_only=True`` (no pickle of code):
the network's tensors and architecture, the optimiser state, the iteration counter, the history
and any trainer data (e.g. DAgger's aggregated data set). Batches are drawn from generators
seeded by (seed, iteration), so a resumed run draws the same batches as an uninterrupted one.

Every checkpoint carries ``digest``, a SHA-256 of its whole content (every tensor's dtype, shape
and bytes, every number and string; :func:`state_digest`), checked at load: torch reads a
flipped bit in a tensor without complaint, and a resumed run would continue from weights nobody
trained. A truncated file is reported as such. Checkpoints written before the digest existed
still load, with a warning.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from certnet.io import tensor_digest

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_iterations",
    "refuse_existing_checkpoint",
    "state_digest",
]


def state_digest(state: Any) -> str:
    """SHA-256 (hex) of a checkpoint state: nested dicts, lists and tuples of tensors, numbers,
    strings, booleans and ``None``, in a fixed order (dict keys sorted by their ``repr``)."""
    h = hashlib.sha256()
    _feed(h, state)
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        h.update(b"T" + tensor_digest(obj).encode())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode())
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__[0]}{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    else:
        h.update(f"{type(obj).__name__}:{obj!r}".encode())


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` with its ``digest`` atomically (temporary file, then rename) and return
    the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    body = {k: v for k, v in state.items() if k != "digest"}
    torch.save({**body, "digest": state_digest(body)}, tmp)
    os.replace(tmp, path)
    return path


def _read(path: Path) -> Any:
    try:
        return torch.load(path, weights_only=True)
    except Exception as exc:  # torch raises several types for a foreign or broken file
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"{path} is not a readable certnet checkpoint (truncated, corrupted or another kind "
            f"of file: {why}); resume from an intact copy, or start afresh"
        ) from None


def load_checkpoint(path: str | os.PathLike, *, kind: str) -> dict[str, Any]:
    """Read a checkpoint written by the trainer ``kind`` ("imitate" or "optimize_policy").

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a certnet checkpoint (or is truncated), its digest does not match its
        content (corrupted or modified), or it was written by the other trainer.

    Warns
    -----
    UserWarning
        The checkpoint has no digest (written before checkpoints carried one).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; start without resume (resume = false) to create one"
        )
    state = _read(path)
    if not isinstance(state, dict) or state.get("trainer") != kind:
        found = state.get("trainer") if isinstance(state, dict) else None
        raise ValueError(
            f"{path} is not a {kind} checkpoint (found trainer={found!r}); resume with the "
            "trainer that wrote it"
        )
    stored = state.pop("digest", None)
    if stored is None:
        warnings.warn(
            f"{path} has no digest (written by an older certnet), so corruption cannot be "
            "detected; the next checkpoint this run writes has one",
            UserWarning,
            stacklevel=2,
        )
    elif stored != state_digest(state):
        raise ValueError(
            f"{path}: checkpoint corrupted or modified: its digest does not match its "
            "content; resume from an intact copy, or start afresh (overwrite = true, --force)"
        )
    return state


def checkpoint_iterations(path: str | os.PathLike) -> int | None:
    """The iteration count a checkpoint holds, or ``None`` when the file cannot be read as
    one (for messages: what an overwrite would lose)."""
    try:
        state = _read(Path(path))
    except ValueError:
        return None
    it = state.get("iteration") if isinstance(state, dict) else None
    return int(it) if isinstance(it, int) else None


def refuse_existing_checkpoint(path: str | os.PathLike) -> None:
    """Raise :class:`FileExistsError` if ``path`` exists: a fresh run would replace it.

    The message says how many iterations the checkpoint holds and the three ways on: continue it
    (``resume``), discard it (``overwrite``), or write elsewhere.
    """
    if not Path(path).exists():
        return
    n = checkpoint_iterations(path)
    held = f"holds {n} iterations" if n is not None else "exists (unreadable as a checkpoint)"
    raise FileExistsError(
        f"checkpoint {path} {held}; continue it with resume = true (--resume), discard it with "
        "overwrite = true (--force), or write to another folder (--out DIR)"
    )
