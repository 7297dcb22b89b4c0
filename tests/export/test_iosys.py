import control
import numpy as np
import pytest
import torch

import certnet as cn


@pytest.fixture
def net():
    return cn.nn.NormalizedMLP([3, 16, 1], lipschitz=5.0, seed=0, dtype=torch.float64)


def test_to_iosys_names_and_values(net):
    sys = cn.export.to_iosys(net, inputs=["a", "b", "c"], outputs=["tau"])
    assert sys.nstates == 0 and list(sys.input_labels) == ["a", "b", "c"]
    u = np.array([0.3, -0.2, 1.0])
    with torch.no_grad():
        expected = net(torch.as_tensor(u)[None])[0].numpy()
    np.testing.assert_allclose(sys.output(0, [], u), expected, atol=1e-12)
    default = cn.export.to_iosys(net)
    assert list(default.input_labels) == ["obs[0]", "obs[1]", "obs[2]"]


def test_sampled_data_loop_matches_torch_rollout(net):
    plant = cn.plants.Pendulum()
    loop = cn.export.closed_loop(plant, net)
    assert loop.dt == plant.dt and loop.ninputs == 0
    T = 60
    resp = control.input_output_response(loop, np.arange(T) * plant.dt, 0, [0.3, 0.0])
    ro = plant.rollout(net, torch.tensor([[0.3, 0.0]], dtype=torch.float64), T - 1)
    np.testing.assert_allclose(resp.states.T, ro.states[0].detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(resp.outputs[3, :-1], ro.actions[0, :, 0].detach().numpy(),
                               atol=1e-12)


def test_continuous_loop_with_an_expert_converges():
    plant = cn.plants.InvertedPendulum()
    loop = cn.export.closed_loop(plant, cn.experts.lqr(plant, continuous=True), dt=0)
    assert loop.dt == 0
    t = np.linspace(0, 3, 151)
    resp = control.input_output_response(loop, t, 0, [0.3, 0.0],
                                         solve_ivp_kwargs={"max_step": plant.dt})
    assert np.abs(resp.states[:, -1]).max() < 1e-2 * 0.3


def test_closed_loop_accepts_a_system_with_matching_names(net):
    plant = cn.plants.Pendulum()
    ctrl = cn.export.to_iosys(net, plant=plant)
    assert cn.export.closed_loop(plant, ctrl).nstates == 2


def test_errors(net):
    plant = cn.plants.Pendulum()
    with pytest.raises(ValueError, match="inputs needs 3 names"):
        cn.export.to_iosys(net, inputs=["a"])
    with pytest.raises(TypeError, match="a callable policy needs plant="):
        cn.export.to_iosys(lambda o: o)
    with pytest.raises(ValueError, match="the controller system must have inputs"):
        cn.export.closed_loop(plant, cn.export.to_iosys(net))
    with pytest.raises(ValueError, match="dt must be None or 0.05"):
        cn.export.closed_loop(plant, net, dt=0.01)
