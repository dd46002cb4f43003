"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``cuda`` when no CUDA device is available."""
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip_cuda)


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread():
    """Run the suite on one torch thread.

    The tensors and models in the tests are small. On a loaded 2-core
    machine a second thread makes every parallel operation wait for it,
    which slows training steps several times over.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _restore_rng_state():
    """Save the global Python, numpy and torch RNG states and restore them after each test.

    A test that seeds or draws from a global generator then cannot change
    what the next test draws.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    yield
    random.setstate(python_state)
    np.random.set_state(numpy_state)
    torch.random.set_rng_state(torch_state)
    if cuda_states is not None:
        torch.cuda.set_rng_state_all(cuda_states)
