import control
import numpy as np
import pytest
import torch

import certnet as cn


def _inputs(plant, T, seed=0):
    rng = np.random.default_rng(seed)
    lo = np.where(np.isfinite(plant.u_min), plant.u_min, -1.0)
    hi = np.where(np.isfinite(plant.u_max), plant.u_max, 1.0)
    return rng.uniform(lo * 1.2, hi * 1.2, size=(T, plant.n_inputs))


def test_discrete_nlsys_matches_torch_rollout(plant):
    T = 40
    U = _inputs(plant, T)
    x0 = (plant.reset_low + plant.reset_high) / 2 + 0.1
    sys = plant.to_iosys()
    assert sys.dt == plant.dt and sys.nstates == plant.n_states
    assert list(sys.output_labels) == list(plant.obs_names)
    t = np.arange(T) * plant.dt
    resp = control.input_output_response(sys, t, U.T, x0, squeeze=False)
    Ut = torch.as_tensor(U)
    k = iter(range(T))
    ro = plant.rollout(lambda obs: Ut[next(k)][None], torch.as_tensor(x0)[None], T - 1)
    np.testing.assert_allclose(resp.states.T, ro.states[0].numpy(), atol=1e-12)
    np.testing.assert_allclose(resp.outputs.T, plant.observe(ro.states[0]).numpy(), atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: cn.plants.InvertedPendulum(integrator="rk4", max_torque=0.5),
    lambda: cn.plants.VehicleLateral(),
])
def test_continuous_nlsys_matches_torch_with_zero_order_hold(make):
    plant = make()
    T = 25
    U = _inputs(plant, T, seed=2)
    x0 = plant.reset_high * 0.5
    sys = plant.to_iosys(dt=0)
    assert sys.dt == 0
    # zero-order hold: one solve per sampling interval with the input held constant, and
    # max_step below the sampling period (python-control issue #890)
    xs, x = [x0], x0
    for k in range(T):
        resp = control.input_output_response(
            sys, [0.0, plant.dt], np.repeat(U[k][:, None], 2, axis=1), x, squeeze=False,
            solve_ivp_kwargs={"max_step": plant.dt / 10, "rtol": 1e-10, "atol": 1e-12},
        )
        x = resp.states[:, -1]
        xs.append(x)
    Ut = torch.as_tensor(U)
    k = iter(range(T))
    ro = plant.rollout(lambda obs: Ut[next(k)][None], torch.as_tensor(x0)[None], T)
    tol = 1e-7 if plant.integrator == "exact" else 1e-5  # RK4: O(dt⁴) global error
    np.testing.assert_allclose(np.array(xs), ro.states[0].numpy(), atol=tol)


def test_dt_errors():
    with pytest.raises(ValueError, match="dt must be None or 0.05"):
        cn.plants.Pendulum().to_iosys(dt=0.1)
    with pytest.raises(TypeError, match="use to_iosys\\(dt=None\\)"):
        cn.plants.MountainCar().to_iosys(dt=0)
