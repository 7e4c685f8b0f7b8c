"""DDP against DDP + ZeroRedundancyOptimizer (inside the buckets), 2 ranks on CPU: peak memory
per rank on a ResNet-18-like model and time per step on LeNet-5, the variants alternating.

    python benchmarks/zero_memory.py [--rounds 2] [--steps 30] [--profile]

Each measurement is a fresh 2-rank job (distmlrun), so each has its own peak. Variants: "ddp"
(DistributedDataParallel + SGD(momentum=0.9)) and "zero" (DDP + ZeroRedundancyOptimizer(SGD,
overlap_with_ddp=True) stepped by ddp_zero_hook.hook_with_zero_step: each rank keeps 1/2 of the
momentum). Memory: the ResNet-18 below (11.2 M parameters, 32x32 inputs, batch 16 per rank);
after 3 warm-up steps the kernel's peak-RSS mark is reset (/proc/self/clear_refs) and 3 more
steps run, "peak MB" is VmHWM then (the training steady state), "max MB" the whole run's.
Time: LeNet-5 on random 28x28 images, batch 64 per rank, one thread per rank; "ms/step" is wall
time, "CPU ms/step" rank 0's process time (the figure that holds on a loaded machine). Ratios
are zero / ddp. --profile prints rank 0's cProfile of the ZeRO LeNet steps (CPU time).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from memory_vs_torch import vm  # this folder is on sys.path: the script's own

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))


def resnet18(nn):
    """ResNet-18 for 32x32 images (3x3 stem, no max-pool): basic blocks of 64, 128, 256, 512."""

    class Block(nn.Module):
        def __init__(self, inp, out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(out)
            self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(out)
            self.relu = nn.ReLU()
            self.down = None
            if stride != 1 or inp != out:
                self.down = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False), nn.BatchNorm2d(out))

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + (x if self.down is None else self.down(x)))

    layers, inp = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()], 64
    for out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(inp, out, stride), Block(out, out, 1)]
        inp = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))


def lenet(nn):
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


WORKLOADS = {"resnet18": (resnet18, (16, 3, 32, 32), 3), "lenet": (lenet, (64, 1, 28, 28), None)}


def worker(variant, workload, steps, profile):
    import distml
    import distml.distributed as dist
    from distml.distributed.algorithms.ddp_comm_hooks.ddp_zero_hook import hook_with_zero_step
    from distml.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    from distml.distributed.optim import ZeroRedundancyOptimizer
    from distml.nn.parallel import DistributedDataParallel
    dist.init_process_group("mpi")
    distml.set_num_threads(1)
    rank = dist.get_rank()
    make, shape, warmup = WORKLOADS[workload]
    distml.manual_seed(0)
    model = DistributedDataParallel(make(distml.nn))
    if variant == "ddp":
        optimizer = distml.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=distml.optim.SGD,
                                            overlap_with_ddp=True, lr=0.01, momentum=0.9)
        model.register_comm_hook(None, hook_with_zero_step(allreduce_hook, model, optimizer))
    rng = np.random.default_rng(rank)
    batches = [(distml.from_numpy(rng.standard_normal(shape).astype(np.float32)),
                distml.from_numpy(rng.integers(0, 10, shape[0]).astype(np.int64))) for _ in range(4)]
    loss_fn = distml.nn.CrossEntropyLoss()

    def step(i):
        x, y = batches[i % len(batches)]
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        if variant == "ddp":
            optimizer.step()

    warmup = warmup or 5
    for i in range(warmup):
        step(i)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    dist.barrier()
    profiler = None
    if profile and rank == 0 and variant == "zero":
        import cProfile
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(i)
    dist.barrier()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if profiler is not None:
        import pstats
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(60)
    mine = {"peak_mb": vm("VmHWM"), "max_mb": _max_rss_mb(), "ms": 1e3 * elapsed / steps,
            "cpu_ms": 1e3 * cpu / steps}
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    if rank == 0:
        print("RESULT " + json.dumps(everyone), flush=True)
    dist.destroy_process_group()


def _max_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def measure(variant, workload, steps, profile=False):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    args = [HERE, "--worker", variant, "--workload", workload, "--steps", str(steps)] + (["--profile"] if profile else [])
    out = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", "2", *args], env=env,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{variant} {workload} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    if profile:
        sys.stderr.write(out.stderr)
    line = [l for l in out.stdout.splitlines() if "RESULT " in l][0]
    return json.loads(line[line.index("RESULT ") + 7:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="timed LeNet steps (ResNet-18: 3)")
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--worker", choices=["ddp", "zero"])
    parser.add_argument("--workload", choices=list(WORKLOADS))
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.workload, args.steps, args.profile)
    if args.profile:
        measure("zero", "lenet", args.steps, profile=True)
        return
    for workload in args.workloads:
        steps = 3 if workload == "resnet18" else args.steps
        runs = {"ddp": [], "zero": []}
        for _ in range(args.rounds):
            for variant in ("ddp", "zero"):
                runs[variant].append(measure(variant, workload, steps))
        print(f"{workload}: 2 ranks, {steps} steps, {args.rounds} rounds alternating (median; per rank r0/r1)")
        med = {}
        for variant, results in runs.items():
            med[variant] = {key: [statistics.median(r[rank][key] for r in results) for rank in range(2)]
                            for key in ("peak_mb", "max_mb", "ms", "cpu_ms")}
            m = med[variant]
            print(f"  {variant:5} peak MB {m['peak_mb'][0]:7.1f} / {m['peak_mb'][1]:7.1f}   max MB "
                  f"{m['max_mb'][0]:7.1f} / {m['max_mb'][1]:7.1f}   ms/step {m['ms'][0]:7.2f}   "
                  f"CPU ms/step {m['cpu_ms'][0]:7.2f} / {m['cpu_ms'][1]:7.2f}")
        z, d = med["zero"], med["ddp"]
        print(f"  zero - ddp peak MB per rank {z['peak_mb'][0] - d['peak_mb'][0]:+.1f} / "
              f"{z['peak_mb'][1] - d['peak_mb'][1]:+.1f}; zero / ddp ms/step {z['ms'][0] / d['ms'][0]:.3f}, "
              f"CPU ms/step {z['cpu_ms'][0] / d['cpu_ms'][0]:.3f}", flush=True)


if __name__ == "__main__":
    main()
