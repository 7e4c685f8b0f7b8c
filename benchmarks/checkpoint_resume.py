"""Resuming at another world size: a float32 model of --params parameters (25 square tensors) with
Adam's state (exp_avg, exp_avg_sq) sharded over the ranks, written on 4 ranks and read back on 2, and
written on 2 and read back on 4, with distml.distributed.checkpoint (ZeroRedundancyOptimizer(Adam))
and torch.distributed.checkpoint on gloo (the same tensors: the model on every rank, each rank's share
of the optimizer state under its own keys, resharded by whole parameters as ZeRO's partition is);
torch.save / torch.load of everything in one process as the single-file anchor. Each round runs every
job once, distml and torch alternating; the table is the median over the rounds: wall time of the
slowest rank, CPU time of all ranks together, and the largest rise of the peak resident size of a rank
during the call (/proc/self/status VmHWM after resetting it). The distml load's checksum cost is the
CPU time of zlib.crc32 over the bytes each rank read, in 1 MiB blocks, as the load checks them.

    python benchmarks/checkpoint_resume.py                        # 100M parameters, 3 rounds: ~17 min, 2 cores
    python benchmarks/checkpoint_resume.py --params 10M --rounds 1  # ~2 min (mostly starting the jobs)

Not run by the test suite.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
TENSORS = 25
WORLDS = ((4, 2), (2, 4))  # (saved on, loaded on)


def kib(field):
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field)).split()[1])


def measure(call):
    """{"wall", "cpu" (seconds), "peak_mib" (the rise of the peak resident size)} of call()."""
    before = kib("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak restarts from the current resident size
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "peak_mib": (kib("VmHWM:") - before) / 1024}


def crc_seconds(arrays):
    """CPU seconds of zlib.crc32 over the arrays' bytes in 1 MiB blocks."""
    start = time.process_time()
    for array in arrays:
        data = memoryview(array.reshape(-1).view("uint8"))
        for i in range(0, len(data), 1 << 20):
            zlib.crc32(data[i:i + (1 << 20)])
    return time.process_time() - start


def report(args, rank, result):
    with open(os.path.join(args.out, f"{args.job}-{rank}.json"), "w") as f:
        json.dump(result, f)


def distml_job(args):
    """One rank of a save (after one Adam step, so the state exists) or of a load."""
    import distml
    import distml.distributed as dist
    from distml import nn
    from distml.distributed import checkpoint as dcp
    from distml.distributed.optim import ZeroRedundancyOptimizer

    dist.init_process_group("mpi", timeout=600)
    net = nn.ParameterList([nn.Parameter(distml.full((args.side, args.side), 0.5)) for _ in range(TENSORS)])
    zero = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=distml.optim.Adam, lr=1e-3)
    state = {"model": net, "optimizer": zero, "step": 0}
    if args.job.endswith("save"):
        for p in net.parameters():
            p.grad = distml.full((args.side, args.side), 0.1)
        zero.step()
        zero.zero_grad(set_to_none=True)
        dist.barrier()
        result = measure(lambda: dcp.save(state, checkpoint_id=args.dir))
    else:
        dist.barrier()
        result = measure(lambda: dcp.load(state, checkpoint_id=args.dir))
        arrays = [p.array for p in net.parameters()]
        arrays += [v.array for s in zero.optim.state.values() for v in s.values()
                   if isinstance(v, distml.Tensor) and v.array.ndim]
        result["crc_cpu"] = crc_seconds(arrays)
    report(args, dist.get_rank(), result)


def tdcp_job(args):
    """One rank of torch.distributed.checkpoint's save or load on gloo (started by mpiexec)."""
    import warnings

    import torch
    import torch.distributed as tdist
    import torch.distributed.checkpoint as tdcp

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rank, world = int(os.environ["OMPI_COMM_WORLD_RANK"]), int(os.environ["OMPI_COMM_WORLD_SIZE"])
    tdist.init_process_group("gloo", init_method="file://" + args.dir + ".store", rank=rank, world_size=world)
    model = {f"model.{i}": torch.full((args.side, args.side), 0.5) for i in range(TENSORS)}

    def optimizer(fill):  # this rank's parameters, as ZeRO's partition of equal tensors gives them
        return {f"optimizer.{i}.{name}": torch.full((args.side, args.side), fill) for i in range(rank, TENSORS, world)
                for name in ("exp_avg", "exp_avg_sq")}

    if args.job.endswith("save"):
        state = {**model, **optimizer(0.01)}
        tdist.barrier()
        result = measure(lambda: tdcp.save(state, checkpoint_id=args.dir))
    else:
        tdist.barrier()
        result = measure(lambda: tdcp.load({**model, **optimizer(0.0)}, checkpoint_id=args.dir))
    report(args, rank, result)
    tdist.destroy_process_group()


def torch_job(args):
    """torch.save / torch.load of the whole state, one process."""
    import torch
    torch.set_num_threads(1)
    path = os.path.join(args.dir, "state.pt")
    if args.job == "torch-save":
        shape = (args.side, args.side)
        state = {"model": {f"{i}": torch.full(shape, 0.5) for i in range(TENSORS)},
                 "optimizer": {"state": {i: {"step": torch.tensor(1.0), "exp_avg": torch.full(shape, 0.01),
                                             "exp_avg_sq": torch.full(shape, 1e-5)} for i in range(TENSORS)},
                               "param_groups": [{"lr": 1e-3, "params": list(range(TENSORS))}]}}
        result = measure(lambda: torch.save(state, path))
    else:
        result = measure(lambda: torch.load(path, weights_only=True))
    report(args, 0, result)


def launch(command, timeout=1200):
    env = dict(os.environ, OMPI_MCA_mpi_yield_when_idle="1",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-4000:]}")


def parse_count(text):
    """'100M' -> 100_000_000; '4e6' and plain integers too."""
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:].upper())
    return int(float(text[:-1]) * scale) if scale else int(float(text))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=parse_count, default=100_000_000, help="model parameters (100M, 10M, ...)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every job; the median is printed")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    p.add_argument("--side", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.job is not None:
        return {"distml": distml_job, "tdcp": tdcp_job, "torch": torch_job}[args.job.split("-")[0]](args)
    work = tempfile.mkdtemp(prefix="checkpoint_resume-")
    try:
        run_all(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(args, work):
    from distml.distributed.run import find_mpiexec

    side = round((args.params / TENSORS) ** 0.5)
    me = [sys.executable, os.path.abspath(__file__), "--side", str(side), "--out", work]
    mpiexec = [find_mpiexec() or "mpiexec", "--allow-run-as-root", "--oversubscribe"]
    results = {}  # (job name) -> per round: {"wall": slowest rank, "cpu": all ranks, "peak_mib": highest rank, ...}

    def run(job, ranks, folder):
        launch((mpiexec + ["-n", str(ranks)] if ranks else []) + me + ["--job", job, "--dir", folder])
        per_rank = []
        for rank in range(ranks or 1):
            with open(os.path.join(work, f"{job}-{rank}.json")) as f:
                per_rank.append(json.load(f))
        merged = {"wall": max(r["wall"] for r in per_rank), "cpu": sum(r["cpu"] for r in per_rank),
                  "peak_mib": max(r["peak_mib"] for r in per_rank)}
        if "crc_cpu" in per_rank[0]:
            merged["crc_cpu"] = max(r["crc_cpu"] for r in per_rank)
            merged["crc_share"] = max(r["crc_cpu"] / r["cpu"] for r in per_rank)
        results.setdefault(f"{job} {ranks or 1}", []).append(merged)

    loads = [os.getloadavg()[0]]
    sizes = {}
    for _ in range(args.rounds):
        for saved_on, loaded_on in WORLDS:
            for kind in ("distml", "tdcp"):
                folder = os.path.join(work, f"{kind}-{saved_on}")
                run(f"{kind}-save", saved_on, folder)
                sizes[kind] = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
                run(f"{kind}-load", loaded_on, folder)
                shutil.rmtree(folder)
                if os.path.exists(folder + ".store"):
                    os.remove(folder + ".store")
        run("torch-save", 0, work)
        sizes["torch"] = os.path.getsize(os.path.join(work, "state.pt"))
        run("torch-load", 0, work)
        os.remove(os.path.join(work, "state.pt"))
        loads.append(os.getloadavg()[0])
    print_table(args, side, results, sizes, loads)


def print_table(args, side, results, sizes, loads):
    median = {name: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
              for name, rounds in results.items()}
    params = TENSORS * side * side
    print(f"{params / 1e6:.0f}M float32 parameters + Adam's exp_avg, exp_avg_sq; median of {args.rounds} round(s); "
          f"load average (1 min) {', '.join(f'{x:.1f}' for x in loads)} (before, after each round), "
          f"{os.cpu_count()} CPUs")
    print(f"written: distml {sizes['distml'] / 2**20:.0f} MiB, torch DCP {sizes['tdcp'] / 2**20:.0f} MiB, "
          f"torch.save {sizes['torch'] / 2**20:.0f} MiB")
    print(f"{'':34}{'wall s':>8}{'CPU s':>8}{'peak + MiB':>12}   torch DCP / distml (wall, CPU)")
    for saved_on, loaded_on in WORLDS:
        for label, key in ((f"save on {saved_on}", f"save {saved_on}"),
                           (f"load on {loaded_on} (from {saved_on})", f"load {loaded_on}")):
            mine, theirs = median[f"distml-{key}"], median[f"tdcp-{key}"]
            print(f"  distml     {label:22}{mine['wall']:8.2f}{mine['cpu']:8.2f}{mine['peak_mib']:12.0f}   "
                  f"{theirs['wall'] / mine['wall']:.2f}, {theirs['cpu'] / mine['cpu']:.2f}")
            print(f"  torch DCP  {label:22}{theirs['wall']:8.2f}{theirs['cpu']:8.2f}{theirs['peak_mib']:12.0f}")
    for phase, worlds in (("save", [w for w, _ in WORLDS]), ("load", [w for _, w in WORLDS])):
        r = median[f"torch-{phase} 1"]
        ratios = ", ".join(f"{r['wall'] / median[f'distml-{phase} {n}']['wall']:.2f} (on {n})" for n in worlds)
        print(f"  torch.{phase} (1 process){'':12}{r['wall']:8.2f}{r['cpu']:8.2f}{r['peak_mib']:12.0f}   "
              f"wall / distml's: {ratios}")
    for _, loaded_on in WORLDS:
        r = median[f"distml-load {loaded_on}"]
        print(f"distml load on {loaded_on}: checksums {r['crc_cpu']:.2f} CPU s per rank at most, "
              f"at most {100 * r['crc_share']:.0f}% of a rank's load CPU time")


if __name__ == "__main__":
    main()
