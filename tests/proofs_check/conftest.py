"""Shared set-up of the proofs_check tests: float64 torch, one intra-op thread (tiny networks)."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _torch_float64_single_thread():
    import torch

    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)
