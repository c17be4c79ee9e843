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
