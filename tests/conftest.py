"""Shared test setup: every test runs in float64 (exact checks) on one CPU thread (tiny tensors,
where a second thread only adds contention), and both settings are restored afterwards."""
import pytest
import torch


@pytest.fixture(autouse=True)
def float64_single_thread():
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)
