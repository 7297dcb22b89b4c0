"""as_plant: the one door for plants users bring, and its refusals."""

import control
import numpy as np
import pytest
import torch

import certnet as cn


def _f(t, x, u, params):
    return np.array([x[1], 9.81 * np.sin(x[0]) - 0.1 * x[1] + u[0]])


def test_each_kind_of_plant_becomes_a_certnet_plant():
    p = cn.plants.InvertedPendulum()
    assert cn.plants.as_plant(p) is p
    c = cn.plants.as_plant(control.nlsys(_f, None, states=2, inputs=1), dt=0.05, u_max=2.0)
    assert c.integrator == "exact" and c.dt == 0.05 and float(np.asarray(c.u_max)[0]) == 2.0
    lti = cn.plants.as_plant(control.ss([[0.9]], [[1.0]], [[1.0]], 0, 0.1), u_min=-1.0)
    assert float(np.asarray(lti.u_min)[0]) == -1.0

    def step(x, u):
        return 0.9 * x + u

    fp = cn.plants.as_plant(step, dt=0.1, n_states=1, n_inputs=1)
    x = torch.ones(3, 1, dtype=torch.float64)
    assert torch.allclose(fp.update(x, x), 1.9 * x)


def test_keywords_that_would_be_ignored_are_refused():
    with pytest.raises(TypeError, match=r"carries its own settings.*\['u_min'\]"):
        cn.plants.as_plant(cn.plants.InvertedPendulum(), u_min=-1.0)
    with pytest.raises(TypeError, match=r"not \['x_eq'\]"):
        cn.plants.as_plant(control.ss([[0.9]], [[1.0]], [[1.0]], 0, 0.1), x_eq=[1.0])
    with pytest.raises(TypeError):  # a typo reaches the constructor, which names it
        cn.plants.as_plant(control.nlsys(_f, None, states=2, inputs=1), dt=0.05, umax=2.0)
    with pytest.raises(ValueError, match="not 0.1"):
        cn.plants.as_plant(cn.plants.InvertedPendulum(), dt=0.1)
    with pytest.raises(ValueError, match="sampling period"):
        cn.plants.as_plant(lambda x, u: x, n_states=1, n_inputs=1)
    with pytest.raises(TypeError, match="cannot use a str"):
        cn.plants.as_plant("pendulum")
