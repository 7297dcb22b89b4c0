"""Calling a torch policy on what users hold: numpy or torch, one observation or a batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["apply_policy"]


def apply_policy(
    fn: Callable[[torch.Tensor], torch.Tensor], obs: Any, n_obs: int, *, dtype=torch.float64
) -> Any:
    """Evaluate a batched torch map ``fn`` on ``obs`` of shape (n_obs,) or (B, n_obs).

    A torch input is passed through as it is (gradients flow; the output keeps the batch shape
    of the input). Anything else is converted to a ``dtype`` tensor, and the result is returned
    as a numpy array with the input's float dtype (float32 observations → float32 actions, as
    gymnasium's Box spaces expect).

    Raises
    ------
    ValueError
        The last dimension is not ``n_obs``, more than 2 dimensions, or NaN/inf entries.
    """
    is_torch = isinstance(obs, torch.Tensor)
    x = obs if is_torch else torch.as_tensor(np.asarray(obs, dtype=np.float64), dtype=dtype)
    if x.ndim not in (1, 2) or x.shape[-1] != n_obs:
        raise ValueError(
            f"observation must have shape ({n_obs},) or (B, {n_obs}), got {tuple(x.shape)}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError("observation contains NaN or inf")
    single = x.ndim == 1
    out = fn(x[None] if single else x)
    out = out[0] if single else out
    if is_torch:
        return out
    np_dtype = np.asarray(obs).dtype
    return out.detach().numpy().astype(np_dtype if np_dtype.kind == "f" else np.float64)
