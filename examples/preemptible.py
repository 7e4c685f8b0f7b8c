"""Training that survives preemption and resumes on any number of ranks.

    distmlrun -n 4 examples/preemptible.py --checkpoint-dir ckpt --preempt-at 6   # stops after step 6
    distmlrun -n 2 examples/preemptible.py --checkpoint-dir ckpt                  # finishes the job
    sbatch slurm/multi_node.sbatch examples/preemptible.py --checkpoint-dir ckpt  # requeued on USR1

The global batch is fixed (each rank takes global / world size), so the steps do not depend on the
number of ranks: stopped on 4 ranks and finished on 2 it ends with the same parameters as a run
never stopped. On SIGUSR1 (SLURM's warning before the time limit, see slurm/*.sbatch) every rank
stops at the same step, the checkpoint is written and the job exits with code 75, on which the
sbatch scripts requeue it; the requeued job starts here again and finds the checkpoint.
"""
import argparse
import json
import os
import signal
import time

import numpy as np

import distml
import distml.distributed as dist
from distml import nn
from distml.distributed import checkpoint as dcp
from distml.distributed.elastic import PreemptionHandler
from distml.nn.parallel import DistributedDataParallel
from distml.utils.data import DistributedSampler, StatefulDataLoader, TensorDataset


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint-dir", required=True, help="written on preemption, loaded at start if there")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--samples", type=int, default=96)
    p.add_argument("--global-batch", type=int, default=12, help="samples per step over all ranks")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--step-sleep", type=float, default=0.0, help="seconds to wait each step (to watch it)")
    p.add_argument("--preempt-at", type=int, default=None,
                   help="act as if SIGUSR1 came after this global step (to try resuming)")
    p.add_argument("--out", default=None, help="write the final parameters and each rank's samples here")
    return p.parse_args(argv)


def synthetic_data(n):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = (x @ rng.standard_normal((8, 1)) + 0.1 * rng.standard_normal((n, 1))).astype(np.float32)
    return TensorDataset(distml.from_numpy(x), distml.from_numpy(y), distml.arange(n))


def main(argv=None):
    args = parse_args(argv)
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.global_batch % world:
        raise SystemExit(f"--global-batch {args.global_batch} must be a multiple of the {world} ranks")
    data = synthetic_data(args.samples)
    sampler = DistributedSampler(data, seed=1)
    loader = StatefulDataLoader(data, batch_size=args.global_batch // world, sampler=sampler)
    distml.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    model = DistributedDataParallel(net)
    optimizer = distml.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9)
    scheduler = distml.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.7)
    scaler = distml.amp.GradScaler("cpu", init_scale=2.0 ** 4)
    state = {"model": net, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler, "loader": loader,
             "rng": dcp.RNGState(), "step": 0, "epoch": 0}
    if dcp.exists(args.checkpoint_dir):
        dcp.load(state, checkpoint_id=args.checkpoint_dir)
        if rank == 0:
            print(f"resumed at step {state['step']} (epoch {state['epoch']}) on {world} ranks", flush=True)
    preempted = PreemptionHandler()
    step, seen = state["step"], []
    for epoch in range(state["epoch"], args.epochs):
        sampler.set_epoch(epoch)
        for x, y, index in loader:
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            seen += [(epoch, int(i)) for i in index]
            time.sleep(args.step_sleep)
            if rank == 0:
                print(f"step {step} epoch {epoch} loss {loss.item():.5f}", flush=True)
            if args.preempt_at == step and rank == world - 1:
                os.kill(os.getpid(), signal.SIGUSR1)
            if preempted.should_stop():
                state.update(step=step, epoch=epoch)
                dcp.save(state, checkpoint_id=args.checkpoint_dir)
                if rank == 0:
                    print(f"preempted: checkpoint of step {step} written to {args.checkpoint_dir}", flush=True)
                record(args, seen, None)
                preempted.exit()
    record(args, seen, net if rank == 0 else None)
    if rank == 0:
        print(f"done: {step} steps", flush=True)


def record(args, seen, net):
    """Each rank's (epoch, sample) pairs of this run, appended; the final parameters from rank 0."""
    if args.out is None:
        return
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"seen-{os.getpid()}.json"), "w") as f:
        json.dump(seen, f)
    if net is not None:
        np.savez(os.path.join(args.out, "params.npz"), **{k: v.numpy() for k, v in net.state_dict().items()})


if __name__ == "__main__":
    main()
