"""Several processes: the mean of the loss and the gradient over a ``torch.distributed`` group.

Note [several processes]
------------------------
Under ``torch.distributed`` (e.g. a network wrapped in ``DistributedDataParallel``, one process
per shard of the data) every process runs the same optimiser on its own shard. certnet's
optimisers take their gradients with ``torch.autograd.grad``, which skips DDP's all-reduce, so
without help each process would step on its own loss and the processes would drift apart
without any error. Instead, the optimiser averages over the group, in float64:

* the loss and its gradient at the start of a step (one all-reduce of one flat buffer),
* every trial loss (one all-reduce of a scalar per trial), and
* AutoNewton's curvature ⟨v, ∇²loss v⟩ (one all-reduce of a scalar).

Every decision of a step (accept or refuse a trial, the next κ, the L-BFGS pairs) is then taken
from the same numbers on every process, so all processes make the same collective calls and
keep bit-identical weights. The objective is the mean over the processes of each process's
loss: with a mean loss on equally sized shards, the full-batch mean loss of the union. In one
process (or without ``torch.distributed``) nothing is reduced and nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["process_group_of", "mean"]


def process_group_of(
    net: nn.Module, process_group: dist.ProcessGroup | None
) -> dist.ProcessGroup | None:
    """The group an optimiser of ``net`` averages over.

    Parameters
    ----------
    net : nn.Module
        The network the optimiser is built from.
    process_group : torch.distributed.ProcessGroup or None
        ``None``: the group of ``net`` when it is a ``DistributedDataParallel``, else the
        default group (when ``torch.distributed`` is initialised at the step).

    Raises
    ------
    TypeError
        ``process_group`` is neither ``None`` nor a ``torch.distributed.ProcessGroup``.
    """
    if process_group is None:
        if isinstance(net, nn.parallel.DistributedDataParallel):
            return net.process_group
        return None
    if not (dist.is_available() and isinstance(process_group, dist.ProcessGroup)):
        raise TypeError(
            "process_group must be a torch.distributed.ProcessGroup (e.g. "
            "torch.distributed.new_group(ranks)) or None for the default group, got "
            f"{type(process_group).__name__}"
        )
    return process_group


def mean(tensors: Sequence[torch.Tensor], group: dist.ProcessGroup | None) -> list[torch.Tensor]:
    """The mean of each tensor over the processes of ``group`` (float64 sums, dtypes kept).

    Returns the tensors themselves when there is a single process or ``torch.distributed`` is
    not initialised.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return list(tensors)
    size = dist.get_world_size(group)
    if size == 1:
        return list(tensors)
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
    dist.all_reduce(flat, group=group)
    flat /= size
    out, start = [], 0
    for t in tensors:
        out.append(flat[start : start + t.numel()].reshape(t.shape).to(t.dtype))
        start += t.numel()
    return out
