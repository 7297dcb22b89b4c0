"""Closed-loop certificates of the real plant: regions that the true loop never leaves, gains
that no disturbance beats, refusals that say why."""

import math

import control
import numpy as np
import pytest
import torch

import certnet as cn
from certnet.errors import BoundError, CertificateError
from certnet.verify import EquilibriumError, closed_loop, l2_gain
from certnet.verify.loop_model import flush_subnormals
from certnet.verify.loop_plot import region_samples
from tests.verify.conftest import dlqr_gain, feedback_net

PEND = cn.plants.InvertedPendulum()
SAT = cn.plants.InvertedPendulum(max_torque=0.7)


@pytest.fixture(scope="module")
def pend_net():
    return feedback_net(dlqr_gain(PEND, np.diag([1.0, 0.1]), np.array([[1.0]])), width=16)


@pytest.fixture(scope="module")
def pend_cert(pend_net):
    return closed_loop(SAT, pend_net, max_cells=40_000)


def _inside_samples(cert, count, seed=0):
    """count states of the region: half on its boundary, half uniform inside."""
    return region_samples(cert, count, seed)


def _stays_and_converges(loop_step, cert, x, steps):
    """Every trajectory stays in the region (V ≤ 1 up to 1e-9) and ends within 1e-6 of x*."""
    P, x0 = cert.array("P"), cert.array("x_eq")
    xt = torch.as_tensor(x)
    worst = 0.0
    with torch.no_grad(), flush_subnormals():
        for _ in range(steps):
            xt = loop_step(xt)
            d = xt.numpy() - x0
            worst = max(worst, float(np.einsum("bi,ij,bj->b", d, P, d).max()))
    assert worst <= 1 + 1e-9
    assert np.abs(xt.numpy() - x0).max() < 1e-6


def test_region_of_the_saturated_pendulum_is_kept_and_every_start_converges(pend_cert, pend_net):
    cert = pend_cert
    assert cert.certified and cert.method == "lyapunov-bnb" and cert.value < 1
    assert cert.data["roa_volume"] > 0.1
    loop = cn.verify.ClosedLoop(SAT, pend_net)
    _stays_and_converges(loop.step, cert, _inside_samples(cert, 1000), 1500)


def test_check_re_proves_needs_the_plant_and_rejects_another_plant(pend_cert, pend_net):
    assert pend_cert.check(pend_net, plant=SAT) <= pend_cert.value
    again = cn.verify.Certificate.from_json(pend_cert.to_json())
    assert again.check(pend_net, plant=SAT) <= pend_cert.value
    with pytest.raises(CertificateError, match="needs the plant"):
        pend_cert.check(pend_net)
    with pytest.raises(CertificateError, match="another closed loop"):
        pend_cert.check(pend_net, plant=cn.plants.InvertedPendulum(max_torque=0.7, mass=0.16))


@pytest.mark.parametrize("edit", ["radius", "P", "volume", "box", "core_bound"])
def test_tampered_certificates_are_rejected(pend_cert, pend_net, edit):
    d = pend_cert.to_dict()
    data = d["data"]
    if edit == "radius":
        data["radius"] *= 1.5
    elif edit == "P":
        data["P"] = (np.asarray(data["P"]) * 0.5).tolist()
    elif edit == "volume":
        data["roa_volume"] *= 2
    elif edit == "box":
        data["equilibrium_box"] = [[0.05, -1e-9], [0.06, 1e-9]]
    else:
        data["core_bound"] = 0.5
    tampered = cn.verify.Certificate.from_dict(d)
    with pytest.raises(CertificateError):
        tampered.check(pend_net, plant=SAT)


def test_unstable_loops_are_refused(pend_net):
    wrong = feedback_net(-dlqr_gain(PEND), width=16)  # positive feedback
    cert = closed_loop(PEND, wrong)
    assert not cert.certified and "spectral radius" in cert.reason
    with pytest.raises(CertificateError, match="nothing to check"):
        cert.check(wrong, plant=PEND)


def _continuous_pendulum():
    def f(t, x, u, params):
        return np.array([x[1], params["g"] * np.sin(x[0]) - 0.1 * x[1] + u[0]])

    return control.nlsys(f, None, states=["theta", "omega"], inputs=["torque"],
                         params={"g": 9.81}, name="pendulum")


def test_a_continuous_nlsys_sampled_at_50_ms_is_certified_about_its_exact_flow():
    sys = _continuous_pendulum()
    plant = cn.plants.as_plant(sys, dt=0.05, u_min=-5.0, u_max=5.0)
    A = np.array([[0.0, 1.0], [9.81, -0.1]])
    d = control.c2d(control.ss(A, [[0.0], [1.0]], np.eye(2), 0), 0.05)
    K, _, _ = control.dlqr(d.A, d.B, np.eye(2), np.eye(1))
    net = feedback_net(K, width=12)
    cert = closed_loop(sys, net, dt=0.05, u_min=-5.0, u_max=5.0, max_cells=40_000)
    assert cert.certified and cert.data["loop"]["sampling"].startswith("zero-order hold")
    assert cert.check(net, plant=plant) <= cert.value
    fine = cn.plants.as_plant(sys, dt=0.05, u_min=-5.0, u_max=5.0)
    fine.substeps = 60  # an accurate simulation of the real (continuous) plant
    loop = cn.verify.ClosedLoop(fine, net)
    _stays_and_converges(loop.step, cert, _inside_samples(cert, 1000), 400)


def test_a_torch_function_plant_with_a_biased_network_is_certified_about_its_fixed_point():
    def f(x, u):
        om = x[:, 1] + 0.05 * (9.81 * torch.sin(x[:, 0]) - 0.1 * x[:, 1] + u[:, 0])
        return torch.stack([x[:, 0] + 0.05 * om, om], 1)

    K = dlqr_gain(cn.plants.as_plant(f, dt=0.05, n_states=2, n_inputs=1))
    net = feedback_net(K, width=12, bias=True)
    with torch.no_grad():
        net[0].bias.fill_(1e-3)  # π(0) ≠ 0: the equilibrium moves off the origin
    cert = closed_loop(f, net, dt=0.05, n_states=2, n_inputs=1, u_min=-4, u_max=4,
                       max_cells=40_000)
    assert cert.certified and np.abs(cert.array("x_eq")).max() > 1e-6
    plant = cn.plants.as_plant(f, dt=0.05, n_states=2, n_inputs=1, u_min=-4, u_max=4)
    loop = cn.verify.ClosedLoop(plant, net)
    _stays_and_converges(loop.step, cert, _inside_samples(cert, 1000), 800)


def test_a_singularity_away_from_the_equilibrium_bounds_the_region_instead_of_failing():
    def f(x, u):  # the actuator's gain blows up at |θ| = 1.2
        gain = 1.0 / (1.0 - (x[:, 0] / 1.2) ** 2)
        om = x[:, 1] + 0.05 * (9.81 * torch.sin(x[:, 0]) - 0.1 * x[:, 1] + gain * u[:, 0])
        return torch.stack([x[:, 0] + 0.05 * om, om], 1)

    K = dlqr_gain(cn.plants.as_plant(f, dt=0.05, n_states=2, n_inputs=1))
    net = feedback_net(K, width=12)
    cert = closed_loop(f, net, dt=0.05, n_states=2, n_inputs=1, max_cells=40_000)
    assert cert.certified
    reach = np.sqrt(np.diag(np.linalg.inv(cert.array("P"))))  # half-widths of the ellipse
    assert 0.3 < reach[0] < 1.2  # a real region, on the near side of the singularity
    plant = cn.plants.as_plant(f, dt=0.05, n_states=2, n_inputs=1)
    loop = cn.verify.ClosedLoop(plant, net)
    _stays_and_converges(loop.step, cert, _inside_samples(cert, 1000), 800)


def _relu_net(K, width=6, seed=0, skew=0.3):
    """A bias-free ReLU net, π(x) = −K A⁺((1 + s) relu(Ax) − (1 − s) relu(−Ax)): every neuron
    switches at x = 0, and the gain differs on each side of each switching line."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(width, K.shape[1]))
    G = -K @ np.linalg.pinv(A)
    net = torch.nn.Sequential(torch.nn.Linear(2, 2 * width, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(2 * width, 1, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.as_tensor(np.vstack([A, -A])))
        net[2].weight.copy_(torch.as_tensor(np.hstack([(1 + skew) * G, -(1 - skew) * G])))
    return net


def test_a_relu_network_switching_at_the_equilibrium_is_certified_by_homogeneity():
    net = _relu_net(dlqr_gain(PEND, np.diag([1.0, 0.1]), np.array([[1.0]])))
    cert = closed_loop(SAT, net, max_cells=40_000)
    assert cert.certified and cert.data["equilibrium_proof"] == "homogeneous"
    assert cert.data["core_kind"] == "homogeneous" and cert.data["roa_volume"] > 1.0
    assert cert.check(net, plant=SAT) <= cert.value
    loop = cn.verify.ClosedLoop(SAT, net)
    _stays_and_converges(loop.step, cert, _inside_samples(cert, 1000), 1500)
    for key, value in (("equilibrium_proof", "krawczyk"), ("core_kind", "jacobian"),
                       ("core_bound", 0.5)):
        d = cert.to_dict()
        d["data"][key] = value
        with pytest.raises(CertificateError):
            cn.verify.Certificate.from_dict(d).check(net, plant=SAT)
    biased = _relu_net(dlqr_gain(PEND, np.diag([1.0, 0.1]), np.array([[1.0]])))
    with torch.no_grad():
        biased[0].bias = torch.nn.Parameter(torch.zeros(12, dtype=torch.float64))
    d = cert.to_dict()  # the same weights with a (zero) bias are the same function
    assert cn.verify.Certificate.from_dict(d).check(biased, plant=SAT) <= cert.value


def test_a_kink_at_the_equilibrium_that_is_not_homogeneous_is_refused_by_name():
    net = _relu_net(dlqr_gain(PEND, np.diag([1.0, 0.1]), np.array([[1.0]])))
    with pytest.raises(EquilibriumError, match="homogeneity: the network.s input is not proved"):
        closed_loop(SAT, net, observation=lambda x: torch.sin(x), max_cells=40_000)


def test_parameter_ranges_and_an_uncertain_actuator_hold_for_every_plant_in_the_set(pend_net):
    cert = closed_loop(SAT, pend_net, parameters={"mass": (0.1425, 0.1575)},
                       input_gain=(0.95, 1.05), max_cells=40_000)
    assert cert.certified
    for mass in (0.1425, 0.1575):
        for gain in (0.95, 1.05):
            plant = cn.plants.InvertedPendulum(max_torque=0.7, mass=mass)
            loop = cn.verify.ClosedLoop(plant, pend_net)

            def step(x, loop=loop, plant=plant, gain=gain):
                return plant.update(x, gain * loop.control(x))

            _stays_and_converges(step, cert, _inside_samples(cert, 500, seed=1), 1500)
    assert cert.check(pend_net, plant=SAT) <= cert.value


def test_groupsort_networks_are_certified_too():
    """GroupSort (where the old sector method crashed): pairs sorted at every step. Biases keep
    the equilibrium off the kinks, where the max/min switch (a kink at the equilibrium itself
    would leave no isolated fixed point to prove)."""
    K = dlqr_gain(PEND, np.diag([1.0, 0.1]))
    base = feedback_net(K, width=16)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), cn.nn.GroupSort(2),
                              torch.nn.Linear(16, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(base[0].weight)
        net[0].bias.copy_(torch.linspace(-0.3, 0.3, 16, dtype=torch.float64))
        net[2].weight.copy_(base[2].weight)
        net[2].bias.zero_()
        net[2].bias.copy_(-net(torch.zeros(1, 2, dtype=torch.float64))[0])  # π(0) = 0
    cert = closed_loop(SAT, net, max_cells=20_000)
    assert cert.certified
    _stays_and_converges(cn.verify.ClosedLoop(SAT, net).step, cert, _inside_samples(cert, 500),
                         1500)


def test_l2_gain_is_above_every_ascended_disturbance(pend_net):
    e = 0.05
    cert = l2_gain(SAT, pend_net, energy=e, max_cells=40_000)
    assert cert.certified and cert.check(pend_net, plant=SAT) <= cert.value
    d = cert.to_dict()
    d["data"]["Bd"] = (0.5 * np.asarray(d["data"]["Bd"])).tolist()  # a weaker disturbance
    with pytest.raises(CertificateError, match="input matrix"):
        cn.verify.Certificate.from_dict(d).check(pend_net, plant=SAT)
    loop = cn.verify.ClosedLoop(SAT, pend_net)
    Bd = torch.as_tensor(cert.array("Bd"))
    x0 = torch.as_tensor(cert.array("x_eq"))
    g = torch.Generator().manual_seed(0)
    d = torch.randn(16, 150, Bd.shape[1], dtype=torch.float64, generator=g)
    d = (d * math.sqrt(e) / d.pow(2).sum((1, 2), keepdim=True).sqrt()).requires_grad_(True)
    opt = torch.optim.Adam([d], lr=0.01)
    best = 0.0
    for _ in range(60):
        x = x0.expand(16, -1)
        num = torch.zeros(16, dtype=torch.float64)
        for k in range(150):
            num = num + ((x - x0) ** 2).sum(1)
            x = loop.step(x) + d[:, k] @ Bd.T
        ratio = num / d.pow(2).sum((1, 2))
        best = max(best, float(ratio.detach().max()))
        opt.zero_grad()
        (-ratio.sum()).backward()
        opt.step()
        with torch.no_grad():
            d.mul_(torch.clamp(math.sqrt(e) / d.pow(2).sum((1, 2), keepdim=True).sqrt(), max=1))
    assert math.sqrt(best) <= cert.value


def test_small_gain_on_a_stable_linear_plant():
    sys = control.ss(np.diag([0.5, 0.3]), [[1.0], [0.5]], np.eye(2), 0, 0.1)
    net = feedback_net(np.array([[0.1, 0.05]]), width=8)
    cert = closed_loop(sys, net, method="small-gain")
    assert cert.certified and cert.value < 1
    assert cert.check(net, plant=sys) <= cert.value
    with pytest.raises(ValueError, match="needs a linear plant"):
        closed_loop(PEND, net, method="small-gain")


def test_bad_input_gets_errors_that_say_what_to_do(pend_net):
    with pytest.raises(EquilibriumError, match="not a closed-loop equilibrium"):
        closed_loop(PEND, pend_net, x_eq=[1.0, 0.0])
    with pytest.raises(ValueError, match="method must be one of"):
        closed_loop(PEND, pend_net, method="sector")
    with pytest.raises(ValueError, match="max_cells must be a positive integer"):
        closed_loop(PEND, pend_net, max_cells=0)
    with pytest.raises(ValueError, match="region must be 2 positive half-widths"):
        closed_loop(PEND, pend_net, region=[1.0, -1.0])
    with pytest.raises(ValueError, match="P must be symmetric positive definite"):
        closed_loop(PEND, pend_net, P=-np.eye(2))
    with pytest.raises(ValueError, match="network outputs 2 values but the plant has 1"):
        closed_loop(PEND, feedback_net(np.ones((2, 2))))
    with pytest.raises(ValueError, match="network reads 3 inputs"):
        closed_loop(PEND, feedback_net(np.ones((1, 3))))
    with pytest.raises(ValueError, match="no numeric parameter 'inertia'"):
        closed_loop(PEND, pend_net, parameters={"inertia": (1, 2)})
    with pytest.raises(ValueError, match="contain the plant's value"):
        closed_loop(PEND, pend_net, parameters={"mass": (0.2, 0.3)})
    with pytest.raises(ValueError, match="input_gain must be"):
        closed_loop(PEND, pend_net, input_gain=(1.1, 1.2))
    with pytest.raises(ValueError, match="energy must be a positive number"):
        l2_gain(PEND, pend_net, energy=-1.0)
    with pytest.raises(ValueError, match="disturbance must be a finite array of shape"):
        l2_gain(PEND, pend_net, disturbance=np.ones((3, 1)), energy=0.1)
    with pytest.raises(TypeError, match="cannot use a str as a plant"):
        closed_loop("pendulum", pend_net)


def test_code_certnet_cannot_bound_is_refused_by_name(pend_net):
    def f(x, u):
        return torch.stack([x[:, 0] + 0.05 * x[:, 1], torch.floor(x[:, 1]) + u[:, 0]], 1)

    with pytest.raises(TypeError, match="torch.floor"):
        closed_loop(f, pend_net, dt=0.05, n_states=2, n_inputs=1)

    def g(x, u):  # a singularity at the equilibrium
        return torch.stack([x[:, 0] + 0.05 * x[:, 1], 0.9 * x[:, 1] + x[:, 0] ** 2 / x[:, 0]
                            - x[:, 0] + u[:, 0]], 1)

    with pytest.raises(BoundError, match="contains 0"):
        closed_loop(g, pend_net, dt=0.05, n_states=2, n_inputs=1, x_eq=[0.0, 0.0])


def _vehicle_like():
    """Two masses on springs, pushed on the first (4 states), sampled at 50 ms, with a tanh
    network imitating its dLQR."""
    Ac = np.array([[0, 1, 0, 0], [-2, -0.1, 1, 0], [0, 0, 0, 1], [1, 0, -1, -0.1]], float)
    sys = control.c2d(control.ss(Ac, [[0.0], [1.0], [0.0], [0.0]], np.eye(4), 0), 0.05)
    K, _, _ = control.dlqr(sys.A, sys.B, np.eye(4), np.eye(1))
    return sys, feedback_net(K, width=12)


def test_four_state_loops_use_the_contraction_sdp_and_re_prove_it():
    sys, net = _vehicle_like()
    cert = closed_loop(sys, net, u_min=-2.0, u_max=2.0)
    assert cert.certified and cert.method == "contraction-sdp" and cert.value < 1
    plant = cn.plants.as_plant(sys, u_min=-2.0, u_max=2.0)
    assert cert.check(net, plant=plant) <= cert.value
    _stays_and_converges(cn.verify.ClosedLoop(plant, net).step, cert,
                         _inside_samples(cert, 1000), 800)
    d = cert.to_dict()
    d["data"]["lambda"] = (np.asarray(d["data"]["lambda"]) * 0).tolist()
    with pytest.raises(CertificateError):
        cn.verify.Certificate.from_dict(d).check(net, plant=plant)
    gain = l2_gain(sys, net, energy=0.05, u_min=-2.0, u_max=2.0)
    assert gain.certified and gain.method == "dissipation-sdp"
    assert gain.check(net, plant=plant) <= gain.value


def test_an_input_disturbance_on_a_continuous_plant_enters_through_its_exact_zoh_matrix():
    A, B = np.array([[0.0, 1.0], [-2.0, -0.5]]), np.array([[0.0], [1.0]])
    sys = control.nlsys(lambda t, x, u, p: A @ x + B @ u, None, states=2, inputs=1)
    net = feedback_net(np.array([[0.5, 0.5]]), width=8)
    gain = l2_gain(sys, net, dt=0.1, energy=0.01, max_cells=20_000)
    exact = control.c2d(control.ss(A, B, np.eye(2), 0), 0.1).B  # ∫₀ᵗ e^{Aτ} dτ B, not RK4's
    assert gain.certified and np.allclose(gain.array("Bd"), exact, rtol=1e-13, atol=1e-16)
    assert gain.check(net, plant=cn.plants.as_plant(sys, dt=0.1)) <= gain.value
    pend = control.nlsys(lambda t, x, u, p: np.array([x[1], 9.81 * np.sin(x[0]) + u[0]]), None,
                         states=2, inputs=1)  # its flow is not affine in u: refused, with why
    with pytest.raises(ValueError, match="not affine in its input"):
        l2_gain(pend, net, dt=0.1, energy=0.01)


def test_output_feedback_on_a_state_space_reads_y_equal_c_x():
    A, B = np.array([[1.0, 0.1], [0.0, 0.95]]), np.array([[0.0], [0.1]])
    sys = control.ss(A, B, [[1.0, 0.0]], 0, 0.1)  # the network sees the position only
    net = torch.nn.Sequential(torch.nn.Linear(1, 8, bias=False), torch.nn.Tanh(),
                              torch.nn.Linear(8, 1, bias=False)).double()
    with torch.no_grad():
        w = torch.linspace(-1.0, 1.0, 8, dtype=torch.float64)
        net[0].weight.copy_(w[:, None])
        net[2].weight.copy_(-2.0 * w[None] / (w @ w))  # u ≈ −2 y near 0
    cert = closed_loop(sys, net, u_min=-1.0, u_max=1.0, max_cells=40_000)
    assert cert.certified and cert.data["loop"]["observation"] == "auto"
    plant = cn.plants.as_plant(sys, u_min=-1.0, u_max=1.0)
    assert cert.check(net, plant=plant) <= cert.value
    loop = cn.verify.ClosedLoop(plant, net)
    assert loop.observation_kind == "output"
    _stays_and_converges(loop.step, cert, _inside_samples(cert, 1000), 3000)
    with pytest.raises(ValueError, match="algebraic loop"):
        closed_loop(control.ss(A, B, [[1.0, 0.0]], [[0.5]], 0.1), net)


def _float32_net(K):
    """A float32 tanh network with biases whose π(0) is 0 only up to float32 round-off
    (≈ 4e-9 here): the loop's true fixed point is off the plant's x_eq = 0."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    W1 = torch.randn(8, 2) * 0.5
    with torch.no_grad():
        net[0].weight.copy_(W1)
        net[0].bias.copy_(torch.linspace(-0.5, 0.5, 8))
        slope = (1 - torch.tanh(net[0].bias) ** 2)[:, None] * W1  # ∂h/∂x at 0
        net[2].weight.copy_(torch.as_tensor(-K @ np.linalg.pinv(slope.double().numpy()),
                                            dtype=torch.float32))
        net[2].bias.copy_(-(net[2].weight @ torch.tanh(net[0].bias)))
    return net


def test_a_float32_network_is_certified_about_the_true_fixed_point_of_a_slow_loop():
    """Issue 13.1: a residual π(x*) ≠ 0 of round-off size moves the fixed point of a slow loop
    (eigenvalues 0.977) by residual/(1 − λ); the certificate proves the box holding the true
    fixed point and is about it; moved back to x* = 0, it is refused."""
    A, B = np.array([[1.0, 0.1], [0.0, 0.99]]), np.array([[0.0], [0.1]])
    plant = cn.plants.as_plant(control.ss(A, B, np.eye(2), 0, 0.1), u_min=-1.0, u_max=1.0)
    K, _, _ = control.dlqr(A, B, np.eye(2), 100 * np.eye(1))
    net = _float32_net(K)
    loop = cn.verify.ClosedLoop(plant, net)
    assert 1e-9 < abs(float(loop.control(torch.zeros(1, 2, dtype=torch.float64)))) < 1e-8
    cert = closed_loop(plant, net, max_cells=40_000)
    assert cert.certified and cert.check(net, plant=plant) <= cert.value
    x = torch.zeros(1, 2, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(5000):
            x = loop.step(x)
    x_bar = x[0].numpy()  # the fixed point, by running the loop
    lo, hi = (np.asarray(v) for v in cert.data["equilibrium_box"])
    assert np.all(lo <= x_bar) and np.all(x_bar <= hi)
    assert not np.all(lo <= 0.0)  # the true fixed point is not the nominal x* = 0 …
    assert abs(x_bar[0]) > 1e-8  # … but residual / (1 − λ) away from it
    d = cert.to_dict()
    d["data"]["x_eq"] = [0.0, 0.0]
    d["data"]["equilibrium_box"] = [[-1e-12, -1e-12], [1e-12, 1e-12]]
    with pytest.raises(CertificateError, match="does not prove a fixed point"):
        cn.verify.Certificate.from_dict(d).check(net, plant=plant)


def test_small_gain_counts_the_output_map_the_network_reads():
    """The small-gain channel is x ↦ y = C x ↦ π: ‖C(zI − A)⁻¹B‖∞, not ‖(zI − A)⁻¹B‖∞ (which
    the test once used whatever the network read, under-stating the loop gain 3×)."""
    from certnet.verify.loop_small_gain import hinf_bisect

    A, B, C = np.diag([0.5, 0.3]), np.array([[1.0], [0.5]]), np.array([[3.0, 0.0]])
    sys = control.ss(A, B, C, 0, 0.1)
    net = torch.nn.Sequential(torch.nn.Linear(1, 4, bias=False), torch.nn.Tanh(),
                              torch.nn.Linear(4, 1, bias=False)).double()
    with torch.no_grad():
        net[0].weight.fill_(0.2)
        net[2].weight.fill_(-0.05)
    cert = closed_loop(sys, net, method="small-gain")
    lip = cn.verify.lipschitz(net, method="auto").value
    assert cert.data["hinf"] >= hinf_bisect(A, B, C) > 2.5 * hinf_bisect(A, B, np.eye(2))
    assert cert.value >= hinf_bisect(A, B, C) * lip and cert.certified
    assert cert.check(net, plant=sys) <= cert.value
    other = control.ss(A, B, [[2.0, 0.0]], 0, 0.1)  # another output map
    with pytest.raises(CertificateError, match="its C differs"):
        cert.check(net, plant=other)
    with pytest.raises(ValueError, match="needs a network reading the state or a linear output"):
        closed_loop(control.ss(A, B, np.eye(2), 0, 0.1), feedback_net(np.array([[0.1, 0.05]])),
                    method="small-gain", observation=lambda x: 2 * x)
