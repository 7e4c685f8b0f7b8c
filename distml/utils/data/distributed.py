"""DistributedSampler: each rank's share of a dataset, with PyTorch's semantics.

    sampler = DistributedSampler(train_set, shuffle=True, seed=0)
    loader = DataLoader(train_set, batch_size=64, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # a new order every epoch, the same on every rank
        for x, y in loader: ...

    # Evaluation: every sample exactly once over all ranks (shards differ in length by at most one).
    DistributedSampler(test_set, shuffle=False, pad=False)
"""
import math

import numpy as np

import distml.distributed as dist
from distml.distributed.launch_rank import rank_environment
from distml.utils.data.sampler import Sampler


def _world_size_and_rank():
    """From the process group when one is up, else from the launcher's environment variables,
    else 1 and 0: MPI is never initialised just to ask."""
    if dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    rank, _, world_size, _ = rank_environment()
    return world_size, rank


class DistributedSampler(Sampler):
    """The indices of `dataset` that rank `rank` of `num_replicas` visits: every
    `num_replicas`-th index from `rank` on, of 0..len-1 or, with `shuffle`, of a permutation
    seeded by `seed + epoch` (call `set_epoch` each epoch; all ranks must use the same seed).

    So that every rank takes the same number of steps, the list is first padded by wrapping
    round to a multiple of `num_replicas` (or cut to one with `drop_last=True`). `pad=False`
    does neither: the shards then exactly partition the dataset, for evaluation.
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False, pad=True):
        if num_replicas is None or rank is None:
            world_size, world_rank = _world_size_and_rank()
            num_replicas = world_size if num_replicas is None else num_replicas
            rank = world_rank if rank is None else rank
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.pad = pad
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        elif pad or drop_last:
            self.num_samples = math.ceil(n / num_replicas)
        else:
            self.num_samples = len(range(rank, n, num_replicas))
        self.total_size = self.num_samples * num_replicas if pad or drop_last else n

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n).tolist()
        else:
            indices = list(range(n))
        if self.drop_last:
            indices = indices[:self.total_size]
        elif self.pad and indices:
            padding = self.total_size - n
            indices += (indices * math.ceil(padding / n))[:padding]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Reshuffle for `epoch`; call it before each epoch's loop on every rank."""
        self.epoch = epoch
