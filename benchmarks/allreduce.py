"""distml's allreduce against the MPI library's own MPI_Allreduce (through mpi4py), on the same
float32 buffers, interleaved in one run so both see the same machine load.

    OMPI_MCA_mpi_yield_when_idle=1 mpiexec -n 4 python benchmarks/allreduce.py [--max-mib 64] [--iters 20]

busbw = size / time * 2 (n - 1) / n, as nccl-tests reports it; ratio = MPI time / distml time
(> 1 means distml is faster). Each sample times a batch of calls (many for small sizes, so the
barrier's exit skew does not swamp microseconds) on the slowest rank; the table shows the median.
"""
import argparse
import time

import numpy as np

import distml.distributed as dist


def timed(fn, comm, reps):
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    elapsed = np.array([(time.perf_counter() - start) / reps])
    comm.Allreduce(elapsed.copy(), elapsed, op=MPI.MAX)  # the slowest rank decides
    return elapsed[0]


def human(nbytes):
    for unit in ("B", "KiB", "MiB"):
        if nbytes < 1024 or unit == "MiB":
            return f"{nbytes:g} {unit}"
        nbytes /= 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-mib", type=float, default=64)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    dist.init_process_group("mpi")
    comm = MPI.COMM_WORLD
    n, rank = comm.Get_size(), comm.Get_rank()
    sizes = [4 * 4**k for k in range(13) if 4 * 4**k <= args.max_mib * 2**20]
    if rank == 0:
        from distml.distributed.process_group import _world
        path = "shared memory" if _world()._pg.shared_memory else "MPI messages"
        print(f"allreduce float32, {n} ranks, {args.iters} iterations (median), distml over {path}, "
              f"{MPI.Get_library_version().splitlines()[0]}")
        print(f"{'size':>10} {'distml us':>11} {'MPI us':>11} {'distml GB/s':>12} {'MPI GB/s':>10} {'ratio':>7}")
    for nbytes in sizes:
        ours_buf = np.full(nbytes // 4, rank + 1, np.float32)
        mpi_buf = ours_buf.copy()
        iters = args.iters if nbytes < 2**22 else max(5, args.iters // 2)
        reps = max(1, min(100, 2**18 // nbytes))
        ours, theirs = [], []
        for i in range(args.warmup + iters):
            # Each buffer is refilled just before its own run (same cache state for both), and
            # the two alternate going first.
            runs = [(ours, ours_buf, lambda: dist.all_reduce(ours_buf)),
                    (theirs, mpi_buf, lambda: comm.Allreduce(MPI.IN_PLACE, mpi_buf, op=MPI.SUM))]
            for samples, buf, run in runs[::1 if i % 2 else -1]:
                buf.fill(rank + 1)
                elapsed = timed(run, comm, reps)
                if i >= args.warmup:
                    samples.append(elapsed)
        t_ours, t_mpi = np.median(ours), np.median(theirs)
        bus = 2 * (n - 1) / n
        if rank == 0:
            print(f"{human(nbytes):>10} {t_ours * 1e6:11.1f} {t_mpi * 1e6:11.1f} "
                  f"{nbytes / t_ours * bus / 1e9:12.3f} {nbytes / t_mpi * bus / 1e9:10.3f} {t_mpi / t_ours:7.2f}",
                  flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    from mpi4py import MPI  # after distml.distributed: MPI is initialised by init_process_group
    main()
