"""Jets: plant and network code run on boxes; every sampled value and derivative is enclosed."""

import numpy as np
import pytest
import torch

import certnet as cn
from certnet.nn.activations import ACTIVATIONS
from certnet.verify.jet import Jet, UnsupportedOperation
from certnet.verify.loop_model import ClosedLoop

RNG = np.random.default_rng(0)


def _boxes(centre, width, count=64):
    n = len(centre)
    lo = centre + RNG.uniform(-1, 1, (count, n)) * width
    return lo, lo + RNG.uniform(0, 1, (count, n)) * width * 0.1


def _fd_jacobian(fn, x, h=1e-6):
    cols = [(fn(x + h * e) - fn(x - h * e)) / (2 * h) for e in torch.eye(x.shape[1],
                                                                        dtype=x.dtype)]
    return torch.stack(cols, -1)


def _enclosed(fn, lo, hi, samples=32, autograd=True):
    """fn on a Jet over each box contains fn and its Jacobian at sampled points (by autograd,
    or central differences to 1e-6 for numpy code)."""
    out = fn(Jet.box(lo, hi))
    t = lo[:, None, :] + (hi - lo)[:, None, :] * RNG.uniform(0, 1, (len(lo), samples, lo.shape[1]))
    x = torch.tensor(np.clip(t, lo[:, None], hi[:, None]).reshape(-1, lo.shape[1]))
    y = fn(x).detach().numpy().reshape(len(lo), samples, -1)
    if autograd:
        jac = torch.func.vmap(torch.func.jacrev(lambda v: fn(v[None])[0]))(x)
    else:
        jac = _fd_jacobian(fn, x)
    jac = jac.detach().numpy().reshape(len(lo), samples, *out.dlo.shape[1:])
    tol = 1e-12 if autograd else 1e-6
    assert np.all(out.lo[:, None] <= y + tol) and np.all(y - tol <= out.hi[:, None])
    assert np.all(out.dlo[:, None] <= jac + tol) and np.all(jac - tol <= out.dhi[:, None])


def _with_input(plant, u_lo, u_hi):
    m = plant.n_inputs

    def fn(xu):
        return plant.update(xu[:, :-m], xu[:, -m:])

    return fn, u_lo, u_hi


@pytest.mark.parametrize(
    "plant, centre, width, u",
    [
        (cn.plants.InvertedPendulum(), [0.0, 0.0], 3.0, (-1.0, 1.0)),
        (cn.plants.InvertedPendulum(integrator="rk4"), [0.5, -1.0], 2.0, (-1.0, 1.0)),
        (cn.plants.Pendulum(), [2.0, 7.5], 3.0, (-2.0, 2.0)),  # the speed clip is active
        (cn.plants.CartPole(), [0.0, 0.0, 0.1, 0.0], 1.0, (-10.0, 10.0)),
    ],
)
def test_plant_maps_are_enclosed_with_their_jacobians(plant, centre, width, u):
    fn, ul, uh = _with_input(plant, *u)
    lo, hi = _boxes(np.asarray(centre + [0.0] * plant.n_inputs), width)
    lo[:, -1], hi[:, -1] = ul * 0.5, uh * 0.5
    _enclosed(fn, lo, hi)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_of_a_network_is_enclosed(name):
    kw = {"groupsort": {"group_size": 2}}.get(name, {})
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), cn.nn.activations.make_activation(name, **kw),
                              torch.nn.Linear(8, 4), cn.nn.activations.make_activation(name, **kw),
                              torch.nn.Linear(4, 2)).double()
    loop = ClosedLoop(cn.plants.LTI(__import__("control").ss(np.eye(3) * 0.5, np.ones((3, 2)),
                                                             np.eye(3), 0, 0.1)), net)
    lo, hi = _boxes(np.zeros(3), 4.0)
    _enclosed(lambda x: loop.network_jet(x) if isinstance(x, Jet) else loop.network(x), lo, hi)


def test_numpy_callbacks_run_on_jets_through_the_column_convention():
    def f(t, x, u, params):
        return np.array([x[1], -params["k"] * np.sin(x[0]) + np.clip(u[0], -1, 1) * x[0] ** 2])

    import control

    plant = cn.plants.as_plant(control.nlsys(f, None, states=2, inputs=1, params={"k": 3.0}),
                               dt=0.1)
    lo, hi = _boxes(np.zeros(3), 2.0)
    _enclosed(lambda xu: plant.vector_field(xu[:, :2], xu[:, 2:]), lo, hi, autograd=False)


def test_undecided_branches_become_unbounded_and_python_branching_is_refused():
    from certnet.verify import interval as iv

    x = Jet.box(np.array([[-1.0], [0.5]]), np.array([[1.0], [1.0]]))
    iv.unbounded(clear=True)
    y = torch.where(x > 0, x, torch.zeros_like(x))
    assert np.isinf(y.lo[0, 0]) and y.lo[1, 0] == 0.5  # row 0 straddles the branch
    assert any("torch.where" in s for s in iv.unbounded(clear=True))  # named in BoundErrors
    with pytest.raises(UnsupportedOperation, match="torch.where"):
        bool(x[0] > 0)
    assert bool((x[1] > 0).all()) and not bool((x[1] < 0).any())  # decided: fine
    with pytest.raises(UnsupportedOperation, match="torch.where"):
        bool((x > 0).all())  # row 0 undecided, row 1 true: the conjunction is undecided
    with pytest.raises(UnsupportedOperation, match="Python float"):
        float(x[0, 0])


def test_unsupported_operations_are_named():
    x = Jet.box(np.zeros((1, 2)), np.ones((1, 2)))
    with pytest.raises(UnsupportedOperation, match="torch.floor"):
        torch.floor(x)
    with pytest.raises(UnsupportedOperation, match="numpy.floor"):
        np.floor(x)
    with pytest.raises(AttributeError, match="no method 'cumsum'"):
        x.cumsum(0)
