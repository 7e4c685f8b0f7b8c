"""Resharding checkpoints: a ~100M-parameter float32 model and its ZeroRedundancyOptimizer(Adam) state saved
on 2 ranks with distml.distributed.checkpoint, loaded on 3 and on 2, against torch.save / torch.load and
torch.distributed.checkpoint (one process) of the same tensors. Time and peak resident size (the rise
during the call: /proc/self/status VmHWM after resetting it) per rank or process.

    python benchmarks/checkpoint_resume.py                 # about 4 minutes on 2 cores, ~4 GiB of RAM at most
    python benchmarks/checkpoint_resume.py --tensors 10    # 40M parameters

distml's save writes each rank's optimizer shard to its own file (the model once, from rank 0); each
loading rank reads the model and only its new shard's element ranges. torch.save writes one file with
everything, which torch.load reads whole. Not run by the test suite.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDE = 2000  # each tensor is SIDE x SIDE float32: 4M parameters


def kib(field):
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field)).split()[1])


def measure(call):
    """(seconds, MiB the peak resident size rose by) of call()."""
    before = kib("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak restarts from the current resident size
    start = time.perf_counter()
    call()
    return time.perf_counter() - start, (kib("VmHWM:") - before) / 1024


def distml_job(args):
    """One rank of a save (with one Adam step first, so the state exists) or a load."""
    import distml
    import distml.distributed as dist
    from distml import nn
    from distml.distributed import checkpoint as dcp
    from distml.distributed.optim import ZeroRedundancyOptimizer

    dist.init_process_group("mpi", timeout=600)
    net = nn.ParameterList([nn.Parameter(distml.full((SIDE, SIDE), 0.5)) for _ in range(args.tensors)])
    zero = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=distml.optim.Adam, lr=1e-3)
    state = {"model": net, "optimizer": zero, "step": 0}
    if args.job == "save":
        for p in net.parameters():
            p.grad = distml.full((SIDE, SIDE), 0.1)
        zero.step()
        dist.barrier()
        seconds, peak = measure(lambda: dcp.save(state, checkpoint_id=args.dir))
    else:
        dist.barrier()
        seconds, peak = measure(lambda: dcp.load(state, checkpoint_id=args.dir))
    rank, world = dist.get_rank(), dist.get_world_size()
    with open(os.path.join(args.out, f"distml-{args.job}-{world}-{rank}.json"), "w") as f:
        json.dump({"seconds": seconds, "peak_mib": peak}, f)


def torch_state(torch, tensors):
    model = {f"{i}": torch.full((SIDE, SIDE), 0.5) for i in range(tensors)}
    optimizer = {"state": {i: {"step": torch.tensor(1.0), "exp_avg": torch.full((SIDE, SIDE), 0.01),
                               "exp_avg_sq": torch.full((SIDE, SIDE), 1e-5)} for i in range(tensors)},
                 "param_groups": [{"lr": 1e-3, "params": list(range(tensors))}]}
    return {"model": model, "optimizer": optimizer, "step": 0}


def torch_job(args):
    """torch.save / torch.load, or torch.distributed.checkpoint's save / load (no process group)."""
    import torch
    torch.set_num_threads(1)
    path = os.path.join(args.dir, "state.pt")
    if args.job == "torch-save":
        state = torch_state(torch, args.tensors)
        result = measure(lambda: torch.save(state, path))
    elif args.job == "torch-load":
        result = measure(lambda: torch.load(path, weights_only=True))
    else:
        import warnings
        import torch.distributed.checkpoint as tdcp
        warnings.filterwarnings("ignore")  # "torch.distributed is unavailable or uninitialized, assuming ..."
        state = torch_state(torch, args.tensors)
        folder = os.path.join(args.dir, "tdcp")
        if args.job == "tdcp-save":
            result = measure(lambda: tdcp.save(state, checkpoint_id=folder))
        else:  # loads in place into tensors of the right shapes, as it must
            result = measure(lambda: tdcp.load(state, checkpoint_id=folder))
    with open(os.path.join(args.out, f"{args.job}.json"), "w") as f:
        json.dump({"seconds": result[0], "peak_mib": result[1]}, f)


def launch(command, timeout=600):
    env = dict(os.environ, OMPI_MCA_mpi_yield_when_idle="1",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-4000:]}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tensors", type=int, default=25, help=f"{SIDE}x{SIDE} float32 tensors (25: 100M parameters)")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    p.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.job in ("save", "load"):
        return distml_job(args)
    if args.job is not None:
        return torch_job(args)
    work = tempfile.mkdtemp(prefix="checkpoint_resume-")
    try:
        run_all(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(args, work):
    me = [sys.executable, os.path.abspath(__file__), "--tensors", str(args.tensors), "--out", work]
    mpiexec = [shutil.which("mpiexec") or "mpiexec", "--allow-run-as-root", "--oversubscribe"]
    ckpt = os.path.join(work, "ckpt")
    launch(mpiexec + ["-n", "2"] + me + ["--job", "save", "--dir", ckpt])
    for world in (3, 2):
        launch(mpiexec + ["-n", str(world)] + me + ["--job", "load", "--dir", ckpt])
    for job in ("torch-save", "torch-load", "tdcp-save", "tdcp-load"):
        launch(me + ["--job", job, "--dir", work])

    def result(name):
        with open(os.path.join(work, name + ".json")) as f:
            return json.load(f)

    params = args.tensors * SIDE * SIDE
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ckpt) for f in fs)
    print(f"{params / 1e6:.0f}M float32 parameters + Adam's exp_avg, exp_avg_sq: "
          f"distml checkpoint {total / 2**20:.0f} MiB, torch.save file "
          f"{os.path.getsize(os.path.join(work, 'state.pt')) / 2**20:.0f} MiB")
    torch_save, torch_load = result("torch-save"), result("torch-load")
    tdcp_save, tdcp_load = result("tdcp-save"), result("tdcp-load")
    print(f"torch.save                 {torch_save['seconds'] * 1e3:8.0f} ms  peak +{torch_save['peak_mib']:6.0f} MiB")
    print(f"torch.load                 {torch_load['seconds'] * 1e3:8.0f} ms  peak +{torch_load['peak_mib']:6.0f} MiB")
    print(f"torch DCP save (1 process) {tdcp_save['seconds'] * 1e3:8.0f} ms  peak +{tdcp_save['peak_mib']:6.0f} MiB")
    print(f"torch DCP load (1 process) {tdcp_load['seconds'] * 1e3:8.0f} ms  peak +{tdcp_load['peak_mib']:6.0f} MiB")
    for job, world, ref in (("save", 2, torch_save), ("load", 3, torch_load), ("load", 2, torch_load)):
        ranks = [result(f"distml-{job}-{world}-{rank}") for rank in range(world)]
        slowest = max(r["seconds"] for r in ranks)
        peaks = ", ".join(f"{r['peak_mib']:.0f}" for r in ranks)
        highest = max(r["peak_mib"] for r in ranks)
        ratios = f"torch.{job} time / distml: {ref['seconds'] / slowest:.2f}"
        if job == "load":  # a save allocates next to nothing in either
            ratios += f", torch.load peak / distml's highest rank: {ref['peak_mib'] / max(highest, 1):.2f}"
        print(f"distml {job} on {world} ranks     {slowest * 1e3:8.0f} ms  peak + {peaks} MiB per rank   {ratios}")


if __name__ == "__main__":
    main()
