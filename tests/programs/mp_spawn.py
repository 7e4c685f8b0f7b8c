# torch.multiprocessing.spawn with a function taking the rank first: each rank computes the
# statistics of its shard of a dataset and saves them with torch.save; the parent combines.
import os
import tempfile

import torch
import torch.multiprocessing as mp


def shard_stats(rank, world_size, out_dir):
    data = torch.linspace(0.0, 10.0, 101)
    shard = data[rank::world_size]
    stats = {"rank": rank, "count": shard.numel(), "sum": shard.sum(), "sumsq": (shard ** 2).sum()}
    torch.save(stats, os.path.join(out_dir, f"rank{rank}.pt"))


if __name__ == "__main__":
    world_size = 2
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(shard_stats, args=(world_size, out_dir), nprocs=world_size, join=True)
        results = [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(world_size)]
    for r in results:
        print(f"rank {r['rank']}: count {r['count']} sum {r['sum']:.3f}")
    n = sum(r["count"] for r in results)
    mean = sum(r["sum"] for r in results) / n
    var = sum(r["sumsq"] for r in results) / n - mean ** 2
    print(f"combined: n={n} mean={mean:.4f} std={var.sqrt():.4f}")
    full = torch.linspace(0.0, 10.0, 101)
    print(f"direct:   n={full.numel()} mean={full.mean():.4f} std={full.std(unbiased=False):.4f}")
