"""DDP step time and MNIST accuracy with the compression hooks (fp16, bf16, PowerSGD) vs plain
DDP: distml (MPI) and PyTorch (gloo) in the same ranks, alternating, one thread per rank.

    python benchmarks/ddp_compression.py [--ranks 2] [--steps 20] [--rounds 5] [--epochs 3]

Each rank holds both frameworks' replicas (PyTorch's gloo group is set up beside distml's MPI
one); every round times `steps` training steps (batch 64 per rank, SGD with momentum) of each
variant in turn. Prints the median ms per step, each hook's time / plain DDP's time, and
PyTorch time / distml time. PyTorch refuses bf16_compress_hook without NCCL, so it has no bf16 row;
its PowerSGD over gloo aborts here with a collective mismatch when several buckets are in flight
(wide_mlp: "Received data size doesn't match expected size"), so it has no PowerSGD row either.
distml's PowerSGD is rank 2 with error feedback, compressing from the third step.

Then each distml variant trains LeNet-5 from the same weights for `epochs` epochs on the first
8,000 images of ../shared/data/mnist (each rank its half of every shuffled batch of 64 x ranks)
and is tested on the last 2,000: the accuracy and its difference from plain DDP (skipped, saying
so, when the MNIST files are absent).
"""
import argparse
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
HOOKS = ("plain", "fp16", "bf16", "powersgd")


def wide_mlp(lib):
    """About 1.9 M parameters (7.5 MB of float32 gradients): communication weighs more."""
    nn = lib.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                         nn.Linear(1024, 10))


MODELS = {"mlp": mlp, "lenet": lenet, "wide_mlp": wide_mlp}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hooked_ddp(lib, module, label):
    """`module` in lib's DDP with the hook `label` names (PowerSGD with its own state)."""
    hooks = lib.distributed.algorithms.ddp_comm_hooks
    model = lib.nn.parallel.DistributedDataParallel(module)
    if label == "powersgd":
        state = hooks.powerSGD_hook.PowerSGDState(process_group=None, matrix_approximation_rank=2,
                                                  start_powerSGD_iter=2)
        model.register_comm_hook(state, hooks.powerSGD_hook.powerSGD_hook)
    elif label != "plain":
        model.register_comm_hook(None, getattr(hooks.default_hooks, f"{label}_compress_hook"))
    return model


def variants(model_name):
    """(label, framework module, DDP model) for every variant, all from the same initial weights."""
    import torch
    import torch.distributed.algorithms.ddp_comm_hooks  # noqa: F401 (torch.distributed.algorithms)

    import distml
    import distml.distributed.algorithms.ddp_comm_hooks  # noqa: F401
    torch.manual_seed(0)
    initial = MODELS[model_name](torch).state_dict()
    out = []
    for label in HOOKS:
        module = MODELS[model_name](distml)
        module.load_state_dict({k: distml.from_numpy(v.numpy().copy()) for k, v in initial.items()})
        out.append((label, distml, hooked_ddp(distml, module, label)))
    for label in ("plain", "fp16"):
        module = MODELS[model_name](torch)
        module.load_state_dict(initial)
        out.append((label, torch, hooked_ddp(torch, module, label)))
    return out


def accuracies(epochs, rank, world):
    """Test accuracy (%) of LeNet-5 trained with each distml hook from the same weights, same batches."""
    import distml
    (images, labels), (test_images, test_labels) = load_mnist(MNIST)
    distml.manual_seed(0)
    initial = lenet(distml).state_dict()
    global_batch = BATCH * world
    result = {}
    for label in HOOKS:
        module = lenet(distml)
        module.load_state_dict(initial)
        model = hooked_ddp(distml, module, label)
        optimizer = distml.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        loss_fn = distml.nn.CrossEntropyLoss()
        for epoch in range(epochs):
            order = np.random.default_rng(epoch).permutation(TRAIN)
            for start in range(0, TRAIN - global_batch + 1, global_batch):
                mine = order[start + rank * BATCH:start + (rank + 1) * BATCH]
                optimizer.zero_grad()
                loss_fn(model(distml.from_numpy(images[mine])), distml.from_numpy(labels[mine])).backward()
                optimizer.step()
        module.eval()
        with distml.no_grad():
            predicted = module(distml.from_numpy(test_images)).argmax(1).numpy()
        result[label] = 100 * float((predicted == test_labels).mean())
    return result


def worker(steps, rounds, epochs):
    import torch
    import torch.distributed as tdist

    import distml
    import distml.distributed as dist
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    port = [free_port()]
    dist.broadcast_object_list(port, src=0)
    tdist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port[0]}")
    distml.set_num_threads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(rank)
    data = [(rng.standard_normal((BATCH, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, BATCH))
            for _ in range(steps)]
    barrier = {distml: dist.barrier, torch: tdist.barrier}
    if rank == 0:
        print(f"{world} ranks, batch {BATCH} per rank, {rounds} rounds of {steps} steps, 1 thread per rank")
        print(f"{'model':9} {'hook':8} {'distml ms':>10} {'vs plain':>9} {'torch ms':>9} {'vs plain':>9} "
              f"{'torch/distml':>12}")
    for model_name in MODELS:
        runs = []
        for label, lib, model in variants(model_name):
            optimizer = lib.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
            batches = [(lib.from_numpy(x), lib.from_numpy(y.astype(np.int64))) for x, y in data]
            runs.append((label, lib, model, optimizer, batches, []))
        loss = {lib: lib.nn.CrossEntropyLoss() for lib in (distml, torch)}
        for round_ in range(rounds + 1):  # round 0 warms up
            for label, lib, model, optimizer, batches, times in runs:
                barrier[lib]()
                start = time.perf_counter()
                for x, y in batches:
                    optimizer.zero_grad()
                    loss[lib](model(x), y).backward()
                    optimizer.step()
                barrier[lib]()
                if round_:
                    times.append((time.perf_counter() - start) * 1e3 / steps)
        if rank == 0:
            ms = {(label, lib.__name__): float(np.median(times)) for label, lib, _, _, _, times in runs}
            for hook in HOOKS:
                d, t = ms[(hook, "distml")], ms.get((hook, "torch"))
                torch_cols = (f"{t:9.2f} {t / ms[('plain', 'torch')]:9.2f} {t / d:12.2f}" if t is not None
                              else f"{'-':>9} {'-':>9} {'-':>12}")
                print(f"{model_name:9} {hook:8} {d:10.2f} {d / ms[('plain', 'distml')]:9.2f} {torch_cols}",
                      flush=True)
    tdist.destroy_process_group()
    if not os.path.exists(os.path.join(MNIST, "t10k-images-idx3-ubyte.gz")):
        if rank == 0:
            print(f"accuracy: skipped, no MNIST files in {MNIST}")
        return
    accuracy = accuracies(epochs, rank, world)
    if rank == 0:
        print(f"LeNet-5, {epochs} epochs on {TRAIN} MNIST images, batch {BATCH} per rank, tested on the last 2,000:")
        for hook in HOOKS:
            print(f"  {hook:8} accuracy {accuracy[hook]:6.2f} %  ({accuracy[hook] - accuracy['plain']:+.2f} "
                  "points vs plain)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the accuracy runs")
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        return worker(args.steps, args.rounds, args.epochs)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(HERE)))
    done = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", str(args.ranks), HERE, "--worker",
                           "--steps", str(args.steps), "--rounds", str(args.rounds), "--epochs", str(args.epochs)], env=env, timeout=1800)
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
