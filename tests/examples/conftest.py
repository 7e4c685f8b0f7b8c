import pytest

import distml


@pytest.fixture(autouse=True)
def one_thread():
    """One thread per kernel: the runs are small, and the test machine is shared."""
    before = distml.get_num_threads()
    distml.set_num_threads(1)
    yield
    distml.set_num_threads(before)
