"""Branch and bound: exact answers on linear loops, refusal of a radius that is not proved."""

import control
import numpy as np
import pytest
import scipy.linalg as sla

import certnet as cn
from certnet.errors import CertificateError
from certnet.verify.loop_bnb import Frame, Problem, largest_radius, prove
from certnet.verify.loop_model import ClosedLoop
from certnet.verify.ode import expm_enclosure
from tests.verify.conftest import feedback_net


def _linear_loop():
    A = np.array([[1.0, 0.1], [0.0, 1.0]])
    B = np.array([[0.005], [0.1]])
    K, _, _ = control.dlqr(A, B, np.eye(2), np.eye(1))
    net = cn.nn.extract_layers(feedback_net(K, width=4, act="identity"))
    loop = ClosedLoop(control.ss(A, B, np.eye(2), 0, 0.1), net)
    Acl = A - B @ K
    return loop, Acl


def test_a_linear_loop_is_proved_on_the_whole_radius():
    loop, Acl = _linear_loop()
    P = control.dlyap(Acl.T, np.eye(2))
    problem = Problem.stability(Frame.of(np.zeros(2), P), 1e-15)
    core = largest_radius(loop, problem, "core", r_out=0.5, bound=0.999)
    dec = largest_radius(loop, problem, "decrease", r_in=0.4, r_out=1.0)
    assert core.radius == 0.5 and dec.radius == 1.0 and not dec.exhausted
    rho = np.linalg.norm(problem.frame.L.T @ Acl @ problem.frame.M, 2)
    assert rho <= core.worst <= rho * (1 + 1e-9)  # exact for a linear map, up to round-off


def test_a_radius_beyond_a_failing_state_is_not_proved():
    loop = ClosedLoop(cn.plants.InvertedPendulum(max_torque=0.2),
                      feedback_net(np.array([[3.0, 0.6]]), width=8))
    x0, lo, hi = loop.equilibrium()
    A = loop.jacobian(x0)
    P = control.dlyap(A.T, np.eye(2)) / 50.0  # an ellipse too large for the saturated torque
    problem = Problem.stability(Frame.of(x0, P), 1e-12)
    found = largest_radius(loop, problem, "decrease", r_in=0.05, r_out=1.0)
    assert found.radius < 1.0 and found.where is not None
    with pytest.raises(CertificateError, match="fails on a cell"):
        prove(loop, problem, "decrease", r_in=0.05, r_out=min(1.0, found.radius * 1.5))


def test_frame_refuses_matrices_that_are_not_positive_definite():
    with pytest.raises(CertificateError, match="not positive definite"):
        Frame.of(np.zeros(2), -np.eye(2))
    with pytest.raises(CertificateError, match="finite square"):
        Frame.of(np.zeros(2), np.ones((2, 3)))


def test_the_exponential_enclosure_contains_scipy_expm():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(20, 3, 3))
    E, F, err = expm_enclosure(A, 0.05)
    for k in range(20):
        ref = sla.expm(A[k] * 0.05)
        assert np.abs(ref - E[k]).max() <= err[k]
    assert np.isinf(expm_enclosure(np.full((1, 2, 2), 100.0), 0.05)[2][0])
