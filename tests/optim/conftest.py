import pytest
import torch

from certnet.nn import NormalizedMLP


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only contend with other jobs on a 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def problem():
    """A small float64 regression problem and a factory of networks."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(128, 3, generator=g, dtype=torch.float64)
    Y = torch.sin(X[:, :1]) + 0.5 * X[:, 1:2] * X[:, 2:3]

    def make(radii=1.0, widths=(3, 16, 16, 1), seed=0, **kw):
        return NormalizedMLP(list(widths), radii=radii, dtype=torch.float64, seed=seed, **kw)

    def closure_for(net):
        return lambda: ((net(X) - Y) ** 2).mean()

    return X, Y, make, closure_for
