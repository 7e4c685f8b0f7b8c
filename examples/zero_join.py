"""ZeRO + DDP + join: data-parallel training whose ranks hold different numbers of batches, with the
optimizer state sharded over the ranks at the communication cost of plain DDP.

    python examples/zero_join.py                 # one process
    distmlrun -n 2 examples/zero_join.py         # two ranks: rank 0 gets one batch more than rank 1
    distmlrun -n 2 examples/zero_join.py --save model.pt --checkpoint opt.pt

A synthetic regression set of --batches batches is dealt out to the ranks in turn (batch i goes to
rank i % world), so with 11 batches and 2 ranks, rank 0 trains 6 steps and rank 1 five. Under
`ddp.join()` the rank that runs out first shadows the other's collectives, which include the ZeRO
step of its own slice of each gradient bucket (ZeroRedundancyOptimizer with overlap_with_ddp=True
and ddp_zero_hook.hook_with_zero_step), so every parameter keeps being updated. Gradients are
averaged over the initial world size, as DDP's join does by default.
"""
import argparse

import numpy as np

import distml
import distml.distributed as dist
from distml import nn
from distml.distributed.algorithms.ddp_comm_hooks.ddp_zero_hook import hook_with_zero_step
from distml.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from distml.distributed.optim import ZeroRedundancyOptimizer
from distml.nn.parallel import DistributedDataParallel


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=11, help="batches in the whole data set")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default=None, help="rank 0 saves the trained model's state_dict here")
    p.add_argument("--checkpoint", default=None, help="rank 0 saves the consolidated optimizer state here")
    return p.parse_args(argv)


def make_model():
    return nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))


def dataset(batches, batch_size, seed):
    """`batches` (x, y) pairs of y = sin(x . w) + noise."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(10).astype(np.float32)
    data = []
    for _ in range(batches):
        x = rng.standard_normal((batch_size, 10)).astype(np.float32)
        y = np.sin(x @ w)[:, None] + 0.05 * rng.standard_normal((batch_size, 1)).astype(np.float32)
        data.append((distml.from_numpy(x), distml.from_numpy(y.astype(np.float32))))
    return data


def main(argv=None):
    args = parse_args(argv)
    dist.init_process_group("mpi")  # under a launcher or alone (a world of size 1)
    rank, world = dist.get_rank(), dist.get_world_size()
    distml.manual_seed(args.seed)
    ddp = DistributedDataParallel(make_model(), bucket_cap_mb=0.01)
    zero = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=distml.optim.Adam, overlap_with_ddp=True,
                                   lr=args.lr)
    ddp.register_comm_hook(None, hook_with_zero_step(allreduce_hook, ddp, zero))
    mine = dataset(args.batches, args.batch_size, args.seed)[rank::world]
    with ddp.join():
        for x, y in mine:
            zero.zero_grad()
            loss = nn.functional.mse_loss(ddp(x), y)
            loss.backward()  # reduce-scatter, the ZeRO step of this rank's slices, all-gather
    print(f"rank {rank}/{world}: {len(mine)} steps, last loss {loss.item():.4f}, optimizer state "
          f"{sum(v.numel() for s in zero.optim.state.values() for k, v in s.items() if k != 'step')} "
          f"of {2 * sum(p.numel() for p in ddp.parameters())} values", flush=True)
    zero.consolidate_state_dict(to=0)
    if rank == 0:
        if args.save:
            distml.save(ddp.module.state_dict(), args.save)
        if args.checkpoint:
            distml.save(zero.state_dict(), args.checkpoint)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
