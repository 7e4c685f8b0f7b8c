"""DistributedSampler: each rank's share of a dataset, with PyTorch's semantics.

    sampler = DistributedSampler(train_set, shuffle=True, seed=0)
    loader = DataLoader(train_set, batch_size=64, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # a new order every epoch, the same on every rank
        for x, y in loader: ...

    # Evaluation: every sample exactly once over all ranks (shards differ in length by at most one).
    DistributedSampler(test_set, shuffle=False, pad=False)

    # Resume mid-epoch, on any number of ranks (StatefulDataLoader does the counting for you):
    state = sampler.state_dict()          # {"epoch", "seed", "shuffle", "dataset_length", "samples_consumed"}
    sampler.load_state_dict(state)        # the next iter() deals out the rest of that epoch
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

    `state_dict()` records the epoch, seed, shuffle and how many samples of the epoch's order all
    ranks together have consumed; ranks step in lockstep, so after each rank took c samples that
    is the first c * num_replicas of the order. `load_state_dict` on M ranks makes the next
    `iter()` deal the rest of that order out to the M ranks (rank r takes every M-th from r), so
    each sample of the epoch is seen once across the interruption; the rest is padded by wrapping
    round within itself, cut to a multiple of M with `drop_last` (those at most M - 1 samples are
    not seen this epoch), or left uneven with `pad=False`. The epoch after it is whole again.
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
        self._resume_at = 0   # where the next iter() starts in the epoch's order (set by load_state_dict)
        self._started_at = 0  # where the current iteration started, and how many this rank took since
        self._yielded = 0

    def _shard(self, start):
        """This rank's indices of the epoch's order from position `start` on."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n).tolist()
        else:
            order = list(range(n))
        rest = order[start:]
        if self.drop_last:
            rest = rest[:len(rest) // self.num_replicas * self.num_replicas]
        elif self.pad and rest:
            padding = -len(rest) % self.num_replicas
            rest += (rest * math.ceil(padding / len(rest)))[:padding]
        return rest[self.rank::self.num_replicas]

    def __iter__(self):
        start, self._resume_at = self._resume_at, 0
        self._started_at, self._yielded = start, 0
        for index in self._shard(start):
            self._yielded += 1
            yield index

    def __len__(self):
        return len(self._shard(self._resume_at)) if self._resume_at else self.num_samples

    def set_epoch(self, epoch):
        """Reshuffle for `epoch`; call it before each epoch's loop on every rank. A position loaded
        by `load_state_dict` is kept only for the epoch it was saved in."""
        if epoch != self.epoch:
            self._resume_at = 0
            self._started_at = self._yielded = 0
        self.epoch = epoch

    def state_dict(self):
        """The position in the epoch, counting what this rank's iterator has yielded (a DataLoader
        that prefetches yields ahead of the consumer: StatefulDataLoader.state_dict counts batches
        taken instead)."""
        return self._state(self._yielded)

    def _state(self, taken):
        """The state after each rank consumed `taken` samples of the current iteration."""
        if self._resume_at:
            consumed = self._resume_at
        else:
            consumed = min(len(self.dataset), self._started_at + taken * self.num_replicas)
        return {"epoch": self.epoch, "seed": self.seed, "shuffle": self.shuffle,
                "dataset_length": len(self.dataset), "samples_consumed": consumed}

    def load_state_dict(self, state_dict):
        """Continue the saved epoch: the next `iter()` yields this rank's share of what is left."""
        missing = {"epoch", "seed", "shuffle", "dataset_length", "samples_consumed"} - set(state_dict)
        if missing:
            raise KeyError(f"DistributedSampler state_dict is missing {sorted(missing)}")
        if state_dict["dataset_length"] != len(self.dataset):
            raise ValueError(f"DistributedSampler state was saved for a dataset of {state_dict['dataset_length']} "
                             f"samples, but this dataset has {len(self.dataset)}")
        self.epoch = state_dict["epoch"]
        self.seed = state_dict["seed"]
        self.shuffle = state_dict["shuffle"]
        self._resume_at = state_dict["samples_consumed"]
        self._started_at, self._yielded = self._resume_at, 0
