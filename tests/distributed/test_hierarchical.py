"""The hierarchical allreduce on real test hosts (network namespaces, as in test_hosts.py): 2 hosts x
2 ranks, with the hosts' shared-memory arenas and without them (DISTML_SHM=0: the local ring).

Each job runs CHECKS on every rank: every rank's input is made from a seed, so each rank computes
the expected result with numpy itself; results must also be the same bit for bit on every rank.
tests/mpi/test_collectives.py, which test_hosts.py runs across these hosts too, adds `hier` to its
forced algorithms and checks that one host (mpiexec -n 2/3/4) never uses it.
"""
import os
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_hosts import hosts  # noqa: E402,F401 (the module's fixture: hosts h1..h3)

CHECKS = textwrap.dedent("""
    import socket
    import numpy as np
    from mpi4py import MPI
    import distml, distml.distributed as dist
    from distml.distributed import flight_recorder, process_group

    dist.init_process_group("mpi", timeout=30)
    rank, n = dist.get_rank(), dist.get_world_size()
    pg = process_group._world()._pg
    OPS = {dist.ReduceOp.SUM: np.sum, dist.ReduceOp.PRODUCT: np.prod, dist.ReduceOp.MAX: np.max,
           dist.ReduceOp.MIN: np.min}
    DTYPES = [np.float16, np.float32, np.float64, np.int8, np.uint8, np.int32, np.int64]

    names = MPI.COMM_WORLD.allgather(socket.gethostname())
    assert names == ["h1", "h1", "h2", "h2"], names
    assert (dist.get_local_rank(), dist.get_local_world_size()) == (rank % 2, 2)
    assert pg.hierarchical and not pg.shared_memory


    def force(name, **sizes):
        tuning = pg.tuning
        tuning.algo = process_group._ALGOS[name]
        for key, value in sizes.items():
            setattr(tuning, key, value)
        pg.tuning = tuning


    def data(r, count, dtype, op):
        rng = np.random.default_rng([count, r])
        kind = np.dtype(dtype).kind
        if op == dist.ReduceOp.PRODUCT:
            return (rng.uniform(0.9, 1.1, count) if kind == "f" else rng.integers(1, 3, count)).astype(dtype)
        if kind == "f":
            return rng.standard_normal(count).astype(dtype)
        return rng.integers(0 if kind == "u" else -30, 30, count).astype(dtype)


    def allreduce(count, dtype, op=dist.ReduceOp.SUM, group=None):
        t = distml.from_numpy(data(rank, count, dtype, op))
        dist.all_reduce(t, op=op, group=group)
        return t.numpy()


    def check(got, count, dtype, op=dist.ReduceOp.SUM, against=None):
        expected = OPS[op](np.stack([data(r, count, dtype, op) for r in range(n)]), axis=0).astype(dtype)
        for reference in [expected] + ([against] if against is not None else []):
            if np.dtype(dtype).kind == "f":
                tol = {2: 2e-2, 4: 1e-5, 8: 1e-12}[np.dtype(dtype).itemsize]
                np.testing.assert_allclose(got.astype(np.float64), reference.astype(np.float64), rtol=tol, atol=tol)
            else:
                np.testing.assert_array_equal(got, reference)
        everyone = MPI.COMM_WORLD.allgather(got.tobytes())
        assert all(b == everyone[0] for b in everyone), (count, dtype, op, "results differ across ranks")


    # Every dtype, every op (the suites' algo=hier runs take every dtype with every op); 3: shards
    # below the recursive-doubling limit across hosts, 40_003: the ring across hosts for 4- and
    # 8-byte dtypes. Odd counts: shards of unequal length.
    force("hier")
    for dtype in DTYPES:
        for op in OPS if dtype in (np.float32, np.int32) else [dist.ReduceOp.SUM]:
            for count in (3, 40_003):
                check(allreduce(count, dtype, op), count, dtype, op)
    # Empty and tiny buffers (some ranks' shards are empty), and a large one, against the flat ring too.
    for count in (0, 1, 7, 300_007):
        for dtype in (np.float32, np.int64):
            force("ring")
            ring = allreduce(count, dtype)
            force("hier")
            check(allreduce(count, dtype), count, dtype, against=ring)
            assert flight_recorder.records()[-1]["algo"] == "hierarchical"
    # Many rounds through the arena's halves (4 KiB chunks), a short last one.
    force("hier", hierarchical_chunk_bytes=4096)
    for count in (1025, 100_003):
        check(allreduce(count, np.float64, dist.ReduceOp.MAX), count, np.float64, dist.ReduceOp.MAX)
    # auto: recursive doubling up to rd_max_bytes (32 KiB), hierarchical above.
    force("auto", hierarchical_chunk_bytes=1 << 20)
    for count, algo in ((8000, "recursive_doubling"), (8193, "hierarchical"), (1 << 20, "hierarchical")):
        check(allreduce(count, np.float32), count, np.float32)
        assert flight_recorder.records()[-1]["algo"] == algo, (count, flight_recorder.records()[-1])

    # A rank that calls something else makes every rank raise, and the group stays usable.
    def raises(fn, *expected):
        try:
            fn()
        except dist.DistBackendError as e:
            assert all(text in str(e) for text in expected), str(e)
        else:
            raise AssertionError(f"rank {rank}: no error")

    raises(lambda: allreduce(1001 if rank == 3 else 100_000, np.float32),
           "ranks disagree", "rank 0 called all_reduce(float32[100000], op=sum)",
           "rank 3 called all_reduce(float32[1001], op=sum)")
    raises(lambda: (dist.broadcast(distml.from_numpy(np.ones(100_000, np.float32)), src=0) if rank == 1
                    else allreduce(100_000, np.float32)), "rank 1 called broadcast(float32[100000], root=0)")
    check(allreduce(100_000, np.float32), 100_000, np.float32)

    # Forced on groups that cannot use it: one host, and 2 + 1 ranks on two hosts.
    force("hier")
    for members in ([0, 1], [0, 1, 2]):
        group = dist.new_group(members)
        if rank in members:
            assert not group._pg.hierarchical
            raises(lambda: allreduce(100_000, np.float32, group=group),
                   "hierarchical allreduce needs a group that spans several hosts")
        dist.destroy_process_group(group)
    # A sub-group that can, freed while the world goes on.
    group = dist.new_group([0, 1, 2, 3])
    assert group._pg.hierarchical
    check(allreduce(50_000, np.int32, group=group), 50_000, np.int32)
    dist.destroy_process_group(group)
    check(allreduce(50_001, np.float32), 50_001, np.float32)
    print("hierarchical ok", flush=True)
""")


@pytest.mark.parametrize("shm", ["1", "0"])
def test_hierarchical_allreduce_on_two_hosts_of_two_ranks(hosts, tmp_path, shm):
    program = tmp_path / "checks.py"
    program.write_text(CHECKS)
    rc, out, _ = hosts.mpiexec("h1:2,h2:2", sys.executable, str(program), timeout=180, env={"DISTML_SHM": shm})
    assert rc == 0, out[-6000:]
    assert out.count("hierarchical ok") == 4, out[-6000:]
