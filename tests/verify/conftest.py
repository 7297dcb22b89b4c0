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
