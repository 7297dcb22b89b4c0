"""Several processes: two gloo processes on CPU stay in lockstep and match one full-batch process.

The workers meet through a FileStore in the test's temporary folder (no port to pick), every
collective has a generous timeout (a hang fails instead of blocking the suite; nothing is
timed), and each worker destroys its process group however it ends.
"""

import datetime
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from certnet.nn import NormalizedMLP
from certnet.optim import MM, AutoNewton, RiemannianSGD, build_optimizer

WORLD = 2
STEPS = 4


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 3, generator=g, dtype=torch.float64)
    return X, torch.sin(X[:, :1]) + 0.5 * X[:, 1:2] * X[:, 2:3]


def _net():
    return NormalizedMLP([3, 8, 8, 1], radii=2.0, dtype=torch.float64, seed=0)


def _certnet_closure(opt, model, X, Y):
    return lambda: ((model(X) - Y) ** 2).mean()


def _torch_closure(opt, model, X, Y):
    def closure():
        opt.zero_grad()
        loss = ((model(X) - Y) ** 2).mean()
        loss.backward()
        return loss

    return closure


def _backward_then_step(opt, model, X, Y):
    """No closure: the caller's backward() (local gradients, no DDP), then opt.step(); the
    step reports no loss (each process only knows its own)."""

    def step():
        opt.zero_grad()
        ((model(X) - Y) ** 2).mean().backward()
        assert opt.step() is None
        return math.nan

    return step


def _mm_on_the_world_group(net):
    return MM(net, process_group=dist.group.WORLD)


#: name → (optimiser factory, wrap the network in DDP, closure convention)
CASES = {
    "mm": (MM, False, _certnet_closure),
    "autonewton": (AutoNewton, False, _certnet_closure),
    "rsgd": (lambda net: RiemannianSGD(net, 0.05), False, _certnet_closure),
    "mm-ddp-torch-closure": (MM, True, _torch_closure),
    "autonewton-ddp-torch-closure": (AutoNewton, True, _torch_closure),
    "mm-world-group": (_mm_on_the_world_group, False, _certnet_closure),
    "adam": (lambda net: build_optimizer("adam", net, lr=0.01), False, _certnet_closure),
    "rsgd-no-closure": (lambda net: RiemannianSGD(net, 0.05), False, _backward_then_step),
    "adam-no-closure": (
        lambda net: build_optimizer("adam", net, lr=0.01),
        False,
        _backward_then_step,
    ),
}


def _train(case, X, Y):
    make, ddp, closure_for = CASES[case]
    net = _net()
    model = torch.nn.parallel.DistributedDataParallel(net) if ddp else net
    opt = make(model)
    closure = closure_for(opt, model, X, Y)
    step = closure if closure_for is _backward_then_step else lambda: opt.step(closure)
    losses = [float(step()) for _ in range(STEPS)]
    return [p.detach().clone() for p in net.parameters()], losses


def _run_all(rank, world, store):
    """Every case on this process's shard, inside a gloo group of ``world`` processes."""
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=120),
    )
    try:
        X, Y = _data()
        shard = slice(rank * len(X) // world, (rank + 1) * len(X) // world)
        return {case: _train(case, X[shard], Y[shard]) for case in CASES}
    finally:
        dist.destroy_process_group()


def _worker(rank, store, out):
    torch.set_num_threads(1)
    torch.save(_run_all(rank, WORLD, store), out / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The two ranks' results, then the same cases in one process on the whole data set (a
    group of one process: DDP and the world group exist, nothing is averaged)."""
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(tmp / "store", tmp), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]
    return ranks, _run_all(0, 1, tmp / "single")


@pytest.mark.parametrize("case", list(CASES))
def test_ranks_stay_identical_and_match_one_full_batch_process(runs, case):
    ranks, single = runs
    (w0, l0), (w1, l1) = ranks[0][case], ranks[1][case]
    assert l0 == pytest.approx(l1, rel=0, abs=0, nan_ok=True)
    assert all(torch.equal(a, b) for a, b in zip(w0, w1, strict=True))
    # equal shards: the mean of the shard losses is the full-batch mean loss
    w, losses = single[case]
    assert l0 == pytest.approx(losses, rel=1e-10, nan_ok=True)
    for a, b in zip(w0, w, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    assert not all(torch.equal(a, b) for a, b in zip(w0, _net().parameters(), strict=True))


def test_process_group_must_be_a_group(problem):
    with pytest.raises(TypeError, match="process_group must be a torch.distributed.ProcessGroup"):
        MM(problem[2](), process_group="world")
