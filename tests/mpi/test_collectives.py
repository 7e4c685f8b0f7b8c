"""Every collective against a NumPy reference of the same data, under 2, 3 and 4 ranks:

    OMPI_MCA_mpi_yield_when_idle=1 mpiexec -n 3 python -m pytest --with-mpi tests/mpi/test_collectives.py

The per-rank inputs are gathered with mpi4py (on the user's communicator, not distml's) so each
rank computes the expected result itself. tests/distributed/test_collectives_mpi_run.py launches
this file; without --with-mpi every test here is skipped.
"""
import contextlib
import socket
import time

import numpy as np
import pytest

import distml
import distml.distributed as dist
from distml.distributed import flight_recorder
from distml.distributed import process_group as pg_module

pytestmark = pytest.mark.mpi

# Sizes around the edges: empty, one element, fewer elements than ranks, not divisible by the
# rank count, above the recursive-doubling limit (ring), and large enough for several chunks.
SIZES = [0, 1, 3, 7, 1001, 40_003, 300_007]
DTYPES = [np.float16, np.float32, np.float64, np.int8, np.uint8, np.int32, np.int64]
OPS = {dist.ReduceOp.SUM: np.sum, dist.ReduceOp.PRODUCT: np.prod, dist.ReduceOp.MAX: np.max,
       dist.ReduceOp.MIN: np.min}



@pytest.fixture(params=["auto", "ring", "rd", "shm", "hier"])
def algo(request):
    """Force one allreduce algorithm on the world group for the test."""
    pg = pg_module._world()._pg
    if request.param == "shm" and not pg.shared_memory:
        pytest.skip("no shared-memory arena (DISTML_SHM=0, or ranks on several hosts)")
    if request.param == "hier" and not pg.hierarchical:
        pytest.skip("not hierarchical (ranks on one host, or not the same number, at least 2, on each host)")
    with tuned(pg, algo=pg_module._ALGOS[request.param]):
        yield request.param


@contextlib.contextmanager
def tuned(pg, **fields):
    """The group's Tuning with `fields` changed, restored afterwards: `with tuned(pg, algo=...):`."""
    saved = pg.tuning
    tuning = pg.tuning
    for name, value in fields.items():
        setattr(tuning, name, value)
    pg.tuning = tuning
    try:
        yield
    finally:
        pg.tuning = saved


def comm():
    from mpi4py import MPI
    return MPI.COMM_WORLD


def rank_data(shape, dtype, seed=0, op=None):
    """This rank's input: small values for PRODUCT (no overflow), random ones otherwise."""
    rng = np.random.default_rng(1000 * seed + dist.get_rank())
    if op == dist.ReduceOp.PRODUCT:
        if np.dtype(dtype).kind == "f":
            return rng.uniform(0.9, 1.1, shape).astype(dtype)
        return rng.integers(1, 3, shape).astype(dtype)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), shape, endpoint=True).astype(dtype)


def everyone(array):
    """Every rank's array, stacked in rank order."""
    return np.stack(comm().allgather(array))


def assert_close(got, expected):
    if got.dtype.kind == "f":
        tol = {2: 2e-2, 4: 1e-5, 8: 1e-12}[got.dtype.itemsize]
        np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64), rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("count", SIZES)
def test_all_reduce_closed_form(count, algo):
    n = dist.get_world_size()
    t = distml.from_numpy(np.full(count, dist.get_rank() + 1, np.float64))
    dist.all_reduce(t)
    np.testing.assert_array_equal(t.numpy(), np.full(count, n * (n + 1) / 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(OPS))
def test_all_reduce_against_numpy(dtype, op, algo):
    for count in (1, 7, 1001, 40_003):
        mine = rank_data(count, dtype, seed=count, op=op)
        expected = OPS[op](everyone(mine), axis=0).astype(dtype)
        t = distml.from_numpy(mine.copy())
        dist.all_reduce(t, op=op)
        assert_close(t.numpy(), expected)


def test_all_reduce_avg_and_results_bitwise_equal_on_every_rank():
    mine = rank_data((33, 65), np.float32)
    t = distml.from_numpy(mine.copy())
    dist.all_reduce(t, op=dist.ReduceOp.AVG)
    assert_close(t.numpy(), everyone(mine).mean(axis=0, dtype=np.float64))
    results = everyone(t.numpy())
    assert (results == results[0]).all()
    with pytest.raises(TypeError, match="AVG needs a floating dtype"):
        dist.all_reduce(distml.from_numpy(np.ones(3, np.int32)), op=dist.ReduceOp.AVG)


def test_shared_memory_allreduce_in_many_small_chunks():
    """4 KiB chunks: many rounds through both halves, a short last chunk, empty segments."""
    pg = pg_module._world()._pg
    if not pg.shared_memory:
        pytest.skip("no shared-memory arena (DISTML_SHM=0, or ranks on several hosts)")
    with tuned(pg, algo=pg_module._ALGOS["shm"], shared_chunk_bytes=4096, shared_one_round_bytes=0):
        for count in (1, 3, 1000, 1025, 100_003):
            for dtype in (np.float16, np.float32, np.float64, np.int32):
                mine = rank_data(count, dtype, seed=count)
                t = distml.from_numpy(mine.copy())
                dist.all_reduce(t, op=dist.ReduceOp.MAX if dtype == np.float16 else dist.ReduceOp.SUM)
                expected = everyone(mine).max(axis=0) if dtype == np.float16 else everyone(mine).sum(axis=0)
                assert_close(t.numpy(), expected.astype(dtype))
                results = everyone(t.numpy())
                assert (results == results[0]).all()


def test_forcing_shared_memory_without_an_arena_raises():
    pg = pg_module._world()._pg
    if pg.shared_memory:
        pytest.skip("this run has an arena (the DISTML_SHM=0 run covers this)")
    with tuned(pg, algo=pg_module._ALGOS["shm"]):
        with pytest.raises(dist.DistBackendError, match="needs every rank of the group on one host"):
            dist.all_reduce(distml.from_numpy(np.ones(3, np.float32)))
    t = distml.from_numpy(np.ones(3, np.float32))
    dist.all_reduce(t)
    assert (t.numpy() == dist.get_world_size()).all()


def test_all_reduce_strided_view():
    base = np.zeros((6, 8), np.float32)
    base[:, ::2] = dist.get_rank() + 1
    view = distml.from_numpy(base)[:, ::2]
    dist.all_reduce(view)
    n = dist.get_world_size()
    assert (base[:, ::2] == n * (n + 1) / 2).all() and (base[:, 1::2] == 0).all()


@pytest.mark.parametrize("count", [0, 1, 7, 1001, 300_007])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_broadcast_from_every_root(count, dtype):
    for root in range(dist.get_world_size()):
        source = everyone(rank_data(count, np.int64, seed=root).astype(dtype))[root]
        t = distml.from_numpy(np.zeros(count, dtype) if dist.get_rank() != root else source.copy())
        dist.broadcast(t, src=root)
        np.testing.assert_array_equal(t.numpy(), source)


@pytest.mark.parametrize("count", [0, 1, 7, 40_003])
def test_all_gather_list_and_into_tensor(count):
    n = dist.get_world_size()
    mine = rank_data((count, 2), np.float32)
    expected = everyone(mine)
    outs = [distml.zeros((count, 2), dtype=distml.float32) for _ in range(n)]
    dist.all_gather(outs, distml.from_numpy(mine))
    for i in range(n):
        np.testing.assert_array_equal(outs[i].numpy(), expected[i])
    into = distml.zeros((n * count, 2), dtype=distml.float32)
    dist.all_gather_into_tensor(into, distml.from_numpy(mine))
    np.testing.assert_array_equal(into.numpy(), expected.reshape(n * count, 2))


@pytest.mark.parametrize("count", [0, 1, 5, 20_001])
@pytest.mark.parametrize("dtype", [np.float64, np.int32])
@pytest.mark.parametrize("op", [dist.ReduceOp.SUM, dist.ReduceOp.MAX])
def test_reduce_scatter_list_and_tensor(count, dtype, op):
    n, rank = dist.get_world_size(), dist.get_rank()
    mine = rank_data((n, count), dtype, seed=count)
    expected = OPS[op](everyone(mine), axis=0)[rank].astype(dtype)
    out = distml.zeros(count, dtype=distml.from_numpy(mine).dtype)
    dist.reduce_scatter(out, [distml.from_numpy(row) for row in mine], op=op)
    assert_close(out.numpy(), expected)
    out2 = distml.zeros(count, dtype=out.dtype)
    source = mine.copy()
    dist.reduce_scatter_tensor(out2, distml.from_numpy(source), op=op)
    assert_close(out2.numpy(), expected)
    np.testing.assert_array_equal(source, mine)  # the input is left unchanged
    in_place = mine.copy()  # the output is the input's own slice: reduced there, without a copy
    dist.reduce_scatter_tensor(distml.from_numpy(in_place[rank]), distml.from_numpy(in_place), op=op)
    assert_close(in_place[rank], expected)


@pytest.mark.parametrize("count", [1, 9, 40_001])
def test_all_reduce_bfloat16_sums_in_float32_rounding_each_step(count):
    """bfloat16 SUM as PyTorch's ring: float32 additions, each rounded to nearest even."""
    import ml_dtypes
    n, rank = dist.get_world_size(), dist.get_rank()
    mine = (rank_data((count,), np.float32, seed=count) * 10).astype(ml_dtypes.bfloat16)
    t = distml.from_numpy(mine.copy())
    dist.all_reduce(t)
    got = t.numpy()
    assert got.dtype == ml_dtypes.bfloat16
    rows = [row.astype(np.float64) for row in everyone(mine)]
    bound = 2.0 ** -8 * n * np.sum(np.abs(rows), axis=0)
    assert np.all(np.abs(got.astype(np.float64) - np.sum(rows, axis=0)) <= bound)
    gathered = everyone(got)
    assert all((g.view(np.uint16) == got.view(np.uint16)).all() for g in gathered)  # the same on every rank


@pytest.mark.parametrize("count", [1, 7, 40_003])
def test_reduce_to_every_root(count):
    mine = rank_data(count, np.float64, seed=count)
    expected = everyone(mine).sum(axis=0)
    for root in range(dist.get_world_size()):
        t = distml.from_numpy(mine.copy())
        dist.reduce(t, dst=root)
        assert_close(t.numpy(), expected if dist.get_rank() == root else mine)


@pytest.mark.parametrize("count", [0, 1, 7, 1001])
def test_gather_and_scatter(count):
    n, rank = dist.get_world_size(), dist.get_rank()
    for root in range(n):
        mine = rank_data(count, np.int32, seed=root)
        gathered = [distml.zeros(count, dtype=distml.int32) for _ in range(n)] if rank == root else None
        dist.gather(distml.from_numpy(mine), gathered, dst=root)
        if rank == root:
            np.testing.assert_array_equal(np.stack([g.numpy() for g in gathered]), everyone(mine))
        else:
            everyone(mine)
        pieces = [distml.from_numpy(np.full(count, 10 * root + i, np.int32)) for i in range(n)]
        out = distml.zeros(count, dtype=distml.int32)
        dist.scatter(out, pieces if rank == root else None, src=root)
        np.testing.assert_array_equal(out.numpy(), np.full(count, 10 * root + rank))


def test_send_recv_ring():
    n, rank = dist.get_world_size(), dist.get_rank()
    right, left = (rank + 1) % n, (rank - 1) % n
    out = distml.from_numpy(np.full(1000, rank, np.float32))
    got = distml.zeros(1000, dtype=distml.float32)
    work = dist.isend(out, right, tag=3)
    assert dist.recv(got, src=left, tag=3) == left
    work.wait()
    assert (got.numpy() == left).all()
    if rank == 0:  # from any rank: each sender once
        assert sorted(dist.recv(got) for _ in range(1, n)) == list(range(1, n))
    else:
        dist.send(distml.from_numpy(np.full(1000, rank, np.float32)), 0)
    dist.barrier()


def test_object_collectives():
    n, rank = dist.get_world_size(), dist.get_rank()
    objects = [None] * n
    dist.all_gather_object(objects, {"rank": rank, "payload": "x" * rank})
    assert objects == [{"rank": i, "payload": "x" * i} for i in range(n)]
    items = ["root", 42, {"a": 1}] if rank == n - 1 else [None, None, None]
    dist.broadcast_object_list(items, src=n - 1)
    assert items == ["root", 42, {"a": 1}]


def test_async_work_progresses_while_python_computes():
    n = dist.get_world_size()
    big = distml.from_numpy(np.full(2_000_003, dist.get_rank() + 1, np.float32))
    small = distml.from_numpy(np.ones(5, np.float64))
    works = [dist.all_reduce(big, async_op=True), dist.all_reduce(small, async_op=True)]
    deadline = time.monotonic() + 30
    busy = 0
    while not all(w.is_completed() for w in works) and time.monotonic() < deadline:
        busy += int(sum(i * i for i in range(2000)) > 0)  # Python work, holding the GIL
    assert all(w.is_completed() for w in works), "async collectives did not progress on the comm thread"
    for w in works:
        w.wait()
    assert (big.numpy() == n * (n + 1) / 2).all() and (small.numpy() == n).all()
    assert busy > 0


def test_new_group():
    n, rank = dist.get_world_size(), dist.get_rank()
    members = list(range(0, n, 2))
    group = dist.new_group(members)
    t = distml.from_numpy(np.full(9, rank + 1, np.int64))
    dist.all_reduce(t, group=group)
    if rank in members:
        assert dist.get_rank(group) == members.index(rank)
        assert dist.get_world_size(group) == len(members)
        assert (t.numpy() == sum(m + 1 for m in members)).all()
        b = distml.from_numpy(np.full(4, rank, np.int64))
        dist.broadcast(b, src=members[-1], group=group)
        assert (b.numpy() == members[-1]).all()
    else:
        assert group is dist.GroupMember.NON_GROUP_MEMBER
        assert dist.get_rank(group) == -1 and dist.get_world_size(group) == -1
        assert (t.numpy() == rank + 1).all()  # non-members: a no-op
    dist.destroy_process_group(group)
    dist.barrier()


def test_group_world_is_the_default_group():
    """torch.distributed.group.WORLD (and GroupMember.WORLD): the default group, taken as group=."""
    n, rank = dist.get_world_size(), dist.get_rank()
    world = dist.group.WORLD
    assert world is not None and dist.GroupMember.WORLD is world
    assert dist.get_rank(world) == rank and dist.get_world_size(world) == n
    assert dist.get_backend(world) == dist.get_backend()
    t = distml.from_numpy(np.full(7, rank + 1, np.float32))
    dist.all_reduce(t, group=world)
    assert (t.numpy() == n * (n + 1) / 2).all()
    work = dist.all_reduce(t, op=dist.ReduceOp.AVG, group=dist.GroupMember.WORLD, async_op=True)
    work.wait()
    assert (t.numpy() == n * (n + 1) / 2).all()
    b = distml.from_numpy(np.full(3, rank, np.int64))
    dist.broadcast(b, src=n - 1, group=world)
    assert (b.numpy() == n - 1).all()
    out = distml.zeros(n)
    dist.all_gather_into_tensor(out, distml.full((1,), float(rank)), group=world)
    assert (out.numpy() == np.arange(n)).all()
    objects = [None] * n
    dist.all_gather_object(objects, rank, group=world)
    assert objects == list(range(n))
    dist.barrier(group=world)
    sub = dist.new_group([0])
    assert dist.get_rank(sub) == (0 if rank == 0 else -1)
    dist.destroy_process_group(sub)


def test_mismatch_raises_on_every_rank_and_the_group_stays_usable():
    n, rank = dist.get_world_size(), dist.get_rank()
    bad_count = distml.from_numpy(np.ones(5 if rank == 0 else 6, np.float32))
    with pytest.raises(dist.DistBackendError, match=r"rank 0 called all_reduce\(float32\[5\], op=sum\)"):
        dist.all_reduce(bad_count)
    big = np.ones(100_000, np.float32 if rank else np.float64)  # ring path, dtype differs
    with pytest.raises(dist.DistBackendError, match=r"rank 0 called all_reduce\(float64\[100000\]"):
        dist.all_reduce(distml.from_numpy(big))
    if rank == n - 1:
        with pytest.raises(dist.DistBackendError, match="called barrier"):
            dist.broadcast(distml.from_numpy(np.ones(3, np.float32)), src=0)
    else:
        with pytest.raises(dist.DistBackendError, match=f"rank {n - 1} called broadcast"):
            dist.barrier()
    t = distml.from_numpy(np.ones(4, np.float32))
    dist.all_reduce(t)
    assert (t.numpy() == n).all()


def ranks_per_host():
    """{host name: its ranks' count}, in the order of their first ranks."""
    names = comm().allgather(socket.gethostname())
    return {name: names.count(name) for name in names}


def local_world_size():
    return ranks_per_host()[socket.gethostname()]


def test_local_rank_and_world():
    assert dist.get_local_world_size() == local_world_size()
    assert 0 <= dist.get_local_rank() < dist.get_local_world_size()
    assert dist.get_world_size() == comm().Get_size() and dist.get_rank() == comm().Get_rank()


def test_hierarchical_only_across_hosts_with_as_many_ranks_on_each():
    pg = pg_module._world()._pg
    per_host = list(ranks_per_host().values())
    assert pg.hierarchical == (len(per_host) >= 2 and min(per_host) >= 2 and len(set(per_host)) == 1)
    dist.all_reduce(distml.from_numpy(np.ones(100_000, np.float32)))  # above the recursive-doubling limit
    expected = "shared_memory" if pg.shared_memory else "hierarchical" if pg.hierarchical else "ring"
    assert flight_recorder.records()[-1]["algo"] == expected


def test_forcing_hierarchical_on_a_group_that_cannot_use_it_raises():
    pg = pg_module._world()._pg
    if pg.hierarchical:
        pytest.skip("this world can use it (tests/distributed/test_hierarchical.py covers the error on sub-groups)")
    with tuned(pg, algo=pg_module._ALGOS["hier"]):
        with pytest.raises(dist.DistBackendError, match="hierarchical allreduce needs a group that spans several "
                                                        r"hosts with the same number \(at least 2\) of ranks on each"):
            dist.all_reduce(distml.from_numpy(np.ones(100_000, np.float32)))
    t = distml.from_numpy(np.ones(3, np.float32))
    dist.all_reduce(t)
    assert (t.numpy() == dist.get_world_size()).all()
