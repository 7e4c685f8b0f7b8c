"""DDP step time with the fp16/bf16 compression hooks vs plain DDP: distml (MPI) and PyTorch
(gloo) in the same ranks, alternating, one thread per rank.

    python benchmarks/ddp_compression.py [--ranks 2] [--steps 20] [--rounds 5]

Each rank holds both frameworks' replicas (PyTorch's gloo group is set up beside distml's MPI
one); every round times `steps` training steps (batch 64 per rank, SGD with momentum) of each
variant in turn. Prints the median ms per step, each hook's time / plain DDP's time, and
PyTorch time / distml time. PyTorch refuses bf16_compress_hook without NCCL, so it has no bf16 row.
"""
import argparse
import os
import socket
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_vs_torch import BATCH, LR, MOMENTUM, lenet, mlp  # noqa: E402

HERE = os.path.abspath(__file__)


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


def variants(model_name):
    """(label, framework module, DDP model) for every variant, all from the same initial weights."""
    import torch
    import torch.distributed.algorithms.ddp_comm_hooks.default_hooks as torch_hooks

    import distml
    from distml.distributed.algorithms.ddp_comm_hooks import default_hooks
    from distml.nn.parallel import DistributedDataParallel
    torch.manual_seed(0)
    initial = MODELS[model_name](torch).state_dict()
    out = []
    for label, hook in (("plain", None), ("fp16", default_hooks.fp16_compress_hook),
                        ("bf16", default_hooks.bf16_compress_hook)):
        module = MODELS[model_name](distml)
        module.load_state_dict({k: distml.from_numpy(v.numpy().copy()) for k, v in initial.items()})
        model = DistributedDataParallel(module)
        if hook is not None:
            model.register_comm_hook(None, hook)
        out.append((label, distml, model))
    for label, hook in (("plain", None), ("fp16", torch_hooks.fp16_compress_hook)):
        module = MODELS[model_name](torch)
        module.load_state_dict(initial)
        model = torch.nn.parallel.DistributedDataParallel(module)
        if hook is not None:
            model.register_comm_hook(None, hook)
        out.append((label, torch, model))
    return out


def worker(steps, rounds):
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
        print(f"{'model':9} {'hook':5} {'distml ms':>10} {'vs plain':>9} {'torch ms':>9} {'vs plain':>9} "
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
            for hook in ("plain", "fp16", "bf16"):
                d, t = ms[(hook, "distml")], ms.get((hook, "torch"))
                torch_cols = (f"{t:9.2f} {t / ms[('plain', 'torch')]:9.2f} {t / d:12.2f}" if t is not None
                              else f"{'-':>9} {'-':>9} {'-':>12}")
                print(f"{model_name:9} {hook:5} {d:10.2f} {d / ms[('plain', 'distml')]:9.2f} {torch_cols}",
                      flush=True)
    tdist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        return worker(args.steps, args.rounds)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(HERE)))
    done = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", str(args.ranks), HERE, "--worker",
                           "--steps", str(args.steps), "--rounds", str(args.rounds)], env=env, timeout=1800)
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
