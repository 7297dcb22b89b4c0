"""Soundness: every certificate is above every lower bound; exact oracles; invariances."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certnet.nn.activations import ActivationSpec
from certnet.verify import lipschitz
from certnet.verify.lower import (
    ascent_bound,
    class_bound,
    exact_relu,
    lipschitz_lower_bound,
    sampled_bound,
)
from tests.verify.conftest import make_stack, random_weights

ACTS = ["relu", "tanh", "sigmoid", "silu", "gelu", "leaky_relu", "identity", "wide"]


def _spec(name):
    # a synthetic class with α < 0 much wider than SiLU's (SiLU itself lies inside it)
    return ActivationSpec("silu", -1.0, 2.0) if name == "wide" else name


@st.composite
def nets(draw):
    depth = draw(st.integers(1, 3))
    dims = [draw(st.integers(1, 4))]
    dims += [draw(st.integers(1, 6)) for _ in range(depth)]
    dims += [draw(st.integers(1, 3))]
    acts = [_spec(draw(st.sampled_from(ACTS))) for _ in range(depth)]
    seed = draw(st.integers(0, 2**31))
    scale = draw(st.floats(0.2, 3.0))
    rng = np.random.default_rng(seed)
    biases = [rng.normal(size=n) for n in dims[1:]]
    return make_stack(random_weights(dims, seed, scale), acts, biases), seed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets())
def test_certificate_is_above_every_lower_bound(case):
    stack, seed = case
    cert = lipschitz(stack, "fast")
    assert cert.check(stack) <= cert.value
    lows = [
        sampled_bound(stack, samples=200, seed=seed % 1000),
        ascent_bound(stack, restarts=4, steps=30, seed=seed % 1000),
        class_bound(stack, restarts=2, sweeps=10, seed=seed % 1000),
    ]
    assert max(lows) <= cert.value * (1 + 1e-9)
    assert cert.value <= cert.data["product"] * (1 + 1e-3)  # fast: relative gap tol 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_relu_oracle(seed):
    rng = np.random.default_rng(seed)
    ws = random_weights([2, 7, 2], seed)
    stack = make_stack(ws, ["relu"], [rng.normal(size=7), rng.normal(size=2)])
    exact = exact_relu(stack)
    assert sampled_bound(stack, samples=500) <= exact * (1 + 1e-9)
    for method in ("fast", "lipsdp-neuron", "lipsdp-layer", "product"):
        assert exact <= lipschitz(stack, method).value * (1 + 1e-12)


def test_linear_net_oracle():
    ws = random_weights([4, 8, 8, 1], seed=5)
    stack = make_stack(ws, ["identity", "identity"])
    exact = np.linalg.norm(ws[2] @ ws[1] @ ws[0], 2)
    value = lipschitz(stack, "fast").value
    assert exact <= value <= exact * 1.01


def test_invariances():
    ws = random_weights([3, 6, 5, 1], seed=8)
    base = lipschitz(make_stack(ws, ["relu", "tanh"]), "fast").value
    scaled = [ws[0], 3.0 * ws[1], ws[2]]
    assert lipschitz(make_stack(scaled, ["relu", "tanh"]), "fast").value == pytest.approx(
        3.0 * base, rel=1e-4
    )
    p = np.random.default_rng(0).permutation(6)
    perm = [ws[0][p], ws[1][:, p], ws[2]]
    assert lipschitz(make_stack(perm, ["relu", "tanh"]), "fast").value == pytest.approx(
        base, rel=1e-4
    )
    wider = lipschitz(make_stack(ws, [ActivationSpec("silu", -0.2, 1.3), "tanh"]), "fast")
    assert wider.value >= base * (1 - 1e-4)


def test_lower_bound_summary_and_errors():
    rng = np.random.default_rng(3)
    stack = make_stack(random_weights([2, 5, 1], 3), ["relu"], [rng.normal(size=5), [0.0]])
    lb = lipschitz_lower_bound(stack, samples=200, restarts=4, steps=20)
    assert lb["exact"] is not None and lb["realized"] == max(
        lb["sampled"], lb["ascent"], lb["exact"]
    )
    assert lb["best"] >= lb["class"] and lb["best"] <= lipschitz(stack).value
    with pytest.raises(ValueError, match="one hidden ReLU"):
        exact_relu(make_stack(random_weights([2, 3, 1], 0), ["tanh"]))
    with pytest.raises(ValueError, match="max_neurons"):
        exact_relu(make_stack(random_weights([2, 3, 1], 0), ["relu"]), max_neurons=2)
    gs = ActivationSpec("groupsort", float("nan"), float("nan"), False, {"group_size": 2})
    with pytest.raises(ValueError, match="not elementwise"):
        class_bound(make_stack(random_weights([2, 4, 1], 0), [gs]))
