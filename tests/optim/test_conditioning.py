import torch

import certnet as cn


def test_mm_trains_a_row_conditioned_net_and_keeps_the_bound():
    torch.manual_seed(0)
    X = torch.randn(256, 4, dtype=torch.float64)
    Y = torch.sin(X[:, :1]) + X[:, 1:2] * X[:, 2:3]
    net = cn.nn.NormalizedMLP(
        [4, 16, 16, 1], radii=2.0, conditioning="row", dtype=torch.float64, seed=0, lipschitz=None
    )
    hist = cn.optim.fit(net, X, Y, epochs=40, progress=False)
    assert hist.loss[-1] < hist.loss[0]
    for lin in net.linears:
        assert abs(float(lin.weight.detach().norm()) / lin.radius - 1) < 1e-12
        rows = lin.weight.detach().norm(dim=1)
        assert torch.allclose(rows, rows[0].expand_as(rows), rtol=1e-10)
