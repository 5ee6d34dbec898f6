import numpy as np
import pytest
import torch


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and 2 threads collapse on a shared machine.
    Use it in a module with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


from hypothesis import settings  # noqa: E402

# Reproducible property tests: the same examples on every run and in CI.
settings.register_profile("normlab", derandomize=True, deadline=None, max_examples=40)
settings.load_profile("normlab")
