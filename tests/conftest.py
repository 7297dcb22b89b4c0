"""Suite-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread: the suite's tensors are small, and on a busy 2-core machine torch's
    thread pool spins against the other jobs (a 1000 × 16 tanh took 8 ms instead of 0.1 ms)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
