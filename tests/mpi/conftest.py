"""The multi-rank suites (`mpiexec -n N python -m pytest --with-mpi tests/mpi/<file>`) join the world
once per process, with a collective timeout short enough that a broken test fails instead of
waiting the default 300 s."""
import pytest

import distml.distributed as dist


@pytest.fixture(scope="module", autouse=True)
def process_group():
    if not dist.is_initialized():
        dist.init_process_group("mpi", timeout=60)
    yield
