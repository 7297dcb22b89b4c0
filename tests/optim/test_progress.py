"""The status a fit reports: improving, converged, or stalled with the reason."""

import pytest
import torch

from certnet.optim.progress import CONVERGED, IMPROVING, STALLED, STATUSES, judge

F32 = torch.float32


def _judge(initial, final, steps, **kw):
    args = {"objective": 0.5, "dtype": F32, "lr": None, "budget": None} | kw
    return judge(initial, final, steps, **args)


def test_statuses_are_named():
    assert STATUSES == (IMPROVING, CONVERGED, STALLED) == ("improving", "converged", "stalled")


def test_a_falling_loss_is_improving():
    steps = [{"eta": 0.1, "resolved": True}] * 20
    v = _judge(2.0, 1.0, steps)
    assert v.status == IMPROVING and "fell by 0.5" in v.reason


def test_a_loss_that_stopped_changing_is_converged():
    steps = [{"eta": 0.1, "resolved": True}] * 40 + [{"eta": 0.0, "resolved": False}] * 10
    v = _judge(2.0, 1.0, steps)
    assert v.status == CONVERGED and "last 5 steps" in v.reason and "float32" in v.reason
    assert _judge(2.0, 1.0, [{"eta": 0.1}] * 50).status == IMPROVING  # no resolution records


@pytest.mark.parametrize(
    ("steps", "kw", "match"),
    [
        ([{"eta": 0.0, "resolved": False}] * 5, {}, "every step was refused"),
        ([{"eta": 1e-9, "resolved": False}] * 5, {}, "less than the rounding of float32"),
        ([{"eta": 1e-9, "resolved": True}] * 5, {"objective": 1.2e-7}, "internal loss is 1.2e-07"),
        ([{"eta": 1e-12, "angles": []}] * 5, {"lr": 1e-12}, "lr=1e-12 may be too small"),
        ([{"eta": 0.1}] * 5, {"budget": 0.5}, "budget 0.5 may be too tight"),
        ([{"eta": 0.1}] * 5, {}, "took steps that did not reduce the loss"),
    ],
)
def test_no_progress_is_stalled_and_says_why(steps, kw, match):
    v = _judge(2.4268, 2.4268, steps, **kw)
    assert v.status == STALLED
    assert "from 2.4268 to 2.4268 in 5 steps" in v.reason
    assert match in v.reason
