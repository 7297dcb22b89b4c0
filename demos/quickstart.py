"""Smallest end-to-end example: build a Lipschitz-bounded controller network, check its
by-construction bound against sampled difference quotients, save it and load it back."""

from pathlib import Path

import torch

import certnet as cn


def main(out: Path = Path("out/quickstart")) -> None:
    net = cn.nn.NormalizedMLP([3, 64, 64, 1], activation="tanh", lipschitz=25.0, seed=0,
                              dtype=torch.float64)
    x = torch.randn(20_000, 3, dtype=torch.float64)
    y = x + 1e-3 * torch.randn_like(x)
    with torch.no_grad():
        ratio = float(((net(x) - net(y)).norm(dim=1) / (x - y).norm(dim=1)).max())
    path = cn.save(net, out / "controller.safetensors")
    back = cn.load(path)
    print(f"by-construction Lipschitz bound : {net.lipschitz_bound():.6g}")
    print(f"largest sampled ratio           : {ratio:.6g}")
    print(f"saved and reloaded              : {path} (bound {back.lipschitz_bound():.6g})")
    assert ratio <= net.lipschitz_bound()


if __name__ == "__main__":
    main()
