import control
import numpy as np
import pytest

import certnet as cn


def test_pendulum_matches_research_numbers():
    sys = cn.plants.linearize(cn.plants.Pendulum())
    np.testing.assert_allclose(sys.A, [[1.0375, 0.05], [0.75, 1.0]], atol=1e-12)
    np.testing.assert_allclose(sys.B, [[0.0075], [0.15]], atol=1e-12)
    assert sys.dt == 0.05
    assert list(sys.state_labels) == ["theta", "theta_dot"]


def test_matches_python_control_finite_differences(plant):
    xe = plant.x_eq + 0.1
    ue = plant.u_eq + 0.05
    ours = cn.plants.linearize(plant, xe, ue)
    theirs = control.linearize(plant.to_iosys(), xe, ue)
    np.testing.assert_allclose(ours.A, theirs.A, atol=1e-5)
    np.testing.assert_allclose(ours.B, theirs.B, atol=1e-5)
    np.testing.assert_allclose(ours.C, theirs.C, atol=1e-5)
    if plant.has_vector_field:
        ours = cn.plants.linearize(plant, xe, ue, continuous=True)
        theirs = control.linearize(plant.to_iosys(dt=0), xe, ue)
        assert ours.dt == 0
        np.testing.assert_allclose(ours.A, theirs.A, atol=1e-4)
        np.testing.assert_allclose(ours.B, theirs.B, atol=1e-4)


def test_errors():
    with pytest.raises(ValueError, match="x_eq must be 2 finite numbers"):
        cn.plants.linearize(cn.plants.Pendulum(), [0.0])
    with pytest.raises(ValueError, match="u_eq must be 1 finite numbers"):
        cn.plants.linearize(cn.plants.Pendulum(), None, [np.nan])
    with pytest.raises(TypeError, match="linearise its discrete map"):
        cn.plants.linearize(cn.plants.MountainCar(), continuous=True)
