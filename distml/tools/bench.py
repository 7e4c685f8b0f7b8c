"""`distml bench`: what this machine's or cluster's collectives and a DDP training step can do.

    distmlrun -n 4 -m distml bench                       # allreduce, reduce-scatter, allgather, 4 B .. 256 MiB
    distmlrun -n 2 -m distml bench --model resnet18      # and a DDP step: compute, communication, exposed
    srun --mpi=pmix python -m distml bench --json        # under any MPI launcher; JSON for scripts
    distml bench --plot busbw.png                        # busbw against size (needs matplotlib)

Each size runs distml's collective and the MPI library's own (through mpi4py) alternating, on the
same float32 buffers. algbw = bytes / time; busbw follows nccl-tests: allreduce algbw * 2(n-1)/n,
reduce-scatter and allgather algbw * (n-1)/n, with bytes the whole (unsplit) buffer. A time is the
median over iterations of the slowest rank. memcpy is one large copy on this host: the bound for
collectives within a host.

The model step: `step` is a DDP training step, `compute` the same step under `no_sync()` (no
communication), `communication` DDP's bucket allreduces alone, and `exposed` the part of the step
that compute does not explain, step - compute, kept within [0, communication].
"""
import json
import sys
import time

import numpy as np

COLLECTIVES = ("allreduce", "reduce_scatter", "allgather")
BUS_FACTOR = {"allreduce": lambda n: 2 * (n - 1) / n, "reduce_scatter": lambda n: (n - 1) / n,
              "allgather": lambda n: (n - 1) / n}


def sizes(min_bytes, max_bytes, n):
    """Powers of 4 from min_bytes to max_bytes, each a whole number of float32 per rank."""
    out, size = [], min_bytes
    while size <= max_bytes:
        out.append(max(4 * n, size // (4 * n) * 4 * n))
        size *= 4
    return sorted(set(out))


def slowest(seconds, comm):
    from mpi4py import MPI
    return comm.allreduce(seconds, op=MPI.MAX)


def timed(run, comm, reps):
    """Seconds per call of `run` on the slowest rank, over `reps` back-to-back calls."""
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(reps):
        run()
    return slowest((time.perf_counter() - start) / reps, comm)


def collective_runs(op, nbytes, comm):
    """(distml's call, MPI's call) for `op` on a buffer of `nbytes` in total, each on its own buffers."""
    from mpi4py import MPI

    import distml.distributed as dist
    from distml.tensor import Tensor

    n, count = comm.Get_size(), nbytes // 4
    whole = [np.ones(count, np.float32) for _ in range(2)]
    part = [np.ones(count // n, np.float32) for _ in range(2)]
    if op == "allreduce":
        ours, theirs = Tensor(whole[0]), whole[1]
        return lambda: dist.all_reduce(ours), lambda: comm.Allreduce(MPI.IN_PLACE, theirs)
    if op == "reduce_scatter":
        ours_in, ours_out = Tensor(whole[0]), Tensor(part[0])
        return (lambda: dist.reduce_scatter_tensor(ours_out, ours_in),
                lambda: comm.Reduce_scatter_block(whole[1], part[1]))
    ours_in, ours_out = Tensor(part[0]), Tensor(whole[0])
    return (lambda: dist.all_gather_into_tensor(ours_out, ours_in),
            lambda: comm.Allgather(part[1], whole[1]))


def measure_collective(op, nbytes, comm, iters, warmup=2):
    """One table row: distml's and MPI's median seconds, algbw and busbw (GB/s) and the ratio."""
    n = comm.Get_size()
    ours_run, mpi_run = collective_runs(op, nbytes, comm)
    reps = max(1, min(100, 2**18 // nbytes))
    ours, theirs = [], []
    for i in range(warmup + iters):
        pair = [(ours, ours_run), (theirs, mpi_run)]
        for samples, run in pair[::1 if i % 2 else -1]:  # the two alternate going first
            elapsed = timed(run, comm, reps)
            if i >= warmup:
                samples.append(elapsed)
    t_ours, t_mpi = float(np.median(ours)), float(np.median(theirs))
    factor = BUS_FACTOR[op](n)
    return {"op": op, "bytes": nbytes, "distml_us": t_ours * 1e6, "mpi_us": t_mpi * 1e6,
            "distml_algbw": nbytes / t_ours / 1e9, "distml_busbw": nbytes / t_ours / 1e9 * factor,
            "mpi_algbw": nbytes / t_mpi / 1e9, "mpi_busbw": nbytes / t_mpi / 1e9 * factor,
            "ratio": t_mpi / t_ours}


def memcpy_bandwidth(nbytes=1 << 28, iters=5):
    """GB/s of one large copy on this host (bytes copied / time, best of `iters`)."""
    src, dst = np.ones(nbytes // 4, np.float32), np.empty(nbytes // 4, np.float32)
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return nbytes / best / 1e9


def _model(name, lib):
    nn = lib.nn
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                             nn.Linear(1024, 10)), (1, 28, 28)
    if name == "lenet":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                             nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
                             nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)), (1, 28, 28)
    if name == "resnet18":
        from distml.vision.models import resnet18
        return resnet18(num_classes=10), (3, 32, 32)
    raise ValueError(f"unknown model {name!r}: expected mlp, lenet or resnet18")


MODELS = ("mlp", "lenet", "resnet18")


def measure_model(name, batch, steps, comm, warmup=3):
    """A DDP step of `name` on random data, split into compute, communication and exposed (ms, medians)."""
    import distml
    import distml.distributed as dist
    from distml.nn.parallel import DistributedDataParallel
    from distml.tensor import Tensor

    distml.manual_seed(0)
    module, shape = _model(name, distml)
    model = DistributedDataParallel(module)
    optimizer = distml.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = distml.nn.CrossEntropyLoss()
    rng = np.random.default_rng(comm.Get_rank())
    x = distml.tensor(rng.standard_normal((batch, *shape)).astype(np.float32))
    y = distml.tensor(rng.integers(0, 10, batch))

    def step(sync=True):
        optimizer.zero_grad()
        if sync:
            loss_fn(model(x), y).backward()
        else:
            with model.no_sync():
                loss_fn(model(x), y).backward()
        optimizer.step()

    def communicate():
        works = [dist.all_reduce(Tensor(b.buffer), op=dist.ReduceOp.AVG, async_op=True)
                 for b in model.reducer.buckets]
        for work in works:
            work.wait()

    runs = {"step": step, "compute": lambda: step(sync=False), "communication": communicate}
    samples = {key: [] for key in runs}
    for i in range(warmup + steps):
        for key, run in runs.items():
            elapsed = timed(run, comm, 1)
            if i >= warmup:
                samples[key].append(elapsed * 1e3)
    ms = {key: float(np.median(values)) for key, values in samples.items()}
    ms["exposed"] = min(max(0.0, ms["step"] - ms["compute"]), ms["communication"])
    gradient_bytes = sum(b.buffer.nbytes for b in model.reducer.buckets)
    return {"model": name, "batch_per_rank": batch, "buckets": len(model.reducer.buckets),
            "gradient_bytes": gradient_bytes, **{f"{key}_ms": value for key, value in ms.items()}}


def human(nbytes):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:g} {unit}"
        nbytes /= 1024


def report(result):
    """Plain-text tables of a bench result."""
    lines = [f"distml bench: {result['world_size']} ranks on {result['hosts']} host(s), {result['mpi']}; "
             f"memcpy {result['memcpy_GBps']:.2f} GB/s on rank 0's host"]
    header = (f"{'op':>15} {'size':>10} {'distml us':>11} {'MPI us':>11} {'algbw':>8} {'busbw':>8} "
              f"{'MPI busbw':>10} {'ratio':>6}")
    if result["collectives"]:
        lines += ["(bandwidths in GB/s; ratio = MPI time / distml time, > 1: distml is faster)", header]
    elif result["world_size"] == 1:
        lines.append("one rank: no collectives to measure (start it under distmlrun -n N, mpirun or srun)")
    for row in result["collectives"]:
        lines.append(f"{row['op']:>15} {human(row['bytes']):>10} {row['distml_us']:11.1f} {row['mpi_us']:11.1f} "
                     f"{row['distml_algbw']:8.3f} {row['distml_busbw']:8.3f} {row['mpi_busbw']:10.3f} "
                     f"{row['ratio']:6.2f}")
    model = result.get("model")
    if model:
        lines += [f"DDP step of {model['model']}, batch {model['batch_per_rank']} per rank, "
                  f"{model['buckets']} bucket(s), {human(model['gradient_bytes'])} of gradients (ms, median):",
                  f"  step {model['step_ms']:.2f}   compute {model['compute_ms']:.2f}   "
                  f"communication {model['communication_ms']:.2f}   exposed {model['exposed_ms']:.2f}"]
    return "\n".join(lines)


def plot(result, path):
    """busbw against size, one line per collective and library, written to `path` (PNG)."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("distml bench --plot needs matplotlib: pip install 'distml[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for op in COLLECTIVES:
        rows = [r for r in result["collectives"] if r["op"] == op]
        if rows:
            sizes_ = [r["bytes"] for r in rows]
            axes.plot(sizes_, [r["distml_busbw"] for r in rows], marker="o", label=f"distml {op}")
            axes.plot(sizes_, [r["mpi_busbw"] for r in rows], marker="x", linestyle="--", label=f"MPI {op}")
    axes.axhline(result["memcpy_GBps"], color="grey", linewidth=0.8, label="memcpy")
    axes.set(xscale="log", xlabel="bytes", ylabel="busbw (GB/s)",
             title=f"{result['world_size']} ranks, {result['hosts']} host(s)")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)


def parse_bytes(text):
    """'4', '64K', '256M', '1G' -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().rstrip("B").rstrip("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def run(ops=COLLECTIVES, min_bytes=4, max_bytes=256 << 20, iters=10, model=None, batch=32, steps=10,
        as_json=False, plot_path=None, out=sys.stdout):
    """Measure, then print (rank 0) a table or JSON and write the plot; returns the exit status."""
    import socket

    from mpi4py import MPI

    import distml.distributed as dist

    dist.init_process_group("mpi")
    comm = MPI.COMM_WORLD
    n = comm.Get_size()
    result = {"world_size": n, "hosts": len(set(comm.allgather(socket.gethostname()))),
              "mpi": MPI.Get_library_version().strip().splitlines()[0].split(",")[0],
              "memcpy_GBps": memcpy_bandwidth(), "collectives": []}
    for op in ops if n > 1 else ():  # a world of one has nothing to communicate
        for nbytes in sizes(min_bytes, max_bytes, n):
            result["collectives"].append(measure_collective(op, nbytes, comm, iters))
    if model:
        result["model"] = measure_model(model, batch, steps, comm)
    if comm.Get_rank() == 0:
        print(json.dumps(result, indent=2) if as_json else report(result), file=out, flush=True)
        if plot_path:
            plot(result, plot_path)
    return 0
