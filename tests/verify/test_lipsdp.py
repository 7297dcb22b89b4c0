import cvxpy as cp
import pytest

from certnet.errors import ProblemTooLargeError
from certnet.verify.lipsdp import estimate_memory, lipsdp
from tests.verify.conftest import make_stack, random_weights


def _stack(seed=0):
    return make_stack(random_weights([3, 8, 8, 1], seed=seed), ["tanh", "relu"])


def test_cvxopt_and_scs_agree():
    stack = _stack()
    a = lipsdp(stack, "neuron", solver="CVXOPT")
    b = lipsdp(stack, "neuron", solver="SCS")
    assert a.solver["name"] == "CVXOPT" and b.solver["name"] == "SCS"
    assert b.value == pytest.approx(a.value, rel=1e-3)
    assert a.check(stack) <= a.value and b.check(stack) <= b.value


def test_solver_failure_falls_back_to_a_proved_weaker_bound(monkeypatch):
    stack = _stack(1)
    good = lipsdp(stack, "neuron")

    def boom(self, *a, **k):
        raise cp.error.SolverError("simulated failure")

    monkeypatch.setattr(cp.Problem, "solve", boom)
    bad = lipsdp(stack, "neuron")
    assert bad.certified and "weaker bound" in bad.data["fallback"]
    assert "solver_error" in bad.data["fallback"]
    assert bad.value >= good.value and bad.check(stack) <= bad.value


def test_inaccurate_status_is_not_trusted(monkeypatch):
    stack = _stack(2)

    def inaccurate(self, *a, **k):
        self._status = cp.OPTIMAL_INACCURATE

    monkeypatch.setattr(cp.Problem, "solve", inaccurate)
    monkeypatch.setattr(cp.Problem, "status", property(lambda self: self._status))
    cert = lipsdp(stack, "layer")
    assert "optimal_inaccurate" in cert.data["fallback"]


def test_refusals():
    stack = _stack()
    with pytest.raises(ValueError, match="form must be"):
        lipsdp(stack, "network")
    with pytest.raises(ValueError, match="Clarabel"):
        lipsdp(stack, "neuron", solver="clarabel")
    with pytest.raises(ProblemTooLargeError, match="GB"):
        lipsdp(stack, "neuron", max_memory=1e6)


def test_memory_estimate_grows_and_picks_scs_for_big_nets():
    small = estimate_memory([4, 100, 100, 100, 1], "neuron", "CVXOPT")
    big = estimate_memory([4, 512, 512, 512, 1], "neuron", "CVXOPT")
    assert small < 1e9 < 2e10 < big
    assert estimate_memory([4, 512, 512, 512, 1], "neuron", "SCS") < big
