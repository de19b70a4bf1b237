import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny convolutions and sparse products are much faster single-threaded."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


import toy_deblur  # noqa: E402,F401  (a modality from public extension points; see its docstring)
