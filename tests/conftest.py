"""Fixtures shared by the whole test suite (keep this file small)."""

import numpy as np
import pytest

try:
    import torch
except ImportError:  # the packaging and import tests run without torch too
    torch = None

if torch is not None:
    # The CI machine has 2 cores; more threads only contend.
    torch.set_num_threads(2)


@pytest.fixture
def rng():
    """A seeded NumPy generator, fresh for every test."""
    return np.random.default_rng(0)


@pytest.fixture
def one_thread():
    """Tiny convolutions run faster on one thread (and leave the other core to the rest)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
