import numpy as np
import pytest

from certnet.nn.activations import ActivationSpec, activation_spec
from certnet.nn.extract import LayerStack


def make_stack(ws, acts, biases=None):
    """A LayerStack from raw arrays; ``acts`` are names or ActivationSpec objects."""
    specs = tuple(a if isinstance(a, ActivationSpec) else activation_spec(a) for a in acts)
    bs = biases or [np.zeros(w.shape[0]) for w in ws]
    d0, dl = ws[0].shape[1], ws[-1].shape[0]
    return LayerStack(
        tuple(np.asarray(w, dtype=np.float64) for w in ws),
        tuple(np.asarray(b, dtype=np.float64) for b in bs),
        specs,
        np.zeros(d0),
        np.ones(d0),
        np.ones(dl),
        np.zeros(dl),
    )


def random_weights(dims, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [
        scale * rng.normal(size=(dims[i + 1], dims[i])) / np.sqrt(dims[i])
        for i in range(len(dims) - 1)
    ]


@pytest.fixture
def stack_factory():
    return make_stack


def feedback_net(K, width=16, seed=0, act="tanh", bias=False, scale=0.5):
    """A one-hidden-layer torch net u = W₂ σ(W₁ x (+ b)) whose linearisation at 0 is u = −K x:
    W₁ random (scaled), W₂ = −K W₁⁺ (σ'(0) = 1 for tanh). Saturating σ makes it nonlinear."""
    import torch

    from certnet.nn.activations import make_activation

    K = np.atleast_2d(np.asarray(K, dtype=np.float64))
    m, n = K.shape
    rng = np.random.default_rng(seed)
    W1 = scale * rng.normal(size=(width, n))
    W2 = -K @ np.linalg.pinv(W1)
    net = torch.nn.Sequential(
        torch.nn.Linear(n, width, bias=bias), make_activation(act), torch.nn.Linear(width, m,
                                                                                    bias=False)
    ).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.as_tensor(W1))
        if bias:
            net[0].bias.zero_()
        net[2].weight.copy_(torch.as_tensor(W2))
    return net


def dlqr_gain(plant, Q=None, R=None):
    """dLQR gain K of a plant's linearisation at its x_eq, u_eq."""
    import control

    from certnet.plants import linearize

    s = linearize(plant)
    n, m = s.B.shape
    K, _, _ = control.dlqr(s.A, s.B, np.eye(n) if Q is None else Q, np.eye(m) if R is None else R)
    return K
