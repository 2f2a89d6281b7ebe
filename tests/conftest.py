"""Fixtures several test files share."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests: models this small gain nothing from intra-op threads, and on a busy
    machine the threads' synchronisation makes token-by-token sampling several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
