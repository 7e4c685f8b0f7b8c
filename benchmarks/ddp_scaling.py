"""Data-parallel throughput: distml DDP (over MPI) vs PyTorch DDP (gloo), 1 and 2 ranks.

    python benchmarks/ddp_scaling.py [--steps 100]

Both run the MLP and LeNet-5 workloads of train_vs_torch.py with batch 64 per rank, SGD
(momentum 0.9), one thread per rank, on the MNIST split in ../shared/data/mnist (random data
of the same shape when it is absent). Prints samples/s, scaling efficiency (2-rank throughput
/ (2 x 1-rank)) for both, and distml / PyTorch.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_vs_torch import BATCH, LR, MOMENTUM, TRAIN, lenet, load_mnist, mlp  # noqa: E402

HERE = os.path.abspath(__file__)
MNIST = os.path.join(os.path.dirname(HERE), "..", "..", "shared", "data", "mnist")
MODELS = {"mlp": mlp, "lenet": lenet}


def training_data():
    if os.path.exists(os.path.join(MNIST, "t10k-images-idx3-ubyte.gz")):
        return load_mnist(MNIST)[0], "MNIST"
    rng = np.random.default_rng(0)
    return (rng.standard_normal((TRAIN, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, TRAIN)), "random"


def worker(framework, model_name, steps):
    """One rank: time `steps` DDP training steps on this rank's shard; rank 0 prints samples/s."""
    if framework == "distml":
        import distml as lib
        import distml.distributed as dist
        from distml.nn.parallel import DistributedDataParallel
        dist.init_process_group("mpi")
    else:
        import torch as lib
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel
        dist.init_process_group("gloo")
    lib.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    lib.manual_seed(0)
    model = DistributedDataParallel(MODELS[model_name](lib))
    optimizer = lib.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = lib.nn.CrossEntropyLoss()
    (images, labels), _ = training_data()
    shard = np.arange(rank, TRAIN, world)
    batches = [(lib.from_numpy(np.ascontiguousarray(images[i])), lib.from_numpy(labels[i].astype(np.int64)))
               for i in np.array_split(shard, len(shard) // BATCH)[:steps]]
    warmup = 5
    for step, (x, y) in enumerate(batches):
        if step == warmup:
            dist.barrier()
            start = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    dist.barrier()
    elapsed = time.perf_counter() - start
    samples = sum(len(y) for _, y in batches[warmup:]) * world
    if rank == 0:
        print(json.dumps({"samples_per_s": samples / elapsed}), flush=True)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(framework, model_name, ranks, steps):
    args = [HERE, "--worker", framework, "--model", model_name, "--steps", str(steps)]
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
    return json.loads(line[line.index("{"):])["samples_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--worker", choices=["distml", "torch"])
    parser.add_argument("--model", choices=list(MODELS))
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.model, args.steps)
    print(f"data: {training_data()[1]}, batch {BATCH} per rank, {args.steps} steps, 1 thread per rank")
    print(f"{'model':6} {'framework':9} {'1 rank/s':>10} {'2 ranks/s':>10} {'efficiency':>10}")
    for model_name in MODELS:
        results = {}
        for framework in ("torch", "distml"):
            one, two = (measure(framework, model_name, n, args.steps) for n in (1, 2))
            results[framework] = two
            print(f"{model_name:6} {framework:9} {one:10.0f} {two:10.0f} {two / (2 * one):10.2f}", flush=True)
        print(f"{model_name:6} distml / torch at 2 ranks: {results['distml'] / results['torch']:.2f}")


if __name__ == "__main__":
    main()
