import doctest

import pytest

from certnet.optim import mm, normalization, registry, stochastic


@pytest.mark.parametrize("module", [mm, registry, stochastic, normalization])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
