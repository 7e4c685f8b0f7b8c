"""One job of test_reshard.py, run under mpiexec: DDP + ZeroRedundancyOptimizer(Adam) + StepLR on float64
data, stopped after --stop steps with a checkpoint, or resumed from one, or run without a stop.

    mpiexec -n 2 python tests/distributed/reshard_job.py --ckpt c --out o --stop 5      # save at step 5
    mpiexec -n 3 python tests/distributed/reshard_job.py --ckpt c --out o --overlap     # resume, finish
"""
import argparse
import json
import os
import random

import numpy as np

import distml
import distml.distributed as dist
from distml import nn
from distml.distributed import checkpoint as dcp
from distml.distributed.algorithms.ddp_comm_hooks.ddp_zero_hook import hook_with_zero_step
from distml.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from distml.distributed.optim import ZeroRedundancyOptimizer
from distml.nn.parallel import DistributedDataParallel
from distml.utils.data import DistributedSampler, StatefulDataLoader, TensorDataset

SAMPLES, GLOBAL_BATCH, STEPS = 48, 12, 8  # 4 steps an epoch, 2 epochs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stop", type=int, default=None, help="save after this step and exit")
    p.add_argument("--overlap", action="store_true", help="ZeRO inside DDP's buckets (element ranges)")
    args = p.parse_args()
    dist.init_process_group("mpi", timeout=60)
    rank, world = dist.get_rank(), dist.get_world_size()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((SAMPLES, 6))
    y = x @ rng.standard_normal((6, 3)) + 0.1 * rng.standard_normal((SAMPLES, 3))
    data = TensorDataset(distml.from_numpy(x), distml.from_numpy(y))
    sampler = DistributedSampler(data, seed=1)
    loader = StatefulDataLoader(data, batch_size=GLOBAL_BATCH // world, sampler=sampler)
    distml.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3)).double()
    ddp = DistributedDataParallel(net)
    zero = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=distml.optim.Adam, lr=0.02,
                                   overlap_with_ddp=args.overlap)
    if args.overlap:
        ddp.register_comm_hook(None, hook_with_zero_step(allreduce_hook, ddp, zero))
    scheduler = distml.optim.lr_scheduler.StepLR(zero, step_size=2, gamma=0.5)
    state = {"model": net, "optimizer": zero, "scheduler": scheduler, "loader": loader, "rng": dcp.RNGState(),
             "step": 0, "epoch": 0}
    if dcp.exists(args.ckpt):
        bytes_read = dcp.load(state, checkpoint_id=args.ckpt)
        check_rng(args.out, rank)
        report_reads(args, rank, net, zero, bytes_read)
    step = state["step"]
    for epoch in range(state["epoch"], STEPS * GLOBAL_BATCH // SAMPLES):
        sampler.set_epoch(epoch)
        for x, y in loader:
            zero.zero_grad()
            nn.functional.mse_loss(ddp(x), y).backward()
            if not args.overlap:
                zero.step()
            scheduler.step()
            step += 1
            if step == args.stop:
                state.update(step=step, epoch=epoch)
                dcp.save(state, checkpoint_id=args.ckpt)
                zero.consolidate_state_dict(to=0)  # the gathered path, for the test to compare with
                if rank == 0:
                    distml.save({"optimizer": zero.state_dict(), "model": net.state_dict()},
                                os.path.join(args.out, "consolidated.distml"))
                draws = {"distml": distml.rand(3).tolist(), "numpy": np.random.rand(3).tolist(),
                         "python": random.random()}
                with open(os.path.join(args.out, f"rng-{rank}.json"), "w") as f:
                    json.dump(draws, f)
                return
    if rank == 0:
        np.savez(os.path.join(args.out, "params.npz"), **{k: v.numpy() for k, v in net.state_dict().items()})
        print(f"done: {step} steps on {world} ranks", flush=True)


def check_rng(out, rank):
    """Ranks that existed when the checkpoint was written continue their random streams."""
    path = os.path.join(out, f"rng-{rank}.json")
    if os.path.exists(path):
        with open(path) as f:
            expected = json.load(f)
        got = {"distml": distml.rand(3).tolist(), "numpy": np.random.rand(3).tolist(), "python": random.random()}
        assert got == expected, f"rank {rank}: random streams after load {got}, saved {expected}"
        print(f"rank {rank}: rng restored", flush=True)


def report_reads(args, rank, net, zero, bytes_read):
    """The bytes this rank read from the data files, what its own ranges of exp_avg and exp_avg_sq and
    the model (which every rank reads whole) hold, and the data files' sizes."""
    pieces, _ = zero._local_layout()
    own = sum(2 * (hi - lo) * 8 for _, (_, lo, hi) in pieces)
    model = sum(value.numpy().nbytes for value in net.state_dict().values())
    path = os.path.join(args.ckpt, open(os.path.join(args.ckpt, "latest")).read().strip())
    files = {name: os.path.getsize(os.path.join(path, name)) for name in os.listdir(path) if name.startswith("shard-")}
    with open(os.path.join(args.out, f"reads-{rank}.json"), "w") as f:
        json.dump({"read": bytes_read, "own": own, "model": model, "files": files}, f)

if __name__ == "__main__":
    main()
