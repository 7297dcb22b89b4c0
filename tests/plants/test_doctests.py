"""The examples in the plants, experts and export docstrings run."""

import doctest
import importlib

import pytest

MODULES = [
    "certnet.plants",
    "certnet.plants.pendulum",
    "certnet.plants.linearize",
    "certnet.experts.lqr",
    "certnet.experts.swingup",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0
