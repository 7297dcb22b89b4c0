"""The contraction LMI's vertex screen (certnet.verify.loop_sdp.vertex_radius) and its use."""

import control
import numpy as np
import torch

import certnet as cn
from certnet.verify import interval as iv
from certnet.verify import loop_sdp
from tests.verify.conftest import feedback_net


def _one_element(a: float, b: float):
    """Rows of x⁺ = a x + ν, ν = δ·(b x), |δ| ≤ 1: the realisations are x⁺ = (a + δb) x."""
    Xp = np.array([[a, 1.0]])
    Q = np.array([[b, 0.0]])
    Enu = np.array([[0.0, 1.0]])
    return Xp, Q, Enu


def test_the_screen_finds_the_worst_realisation_of_a_scalar_loop():
    for a, b in ((0.5, 0.3), (0.5, -0.6), (-0.2, 0.9), (0.9, 0.0)):
        Xp, Q, Enu = _one_element(a, b)
        assert loop_sdp.vertex_radius(Xp, Q, Enu, 1) == abs(a) + abs(b)


def test_a_chain_of_elements_is_read_through_its_earlier_outputs():
    # x⁺ = 0.5 x + ν₂, ν₁ = δ₁ x, ν₂ = δ₂ (0.6 ν₁): realisations 0.5 + 0.6 δ₁δ₂, worst 1.1
    Xp = np.array([[0.5, 0.0, 1.0]])
    Q = np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.0]])
    Enu = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.isclose(loop_sdp.vertex_radius(Xp, Q, Enu, 1), 1.1)


def _four_state_loop():
    Ac = np.array([[0, 1, 0, 0], [-2, -0.1, 1, 0], [0, 0, 0, 1], [1, 0, -1, -0.1]], float)
    sys = control.c2d(control.ss(Ac, [[0.0], [1.0], [0.0], [0.0]], np.eye(4), 0), 0.05)
    K, _, _ = control.dlqr(sys.A, sys.B, np.eye(4), np.eye(1))
    torch.manual_seed(0)
    plant = cn.plants.as_plant(sys, u_min=-2.0, u_max=2.0)
    return cn.verify.ClosedLoop(plant, feedback_net(K, width=12)), np.zeros(4)


def test_a_box_the_screen_rules_out_is_one_the_sdp_cannot_prove():
    loop, x0 = _four_state_loop()
    ruled_out = 0
    for s in (0.5, 1.0, 2.0, 4.0, 8.0):
        lo, hi = iv.down(x0 - s), iv.up(x0 + s)
        Xp, Ex, Q, Enu = loop_sdp._rows(loop, lo, hi)
        if loop_sdp.vertex_radius(Xp, Q, Enu, loop.n) >= 1:
            ruled_out += 1
            res = loop_sdp._solve(Xp, Ex, Q, Enu, np.full(4, s), "CVXOPT")
            assert "P" not in res or loop_sdp._rho(res["P"], res["lam"], Xp, Ex, Q, Enu) >= 1
    assert ruled_out >= 1  # the test exercised the screen


def test_the_search_skips_ruled_out_boxes_and_solves_where_the_screen_passes():
    loop, x0 = _four_state_loop()
    best, log = loop_sdp.search(loop, x0, np.full(4, 8.0))
    assert best is not None and best["rho"] < 1
    skipped = [e for e in log if e["status"].startswith("skipped")]
    assert skipped and all(e["vertex_radius"] >= 1 for e in skipped)
    # the solved box is no larger than the smallest box the screen ruled out
    assert best["scale"] < min(e["scale"] for e in skipped)
    assert loop_sdp.verify(loop, x0, best["lo"], best["hi"], best["P"], best["lam"]) < 1


def test_the_reach_ratio_is_the_energy_reachable_half_width_over_the_box():
    # x⁺ = (a + δb) x + d: reachable |x| under Σd² ≤ e is √(e / (1 − (a + δb)²)), worst δ = ±1
    a, b, e, half = 0.5, 0.3, 0.04, np.array([0.1])
    Xp = np.array([[a, 1.0, 1.0]])  # columns: x, ν, d
    Q = np.array([[b, 0.0, 0.0]])
    Enu = np.array([[0.0, 1.0, 0.0]])
    got = loop_sdp.reach_ratio(Xp, Q, Enu, np.array([[1.0]]), 1, half, e)
    assert np.isclose(got, np.sqrt(e / (1 - (a + b) ** 2)) / half[0])


def test_a_gain_box_the_reach_screen_rules_out_is_one_the_sdp_cannot_prove():
    loop, x0 = _four_state_loop()
    Bd, Cy, energy = np.array([[0.0], [0.05], [0.0], [0.0]]), np.eye(4)[:2], 0.05
    ruled_out = 0
    for s in (0.01, 0.02, 0.05, 0.1):
        half = np.full(4, s)
        rows = loop_sdp._gain_rows(loop, iv.down(x0 - half), iv.up(x0 + half), Bd, Cy)
        Xp, _, Q, Enu, _, _ = rows
        if loop_sdp.reach_ratio(Xp, Q, Enu, Bd, 4, half, energy) > 1:
            ruled_out += 1
            res = loop_sdp._solve_gain(*rows, half, energy, "CVXOPT")
            assert "P" not in res
    assert ruled_out >= 1  # the test exercised the screen
