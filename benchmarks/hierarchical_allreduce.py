"""distml's flat ring, distml's hierarchical allreduce and MPI_Allreduce (mpi4py) on 2 hosts x 2
ranks, alternating in one run, float32 sums of 64 KiB .. 64 MiB.

    python benchmarks/hierarchical_allreduce.py     # as root: 2 test hosts on this machine
    distmlrun -H node1:2,node2:2 python benchmarks/hierarchical_allreduce.py --worker   # a cluster
    mpiexec --host node1:2,node2:2 python benchmarks/hierarchical_allreduce.py --worker

Without --worker it makes two network-namespace hosts (tests/distributed/hosts.py: veths on a
bridge, TCP between hosts, shared memory within one) and runs the workers there under mpiexec.
Each size runs the three in turn, `repeats` times; a run's time is the slowest rank's (the ranks
start together after a barrier), and each column shows the median. busbw = 2 (n - 1) / n * bytes /
time, the bandwidth a flat ring would need on each link; the ratios are ring time / hierarchical
time and MPI time / hierarchical time (above 1: hierarchical is faster).
"""
import os
import statistics
import sys
import time

import numpy as np

SIZES = [64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]


def repeats(nbytes):
    return 20 if nbytes <= 1 << 20 else 10 if nbytes <= 4 << 20 else 5 if nbytes <= 16 << 20 else 3


def worker():
    import distml
    import distml.distributed as dist
    from distml.distributed import process_group
    from mpi4py import MPI

    dist.init_process_group("mpi")
    comm, pg = MPI.COMM_WORLD, process_group._world()._pg
    n, rank = comm.Get_size(), comm.Get_rank()
    hosts = len(set(comm.allgather(MPI.Get_processor_name())))

    def with_algo(name):
        tuning = pg.tuning
        tuning.algo = process_group._ALGOS[name]
        pg.tuning = tuning

    def distml_allreduce(name):
        def run(buf):
            with_algo(name)
            dist.all_reduce(distml.from_numpy(buf))
        return run

    def mpi_allreduce(buf):
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    contenders = [("ring", distml_allreduce("ring")), ("hier", distml_allreduce("hier")), ("mpi", mpi_allreduce)]
    if rank == 0:
        print(f"{n} ranks on {hosts} hosts, {os.cpu_count()} cores; float32 sum; median of the slowest rank's time")
        print(f"{'size':>8} | {'ring ms':>8} {'hier ms':>8} {'MPI ms':>8} | {'busbw GB/s: ring':>16} {'hier':>6} "
              f"{'MPI':>6} | {'ring/hier':>9} {'MPI/hier':>8}")
    for nbytes in SIZES:
        buf = np.ones(nbytes // 4, np.float32)
        for _, run in contenders:  # warm-up: connections, buffers, the arena
            run(buf)
        times = {name: [] for name, _ in contenders}
        for _ in range(repeats(nbytes)):
            for name, run in contenders:
                buf[:] = 1
                comm.Barrier()
                start = time.perf_counter()
                run(buf)
                times[name].append(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))
                assert buf[0] == n and buf[-1] == n, (name, buf[0])
        if rank == 0:
            ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
            busbw = {name: 2 * (n - 1) / n * nbytes / (t / 1e3) / 1e9 for name, t in ms.items()}
            size = f"{nbytes >> 20} MiB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KiB"
            print(f"{size:>8} | {ms['ring']:8.2f} {ms['hier']:8.2f} {ms['mpi']:8.2f} | {busbw['ring']:16.3f} "
                  f"{busbw['hier']:6.3f} {busbw['mpi']:6.3f} | {ms['ring'] / ms['hier']:9.2f} "
                  f"{ms['mpi'] / ms['hier']:8.2f}", flush=True)


def on_test_hosts():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "tests", "distributed"))
    from hosts import Hosts, missing_rights

    why = missing_rights()
    if why:
        sys.exit(f"cannot make test hosts: {why}; on a cluster run the workers yourself (see the docstring)")
    with Hosts(2) as hosts:
        rc, out, _ = hosts.mpiexec("h1:2,h2:2", sys.executable, os.path.abspath(__file__), "--worker", timeout=900)
    print(out, end="")
    sys.exit(rc)


if __name__ == "__main__":
    worker() if "--worker" in sys.argv else on_test_hosts()
