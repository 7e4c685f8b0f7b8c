"""distml.set_num_threads / get_num_threads against torch's, the thread pools they reach, and forked children."""
import ctypes
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import distml
from distml import threads
from distml._backend import C

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def restore_threads():
    omp, blas, torch_threads = distml.get_num_threads(), threads._blas_threads, torch.get_num_threads()
    blas_pools = max(p["num_threads"] for p in pools("blas"))
    yield
    C.set_num_threads(omp)
    threads._blas_threads = blas
    threadpool_limits(limits=blas_pools, user_api="blas")
    torch.set_num_threads(torch_threads)


def pools(api):
    return [p for p in threadpool_info() if p["user_api"] == api]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_set_then_get_as_torch(n):
    distml.set_num_threads(n)
    torch.set_num_threads(n)
    assert distml.get_num_threads() == torch.get_num_threads() == n


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_errors_as_torch(bad):
    with pytest.raises(RuntimeError) as expected:
        torch.set_num_threads(bad)
    with pytest.raises(RuntimeError) as got:
        distml.set_num_threads(bad)
    assert str(got.value).split(",")[0] == str(expected.value).split(",")[0]
    if isinstance(bad, int) and not isinstance(bad, bool):
        assert str(bad) in str(got.value)


def test_errors_leave_threads_unchanged():
    distml.set_num_threads(1)
    with pytest.raises(RuntimeError):
        distml.set_num_threads(0)
    assert distml.get_num_threads() == 1
    assert all(p["num_threads"] == 1 for p in pools("blas"))


@pytest.mark.parametrize("n", [1, 2])
def test_limits_every_blas_pool_and_openmp(n):
    """In a fresh process (where the only libgomp is the one _C loaded: the suite's other imports, such
    as scikit-learn's, bring pools of their own that distml does not drive)."""
    code = ("import json, distml, threadpoolctl\n"
            f"distml.set_num_threads({n})\n"
            "print(json.dumps([threadpoolctl.threadpool_info(), distml.get_num_threads()]))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    info, omp_threads = json.loads(done.stdout)
    blas = [p for p in info if p["user_api"] == "blas"]
    paths = " ".join(p["filepath"] for p in blas)
    assert "numpy" in paths and "scipy" in paths  # NumPy's OpenBLAS and scipy's (the recurrent kernels')
    # OpenBLAS never runs more threads than the cores it found when it loaded
    assert all(p["num_threads"] == min(n, os.cpu_count()) for p in blas), blas
    gomp = [p for p in info if p["user_api"] == "openmp" and p["prefix"] == "libgomp"]
    assert gomp and all(p["num_threads"] == n for p in gomp), gomp
    assert omp_threads == n


def test_defaults_in_a_fresh_process():
    """Fresh import: OpenMP kernels on every core, idle threads spinning 30,000 rounds; the BLAS pools (scipy's
    too, once the recurrent kernels load it) at NumPy's OpenBLAS default."""
    code = ("import os, numpy, threadpoolctl\n"
            "blas = lambda: [p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas']\n"
            "before = blas()\n"
            "import distml\n"
            "from distml._backend import blas_core\n"
            "blas_core()\n"
            "print(os.environ['GOMP_SPINCOUNT'], distml.get_num_threads(), len(os.sched_getaffinity(0)),\n"
            "      blas() == before * 2)\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "OMPI_COMM_WORLD_LOCAL_SIZE")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.split(maxsplit=3)
    assert out[0] == "30000"
    assert int(out[1]) == int(out[2])
    assert out[3].strip() == "True"


def test_several_ranks_on_a_host_sleep_at_once():
    """Under mpiexec with two ranks on the host, idle OpenMP threads sleep at once (passive)."""
    code = "import os, distml; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["OMPI_COMM_WORLD_LOCAL_SIZE"] = "2"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["PASSIVE", "None"]


@pytest.mark.parametrize("name,value", [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "500")])
def test_wait_policy_set_by_user_is_kept(name, value):
    """A wait policy or spin count the user set is what GNU OpenMP reads; a policy without the spin count."""
    code = "import os, distml; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env[name] = value
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    expected = {"OMP_WAIT_POLICY": ("ACTIVE", "None"), "GOMP_SPINCOUNT": ("None", "500")}[name]
    assert tuple(out.stdout.split()) == expected


def test_forked_child_runs_openmp_kernels_on_one_thread():
    distml.set_num_threads(2)
    x = distml.randn(1 << 18)
    distml.relu(x)  # the parent runs a thread team: a child forked after it must not join one
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            y = distml.relu(x)  # above the kernels' parallel threshold
            ok = np.array_equal(y.numpy(), np.maximum(x.numpy(), 0))
            os.write(write, f"{distml.get_num_threads()} {ok}".encode())
        finally:
            os._exit(0)
    os.close(write)
    _wait(pid, "the forked child hung in an OpenMP kernel")
    assert os.read(read, 100).decode() == "1 True"
    os.close(read)
    assert distml.get_num_threads() == 2  # the parent keeps its count


def _callbacks():
    """Each OpenBLAS pool's threads callback (openblas_threads_callback_, a variable every build exports)."""
    return {p["filepath"]: ctypes.c_void_p.in_dll(ctypes.CDLL(p["filepath"]), "openblas_threads_callback_").value
            for p in pools("blas") if p["internal_api"] == "openblas"}


def test_openblas_runs_its_jobs_on_the_openmp_threads():
    """NumPy's OpenBLAS from import on, scipy's once the recurrent kernels load it."""
    from distml._backend import blas_core
    blas_core()
    callbacks = _callbacks()
    assert any("numpy" in path for path in callbacks) and any("scipy" in path for path in callbacks)
    assert set(callbacks.values()) == {C.blas_threads_callback()}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_threaded_products_through_the_callback(rng, n):
    """Products large enough for OpenBLAS to split, on n threads (3: more than the cores here)."""
    distml.set_num_threads(n)
    a, b = rng.standard_normal((300, 700)), rng.standard_normal((700, 500))
    expected = np.einsum("ik,kj->ij", a, b)
    np.testing.assert_allclose(a @ b, expected, rtol=1e-10)
    np.testing.assert_allclose(a.astype(np.float32) @ b.astype(np.float32), expected, rtol=1e-3, atol=1e-3)


def test_forked_child_runs_threaded_products():
    """A child forked after the parent ran OpenBLAS jobs on an OpenMP team runs them on plain threads."""
    distml.set_num_threads(2)
    a = np.random.default_rng(0).standard_normal((400, 400))
    expected = a @ a  # the parent's OpenMP team runs OpenBLAS's jobs
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, str(np.allclose(a @ a, expected, rtol=1e-12)).encode())
        finally:
            os._exit(0)
    os.close(write)
    _wait(pid, "the forked child hung in a threaded product")
    assert os.read(read, 100).decode() == "True"
    os.close(read)


def _wait(pid, hung, seconds=60):
    """Wait for a forked child; kill it and fail with `hung` after `seconds`."""
    deadline = time.monotonic() + seconds
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail(hung)
        time.sleep(0.01)
