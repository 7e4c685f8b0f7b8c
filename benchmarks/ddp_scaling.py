"""Data-parallel throughput: distml DDP (over MPI) vs PyTorch DDP (gloo), 1 and 2 ranks, each also
with ZeRO (optimizer state sharded over the ranks).

    python benchmarks/ddp_scaling.py [--steps 100] [--models mlp lenet resnet18]

The MLP and LeNet-5 workloads of train_vs_torch.py (batch 64 per rank, the MNIST split in
../shared/data/mnist, random data of the same shape when it is absent) and torchvision's
ResNet-18 on random 32x32 RGB images (batch 32 per rank, a fifth of the steps); SGD (momentum
0.9), one thread per rank. Variants: DDP with the plain optimizer; distml DDP + ZeRO inside
the buckets (ZeroRedundancyOptimizer(overlap_with_ddp=True) + hook_with_zero_step); PyTorch DDP
+ its ZeroRedundancyOptimizer (standalone: overlapping it with DDP raises on gloo).
Prints samples/s, scaling efficiency (2-rank throughput / (2 x 1-rank)), CPU seconds per step
and rank (the figure to compare on a loaded machine, where wall time is not), peak RSS and
optimizer-state memory per rank.
"""
import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_vs_torch import BATCH, LR, MOMENTUM, TRAIN, lenet, load_mnist, mlp  # noqa: E402

HERE = os.path.abspath(__file__)
MNIST = os.path.join(os.path.dirname(HERE), "..", "..", "shared", "data", "mnist")
RESNET_BATCH = 32


def resnet18(lib):
    if lib.__name__ == "distml":
        from distml.vision.models import resnet18 as make
        return make(num_classes=10)
    from torch_resnet import TorchResNet18
    return TorchResNet18(num_classes=10)


MODELS = {"mlp": mlp, "lenet": lenet, "resnet18": resnet18}
VARIANTS = [("torch", "ddp"), ("torch", "zero"), ("distml", "ddp"), ("distml", "zero")]


def training_data():
    if os.path.exists(os.path.join(MNIST, "t10k-images-idx3-ubyte.gz")):
        return load_mnist(MNIST)[0], "MNIST"
    rng = np.random.default_rng(0)
    return (rng.standard_normal((TRAIN, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, TRAIN)), "random"


def worker(framework, variant, model_name, steps):
    """One rank: time `steps` DDP training steps on this rank's shard; rank 0 prints the figures."""
    if framework == "distml":
        import distml as lib
        import distml.distributed as dist
        from distml.distributed.algorithms.ddp_comm_hooks.ddp_zero_hook import hook_with_zero_step
        from distml.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
        from distml.distributed.optim import ZeroRedundancyOptimizer
        from distml.nn.parallel import DistributedDataParallel
        dist.init_process_group("mpi")
    else:
        import torch as lib
        import torch.distributed as dist
        from torch.distributed.optim import ZeroRedundancyOptimizer
        from torch.nn.parallel import DistributedDataParallel
        dist.init_process_group("gloo")
    lib.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    lib.manual_seed(0)
    model = DistributedDataParallel(MODELS[model_name](lib))
    options = dict(lr=LR, momentum=MOMENTUM)
    overlapped = variant == "zero" and framework == "distml"
    if variant == "ddp":
        optimizer = lib.optim.SGD(model.parameters(), **options)
    else:
        optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=lib.optim.SGD,
                                            overlap_with_ddp=overlapped, **options)
        if overlapped:
            model.register_comm_hook(None, hook_with_zero_step(allreduce_hook, model, optimizer))
    loss_fn = lib.nn.CrossEntropyLoss()
    batches = local_batches(lib, model_name, rank, world, steps)
    warmup = 5 if model_name != "resnet18" else 2
    for step, (x, y) in enumerate(batches):
        if step == warmup:
            dist.barrier()
            start, cpu = time.perf_counter(), time.process_time()
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        if not overlapped:
            optimizer.step()
    dist.barrier()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    local = getattr(optimizer, "optim", optimizer)  # ZeRO's local optimizer holds this rank's state
    state_bytes = sum(v.numel() * v.element_size() for s in local.state.values() for k, v in s.items()
                      if k != "step" and hasattr(v, "numel"))
    mine = {"cpu_s_per_step": cpu / (len(batches) - warmup), "peak_rss_mb": _peak_rss_mb(),
            "state_mb": state_bytes / 2**20}
    everyone = [None] * world
    dist.all_gather_object(everyone, mine)
    samples = sum(len(y) for _, y in batches[warmup:]) * world
    if rank == 0:
        print(json.dumps({"samples_per_s": samples / elapsed, "ranks": everyone}), flush=True)
    dist.destroy_process_group()


def local_batches(lib, model_name, rank, world, steps):
    if model_name == "resnet18":
        rng = np.random.default_rng(rank)
        return [(lib.from_numpy(rng.standard_normal((RESNET_BATCH, 3, 32, 32)).astype(np.float32)),
                 lib.from_numpy(rng.integers(0, 10, RESNET_BATCH).astype(np.int64))) for _ in range(steps)]
    (images, labels), _ = training_data()
    shard = np.arange(rank, TRAIN, world)
    return [(lib.from_numpy(np.ascontiguousarray(images[i])), lib.from_numpy(labels[i].astype(np.int64)))
            for i in np.array_split(shard, len(shard) // BATCH)[:steps]]


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(framework, variant, model_name, ranks, steps):
    args = [HERE, "--worker", framework, "--variant", variant, "--model", model_name, "--steps", str(steps)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(HERE)))
    if framework == "distml":
        out = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", str(ranks), *args],
                             env=env, capture_output=True, text=True, timeout=600)
        outputs = [out]
    else:
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(ranks))
        procs = [subprocess.Popen([sys.executable, *args], env=dict(env, RANK=str(r)), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for r in range(ranks)]
        outputs = [subprocess.CompletedProcess(p.args, p.wait(600), *p.communicate()) for p in procs]
    for out in outputs:
        if out.returncode != 0:
            raise RuntimeError(f"{framework} {model_name} on {ranks} ranks failed:\n{out.stderr[-3000:]}")
    line = [l for o in outputs for l in o.stdout.splitlines() if '{"samples_per_s"' in l][0]
    return json.loads(line[line.index("{"):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--worker", choices=["distml", "torch"])
    parser.add_argument("--variant", choices=["ddp", "zero"])
    parser.add_argument("--model", choices=list(MODELS))
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.variant, args.model, args.steps)
    print(f"data: {training_data()[1]} (ResNet-18: random 32x32, batch {RESNET_BATCH}), batch {BATCH} per rank, "
          f"{args.steps} steps (ResNet-18: {max(6, args.steps // 5)}), 1 thread per rank")
    print(f"{'model':8} {'variant':12} {'1 rank/s':>9} {'2 ranks/s':>9} {'effic.':>6} {'CPU s/step 1|2':>15} "
          f"{'peak RSS MB 1|2 (per rank)':>27} {'opt. state MB 1|2':>18}")
    for model_name in args.models:
        steps = args.steps if model_name != "resnet18" else max(6, args.steps // 5)
        throughput = {}
        for framework, variant in VARIANTS:
            one, two = (measure(framework, variant, model_name, n, steps) for n in (1, 2))
            throughput[framework, variant] = two["samples_per_s"]
            cpu = f"{one['ranks'][0]['cpu_s_per_step']:.3f}|" + "/".join(
                f"{r['cpu_s_per_step']:.3f}" for r in two["ranks"])
            rss = f"{one['ranks'][0]['peak_rss_mb']:.0f}|" + "/".join(f"{r['peak_rss_mb']:.0f}" for r in two["ranks"])
            state = f"{one['ranks'][0]['state_mb']:.1f}|" + "/".join(f"{r['state_mb']:.1f}" for r in two["ranks"])
            name = f"{framework} {variant}"
            print(f"{model_name:8} {name:12} {one['samples_per_s']:9.0f} {two['samples_per_s']:9.0f} "
                  f"{two['samples_per_s'] / (2 * one['samples_per_s']):6.2f} {cpu:>15} {rss:>27} {state:>18}",
                  flush=True)
        print(f"{model_name:8} distml / torch at 2 ranks: DDP {throughput['distml', 'ddp'] / throughput['torch', 'ddp']:.2f}, "
              f"ZeRO {throughput['distml', 'zero'] / throughput['torch', 'zero']:.2f}; distml ZeRO / DDP step time "
              f"{throughput['distml', 'ddp'] / throughput['distml', 'zero']:.2f}", flush=True)


if __name__ == "__main__":
    main()
